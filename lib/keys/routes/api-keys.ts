/** /api/onboarding/api-keys — save, list and delete the caller's provider keys. */
import type { FieldError } from "../../http/errors.js";
import { defineRoute, json, noContent } from "../../http/route.js";
import { isHintShaped, providerInfo, providers, type Provider } from "../../providers/registry.js";
import { deleteUserKey, listUserKeys, saveUserKeys } from "../service.js";
import { withRateLimit } from "../../platform/rate-limit.js";
import {
  deleteKeyQuery,
  listKeysResponse,
  saveKeysForm,
  saveKeysRequest,
  saveKeysResponse,
  type OneKeyBody,
  type SaveKeysBody,
} from "../schemas.js";

const path = "/api/onboarding/api-keys";

/** A body whose only problems are key values is a key-format problem. */
const keyFormatOnly = (errors: FieldError[]) =>
  errors.length > 0 && errors.every((e) => e.pointer === "/api_key" || providers.some((p) => e.pointer === `/${p}`))
    ? "invalid-key-format"
    : "invalid-request";

/** Either form as keys to save and hints meaning "unchanged". */
export function keysOf(body: SaveKeysBody | OneKeyBody): { keys: SaveKeysBody; hints: Partial<Record<Provider, string>> } {
  if (!("provider" in body)) return { keys: body, hints: {} };
  return isHintShaped(body.api_key)
    ? { keys: {}, hints: { [body.provider]: body.api_key } }
    : { keys: { [body.provider]: body.api_key }, hints: {} };
}

export const saveApiKeys = defineRoute({
  method: "POST",
  path,
  operationId: "saveApiKeys",
  summary: "Save the caller's provider keys",
  description:
    "Encrypts and stores each key sent (replacing an earlier one). Development mode also writes them to the .env file. " +
    "The response never contains a gemini or exa key. Two forms: the keys by provider, or ALwrity's one key per call " +
    "(`{provider, api_key, description?}`, where `api_key` may be the hint shown for the saved key: unchanged). " +
    "A key equal to the saved one is unchanged: nothing is written and it does not count against the key-write limit; " +
    "typing (a run of one-character edits of one saved key, each within 10 s of the last, one audit row per run) counts against a separate " +
    "ceiling of 600 a minute; going back and forth between two values, or editing several keys at once, counts as writes. " +
    "`validate: true` (the Gemini key checked with Google first) also counts, before the check and whatever it answers, against " +
    "the key-check limit (`RATE_LIMIT_KEY_CHECKS_PER_MINUTE`, default 10 a minute): past it, 429 with no check and nothing saved. " +
    "The RateLimit headers show the window with fewer requests left.",
  tags: ["keys", "alwrity"],
  auth: true,
  rateLimit: "key-writes",
  body: {
    schema: saveKeysRequest,
    formFor: saveKeysForm,
    description: "The keys to save: by provider, or one `{provider, api_key}` (ALwrity).",
    example: { gemini: providerInfo.gemini.example, exa: providerInfo.exa.example, validate: false },
    codeFor: keyFormatOnly,
  },
  responses: { 200: { description: "Saved.", content: { "application/json": { schema: saveKeysResponse } }, headers: ["Cache-Control"] } },
  problems: ["invalid-key-format", "provider-rejected-key", "upstream-unavailable", "upstream-timeout"],
  handler: async ({ request, deps, userId, body }) => {
    const { keys, hints } = keysOf(body);
    const outcome = await saveUserKeys(deps, userId, keys, request.signal, hints);
    return withRateLimit(json(outcome.body), outcome.rateLimit);
  },
});

export const listApiKeys = defineRoute({
  method: "GET",
  path,
  operationId: "listApiKeys",
  summary: "List the caller's saved keys",
  description: "Hints only (… + last 4 characters); the copilotkit key, a publishable frontend key, is returned as `value`.",
  tags: ["keys"],
  auth: true,
  responses: {
    200: {
      description: "The caller's keys and the providers still missing.",
      content: { "application/json": { schema: listKeysResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ deps, userId }) => json(await listUserKeys(deps, userId)),
});

export const deleteApiKey = defineRoute({
  method: "DELETE",
  path,
  operationId: "deleteApiKey",
  summary: "Delete one of the caller's keys",
  description: "`provider` names the key to delete.",
  tags: ["keys"],
  auth: true,
  rateLimit: "key-writes",
  // Counted in the delete's own statement (one round trip).
  query: { schema: deleteKeyQuery, example: { provider: "exa" } },
  responses: { 204: { description: "Deleted.", headers: ["Cache-Control"] } },
  problems: ["invalid-request", "key-not-found"],
  handler: async ({ deps, userId, query }) => {
    return withRateLimit(noContent(), await deleteUserKey(deps, userId, query.provider));
  },
});

export default [saveApiKeys, listApiKeys, deleteApiKey];
