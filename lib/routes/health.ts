/** GET /api/health — no auth; mode, database reachability, driver and warnings, no secrets. */
import { sql } from "drizzle-orm";
import { defineRoute, json } from "../http/route.js";
import { healthResponse, type HealthResponse } from "../schemas.js";
import { VERSION } from "../version.js";

export const getHealth = defineRoute({
  method: "GET",
  path: "/api/health",
  operationId: "getHealth",
  summary: "Service health",
  description: "No authentication. 503 when the database cannot be reached.",
  tags: ["service"],
  auth: false,
  responses: {
    200: { description: "Healthy.", content: { "application/json": { schema: healthResponse } }, headers: ["Cache-Control"] },
    503: { description: "Degraded: the database cannot be reached.", content: { "application/json": { schema: healthResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps }) => {
    const { config } = deps;
    let database: HealthResponse["database"] = "ok";
    try {
      await (await deps.database()).rows(sql`select 1`);
    } catch (error) {
      deps.logger.warn("health check: database unavailable", { errorName: error instanceof Error ? error.name : "unknown" });
      database = "unavailable";
    }
    const body: HealthResponse = {
      status: database === "ok" ? "ok" : "degraded",
      mode: config.mode,
      database,
      driver: config.database.driver,
      warnings: config.warnings,
      version: VERSION,
    };
    return json(body, { status: database === "ok" ? 200 : 503 });
  },
});

export default [getHealth];
