/** /api/onboarding/api-keys — save, list and delete the caller's provider keys. */
import { requireUser } from "../../lib/auth.js";
import { defineRoute, json, noContent } from "../../lib/http/handler.js";
import { readJsonBody, readQuery } from "../../lib/http/request.js";
import { deleteUserKey, listUserKeys, saveUserKeys } from "../../lib/keys/service.js";
import { deleteKeyQuery, saveKeysBody } from "../../lib/schemas.js";
import { providers } from "../../lib/keys/providers.js";
import { enforceRateLimit } from "../../lib/rate-limit.js";

export type { SaveKeysBody, SaveKeysResponse, ListKeysResponse } from "../../lib/schemas.js";

/** A body whose only problems are key values is a key-format problem. */
const keyFormatOnly = (errors: { pointer: string }[]) =>
  errors.length > 0 && errors.every((e) => providers.some((p) => e.pointer === `/${p}`)) ? "invalid-key-format" : "invalid-request";

export const { GET, POST, DELETE, OPTIONS } = defineRoute({
  POST: async (ctx) => {
    const { userId } = await requireUser(ctx);
    const body = await readJsonBody(ctx.request, saveKeysBody, { codeFor: keyFormatOnly });
    await enforceRateLimit(ctx, userId, "key-writes");
    return json(await saveUserKeys(ctx, userId, body));
  },
  GET: async (ctx) => {
    const { userId } = await requireUser(ctx);
    return json(await listUserKeys(ctx, userId));
  },
  DELETE: async (ctx) => {
    const { userId } = await requireUser(ctx);
    const { provider } = readQuery(ctx.request, deleteKeyQuery);
    await enforceRateLimit(ctx, userId, "key-writes");
    await deleteUserKey(ctx, userId, provider);
    return noContent();
  },
});
