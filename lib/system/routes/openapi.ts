/** GET /api/openapi.json — the OpenAPI 3.1 document of every route; no auth. Built once per instance. */
import { defineRoute, type AnyRoute } from "../../http/route.js";

/** The document route over `routes()` (a function: the list includes this route). */
export function openApiRoute(routes: () => readonly AnyRoute[]) {
  return defineRoute({
    method: "GET",
    path: "/api/openapi.json",
    // Vercel serves this function at its file path; vercel.json rewrites the public path to it.
    aliases: ["/api/openapi"],
    operationId: "getOpenApiDocument",
    summary: "This OpenAPI document",
    description: "No authentication. Generated from the same route definitions the app serves.",
    tags: ["service"],
    auth: false,
    responses: {
      200: {
        description: "The OpenAPI 3.1 document.",
        content: { "application/json": { schema: { type: "object", description: "An OpenAPI 3.1 document." } } },
        headers: ["Cache-Control", "Access-Control-Allow-Origin"],
      },
    },
    problems: [],
    handler: async () => {
      // Loaded here only: the generator stays out of every other function's cold start.
      const { openApiJson } = await import("../../openapi.js");
      return new Response(openApiJson(routes()), {
        headers: {
          "content-type": "application/json; charset=utf-8",
          // Public and the same for everyone: any origin may read it (no credentials involved).
          "cache-control": "public, max-age=300",
          "access-control-allow-origin": "*",
        },
      });
    },
  });
}
