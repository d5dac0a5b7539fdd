/** GET /api/health — no auth; mode, database reachability, driver and warnings, no secrets. */
import { sql } from "drizzle-orm";
import { defineRoute, json } from "../lib/http/handler.js";
import type { HealthResponse } from "../lib/schemas.js";
import { VERSION } from "../lib/version.js";

export type { HealthResponse };

export const { GET, OPTIONS } = defineRoute({
  GET: async ({ runtime, logger }) => {
    const { config } = runtime;
    let database: HealthResponse["database"] = "ok";
    try {
      await (await runtime.database()).rows(sql`select 1`);
    } catch (error) {
      logger.warn("health check: database unavailable", { errorName: error instanceof Error ? error.name : "unknown" });
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
