/** /api/onboarding/session — the caller's onboarding step and progress. */
import { requireUser } from "../../lib/auth.js";
import { defineRoute, json } from "../../lib/http/handler.js";
import { readJsonBody } from "../../lib/http/request.js";
import { getSession, updateSession } from "../../lib/onboarding.js";
import { sessionBody } from "../../lib/schemas.js";

export type { SessionBody, SessionResponse } from "../../lib/schemas.js";

export const { GET, PUT, OPTIONS } = defineRoute({
  GET: async (ctx) => {
    const { userId } = await requireUser(ctx);
    return json(await getSession(await ctx.runtime.database(), userId));
  },
  PUT: async (ctx) => {
    const { userId } = await requireUser(ctx);
    const body = await readJsonBody(ctx.request, sessionBody);
    return json(await updateSession(await ctx.runtime.database(), userId, body));
  },
});
