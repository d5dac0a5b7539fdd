/**
 * GET (and HEAD) /health — ALwrity's App.tsx calls it, without the /api prefix, before it renders
 * anything, and shows "Connection Error" on anything but a 2xx. No auth, no database query, no
 * configuration: cheap and the same in both modes. The service's own health is /api/health.
 */
import { defineRoute, json } from "../../../http/route.js";
import { alwrityHealthResponse } from "../schemas.js";

export const alwrityHealth = defineRoute({
  method: "GET",
  path: "/health",
  aliases: ["/api/alwrity/health"],
  operationId: "alwrityHealth",
  summary: "Liveness for ALwrity's frontend (no /api prefix)",
  description:
    "Always 200 while the function runs: no database query, nothing about the configuration (that is `GET /api/health`). " +
    "ALwrity's frontend reads only the status code.",
  tags: ["alwrity"],
  auth: false,
  responses: {
    200: { description: "Running.", content: { "application/json": { schema: alwrityHealthResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async () => json({ status: "healthy" as const, service: "byok-functions", timestamp: new Date().toISOString() }),
});

export default [alwrityHealth];
