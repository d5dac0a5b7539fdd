/** /api/onboarding/api-keys — save, list and delete the caller's provider keys. */
import type { FieldError } from "../http/errors.js";
import { defineRoute, json, noContent } from "../http/route.js";
import { providerInfo, providers } from "../keys/providers.js";
import { deleteUserKey, listUserKeys, saveUserKeys } from "../keys/service.js";
import { rateLimitHeaders } from "../rate-limit.js";
import { deleteKeyQuery, listKeysResponse, saveKeysBody, saveKeysResponse } from "../schemas.js";

const path = "/api/onboarding/api-keys";

/** A body whose only problems are key values is a key-format problem. */
const keyFormatOnly = (errors: FieldError[]) =>
  errors.length > 0 && errors.every((e) => providers.some((p) => e.pointer === `/${p}`)) ? "invalid-key-format" : "invalid-request";

export const saveApiKeys = defineRoute({
  method: "POST",
  path,
  operationId: "saveApiKeys",
  summary: "Save the caller's provider keys",
  description:
    "Encrypts and stores each key sent (replacing an earlier one). Development mode also writes them to the .env file. " +
    "The response never contains a gemini or exa key.",
  tags: ["keys"],
  auth: true,
  rateLimit: "key-writes",
  body: {
    schema: saveKeysBody,
    description: "The keys to save.",
    example: { gemini: providerInfo.gemini.example, exa: providerInfo.exa.example, validate: false },
    codeFor: keyFormatOnly,
  },
  responses: { 200: { description: "Saved.", content: { "application/json": { schema: saveKeysResponse } }, headers: ["Cache-Control"] } },
  problems: ["invalid-key-format", "provider-rejected-key", "upstream-unavailable", "upstream-timeout"],
  handler: async ({ request, deps, userId, body }) => json(await saveUserKeys(deps, userId, body, request.signal)),
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
  rateLimitInHandler: true,
  query: { schema: deleteKeyQuery, example: { provider: "exa" } },
  responses: { 204: { description: "Deleted.", headers: ["Cache-Control"] } },
  problems: ["invalid-request", "key-not-found"],
  handler: async ({ deps, userId, query }) => {
    const limit = await deleteUserKey(deps, userId, query.provider);
    const response = noContent();
    if (limit) for (const [name, value] of Object.entries(rateLimitHeaders(limit))) response.headers.set(name, value);
    return response;
  },
});

export default [saveApiKeys, listApiKeys, deleteApiKey];
