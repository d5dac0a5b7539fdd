/**
 * POST /api/blog/generate — a cited blog post researched with the caller's Exa key and
 * written with their Gemini key. Server-Sent Events by default; one JSON body for
 * `Accept: application/json`.
 */
import { requireUser } from "../../lib/auth.js";
import { defineRoute, json } from "../../lib/http/handler.js";
import { readJsonBody } from "../../lib/http/request.js";
import { sseResponse } from "../../lib/http/sse.js";
import { enforceRateLimit } from "../../lib/rate-limit.js";
import { generateBody } from "../../lib/schemas.js";

export type { GenerateBody, GenerateResult } from "../../lib/schemas.js";

/** JSON only when the client asks for it and not for an event stream. */
function wantsJson(request: Request): boolean {
  const accept = request.headers.get("accept") ?? "";
  return /application\/json/i.test(accept) && !/text\/event-stream/i.test(accept);
}

export const { POST, OPTIONS } = defineRoute({
  POST: async (ctx) => {
    const { userId } = await requireUser(ctx);
    const body = await readJsonBody(ctx.request, generateBody);
    await enforceRateLimit(ctx, userId, "generate");
    const { prepareGeneration, collectGeneration, isAbortError } = await import("../../lib/blog/generate.js");
    const generation = await prepareGeneration(ctx, userId, body);
    if (wantsJson(ctx.request)) {
      try {
        return json(await collectGeneration(generation, ctx.request.signal));
      } catch (error) {
        // The client left (its upstream calls are already aborted): not a server error.
        if (!(ctx.request.signal.aborted && isAbortError(error))) throw error;
        ctx.logger.info("client went away; upstream calls aborted");
        return new Response(null, { status: 499 });
      }
    }
    return sseResponse(generation.events, { requestSignal: ctx.request.signal, requestId: ctx.requestId, logger: ctx.logger });
  },
});
