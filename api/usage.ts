/** GET /api/usage?from=&to= — what the caller's own keys paid for, per provider and per day. */
import { requireUser } from "../lib/auth.js";
import { defineRoute, json } from "../lib/http/handler.js";
import { readQuery } from "../lib/http/request.js";
import { usageQuery } from "../lib/schemas.js";
import { usageSummary } from "../lib/usage.js";

export type { UsageResponse } from "../lib/schemas.js";

export const { GET, OPTIONS } = defineRoute({
  GET: async (ctx) => {
    const { userId } = await requireUser(ctx);
    const range = readQuery(ctx.request, usageQuery);
    return json(await usageSummary(await ctx.runtime.database(), userId, range));
  },
});
