/**
 * POST /api/blog/generate — a cited blog post researched with the caller's Exa key and
 * written with their Gemini key. Server-Sent Events by default; one JSON body for
 * `Accept: application/json`. The Gemini and Exa SDKs load on the first generation, never
 * when this file is imported.
 */
import { defineRoute, json } from "../../http/route.js";
import { sseResponse } from "../../http/sse.js";
import { rateLimitHeaders } from "../../platform/rate-limit.js";
import { generateBody, generateResult, generationEvent } from "../schemas.js";

/** JSON only when the client asks for it and not for an event stream. */
function wantsJson(request: Request): boolean {
  const accept = request.headers.get("accept") ?? "";
  return /application\/json/i.test(accept) && !/text\/event-stream/i.test(accept);
}

export const generateBlogPost = defineRoute({
  method: "POST",
  path: "/api/blog/generate",
  operationId: "generateBlogPost",
  summary: "Generate a cited blog post with the caller's own keys",
  description:
    "Researches with the caller's Exa key (when saved and `research` is not false) and writes with their Gemini key; " +
    "each upstream call is billed to those keys and recorded in usage. Answers Server-Sent Events by default; " +
    "`Accept: application/json` (without text/event-stream) gets one JSON result instead. Failures after the stream " +
    "started arrive as an `error` event carrying the problem. Without Exa (or if it fails) generation goes on without research. " +
    "Before any upstream call the generation's worst-case cost is reserved against the caller's monthly cap " +
    "(GET /api/usage/budget): when it does not fit, 402 `budget-exceeded` with what is left and when the month resets.",
  tags: ["generation"],
  auth: true,
  rateLimit: "generate",
  // Counted in the generation's one statement with its key read and budget reservation.
  streaming: true,
  body: {
    schema: generateBody,
    description: "What to write about.",
    example: { topic: "Bring-your-own-key AI apps", keywords: ["api keys", "billing"], tone: "practical", wordCount: 800, research: true },
  },
  responses: {
    200: {
      description: "The generation, as an event stream or (Accept: application/json) one JSON result.",
      content: {
        "text/event-stream": { schema: generationEvent },
        "application/json": { schema: generateResult },
      },
      headers: ["Cache-Control"],
    },
  },
  problems: [
    "missing-provider-key",
    "budget-exceeded",
    "provider-rejected-key",
    "model-unavailable",
    "upstream-unavailable",
    "upstream-timeout",
  ],
  handler: async ({ request, deps, userId, body }) => {
    const { prepareGeneration, collectGeneration, isAbortError } = await import("../generate.js");
    const generation = await prepareGeneration(deps, userId, body);
    const headers = generation.rateLimit ? rateLimitHeaders(generation.rateLimit) : {};
    if (wantsJson(request)) {
      try {
        return json(await collectGeneration(generation, request.signal), { headers });
      } catch (error) {
        // The client left (its upstream calls are already aborted): not a server error.
        if (!(request.signal.aborted && isAbortError(error))) throw error;
        deps.logger.info("client went away; upstream calls aborted");
        return new Response(null, { status: 499 });
      }
    }
    const response = sseResponse(generation.events, { requestSignal: request.signal, requestId: deps.requestId, logger: deps.logger });
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
    return response;
  },
});

export default [generateBlogPost];
