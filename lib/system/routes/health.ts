/**
 * GET /api/health — no auth. Mode (and why), database reachability, driver, the names of
 * misconfigured variables (lib/platform/config-check.ts) and public warnings; no values, no secrets.
 */
import { sql } from "drizzle-orm";
import { defineRoute, json } from "../../http/route.js";
import { healthResponse, type HealthResponse } from "../schemas.js";
import { misconfiguredVariables } from "../../platform/config-check.js";
import { VERSION } from "../../platform/version.js";

export const getHealth = defineRoute({
  method: "GET",
  path: "/api/health",
  operationId: "getHealth",
  summary: "Service health",
  description:
    "No authentication. 503 when the configuration has an error (`status: misconfigured`, with the variables to fix in " +
    "`misconfigured`) or the database cannot be reached (`status: degraded`). An environment that does not parse at all " +
    "answers 500 `server-misconfigured`.",
  tags: ["service"],
  auth: false,
  responses: {
    200: { description: "Healthy.", content: { "application/json": { schema: healthResponse } }, headers: ["Cache-Control"] },
    503: {
      description: "Misconfigured (`misconfigured` names the variables to fix) or degraded (the database cannot be reached).",
      content: { "application/json": { schema: healthResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: ["server-misconfigured"],
  handler: async ({ deps }) => {
    const { config } = deps;
    const problems = deps.configProblems();
    const misconfigured = misconfiguredVariables(problems);
    let database: HealthResponse["database"] = "ok";
    try {
      await (await deps.database()).rows(sql`select 1`);
    } catch (error) {
      deps.logger.warn("health check: database unavailable", { errorName: error instanceof Error ? error.name : "unknown" });
      database = "unavailable";
    }
    const status: HealthResponse["status"] = misconfigured.length > 0 ? "misconfigured" : database === "ok" ? "ok" : "degraded";
    const body: HealthResponse = {
      status,
      mode: config.mode,
      modeReason: config.modeReason,
      database,
      driver: config.database.driver,
      misconfigured,
      warnings: problems.filter((p) => p.public && p.severity === "warning").map((p) => p.message),
      version: VERSION,
    };
    return json(body, { status: status === "ok" ? 200 : 503 });
  },
});

export default [getHealth];
