/** GET /api/openapi.json — the OpenAPI 3.1 document of this API; no auth. Built once per instance. */
import { defineRoute } from "../lib/http/handler.js";
import { openApiJson } from "../lib/openapi.js";

export const { GET, OPTIONS } = defineRoute({
  GET: async () =>
    new Response(openApiJson(), {
      headers: {
        "content-type": "application/json; charset=utf-8",
        // Public and the same for everyone: any origin may read it (no credentials involved).
        "cache-control": "public, max-age=300",
        "access-control-allow-origin": "*",
      },
    }),
});
