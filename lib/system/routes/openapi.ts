/** GET /api/openapi.json — the OpenAPI 3.1 document of every route; no auth. Built once per instance. */
import { defineRoute } from "../../http/route.js";

/**
 * The document route. `document` builds the JSON (the composition passes the OpenAPI builder
 * over the route list, which includes this route; loaded on the first call only, so the
 * generator stays out of every other function's cold start).
 */
export function openApiRoute(document: () => Promise<string>) {
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
      return new Response(await document(), {
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
