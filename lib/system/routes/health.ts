/**
 * GET /api/health — no auth. Everyone learns the status and the mode; the operator also learns
 * why that mode, the database's reachability, the driver, the names of misconfigured variables
 * (lib/platform/config-check.ts), public warnings and the version, never a value or a secret.
 * The operator is whoever sends `x-health-token: <HEALTH_TOKEN>` (compared in constant time), or
 * anyone in development (which answers this machine only); `npm run check-config` says more.
 *
 * Cheap whoever asks: a stranger's answer reuses the database probe of the last
 * PROBE_REUSE_MS on this instance, so no request rate turns into a query rate (the operator's
 * probe is always fresh).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { sql } from "drizzle-orm";
import { defineRoute, json } from "../../http/route.js";
import { healthResponse, type HealthResponse } from "../schemas.js";
import { misconfiguredVariables } from "../../platform/config-check.js";
import { VERSION } from "../../platform/version.js";
import type { Config } from "../../platform/env.js";
import type { Deps } from "../../platform/runtime.js";

/** How long a stranger's answer reuses this instance's last database probe. */
export const PROBE_REUSE_MS = 5_000;

type Probe = { at: number; database: "ok" | "unavailable" };
/** The last probe per runtime (its config object is one per runtime). */
const lastProbe = new WeakMap<Readonly<Config>, Probe>();

const digest = (text: string) => createHash("sha256").update(text).digest();

/** Does `sent` (the x-health-token header) match the configured token? Constant time; false when none is configured. */
export function isOperator(config: Readonly<Config>, sent: string | null): boolean {
  if (config.mode === "development") return true;
  if (config.healthToken === undefined || sent === null) return false;
  return timingSafeEqual(digest(sent), digest(config.healthToken));
}

async function probeDatabase(deps: Deps, fresh: boolean): Promise<Probe["database"]> {
  const now = Date.now();
  const last = lastProbe.get(deps.config);
  if (!fresh && last !== undefined && now - last.at < PROBE_REUSE_MS && now >= last.at) return last.database;
  let database: Probe["database"] = "ok";
  try {
    await (await deps.database()).rows(sql`select 1`);
  } catch (error) {
    deps.logger.warn("health check: database unavailable", { errorName: error instanceof Error ? error.name : "unknown" });
    database = "unavailable";
  }
  lastProbe.set(deps.config, { at: now, database });
  return database;
}

export const getHealth = defineRoute({
  method: "GET",
  path: "/api/health",
  operationId: "getHealth",
  summary: "Service health",
  description:
    "No authentication. Strangers get `status` and `mode` only; the operator (header `x-health-token` equal to HEALTH_TOKEN, or " +
    "anyone in development) also gets `modeReason`, `database`, `driver`, `misconfigured`, `warnings` and `version`. " +
    "503 when the configuration has an error (`status: misconfigured`) or the database cannot be reached (`status: degraded`). " +
    "An environment that does not parse at all answers 500 `server-misconfigured`.",
  tags: ["service"],
  auth: false,
  responses: {
    200: { description: "Healthy.", content: { "application/json": { schema: healthResponse } }, headers: ["Cache-Control"] },
    503: {
      description: "Misconfigured or degraded (the database cannot be reached); the operator's answer says which variables or what.",
      content: { "application/json": { schema: healthResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: ["server-misconfigured"],
  handler: async ({ deps, request }) => {
    const { config } = deps;
    const operator = isOperator(config, request.headers.get("x-health-token"));
    const problems = deps.configProblems();
    const misconfigured = misconfiguredVariables(problems);
    const database = await probeDatabase(deps, operator);
    const status: HealthResponse["status"] = misconfigured.length > 0 ? "misconfigured" : database === "ok" ? "ok" : "degraded";
    const body: HealthResponse = operator
      ? {
          status,
          mode: config.mode,
          modeReason: config.modeReason,
          database,
          driver: config.database.driver,
          misconfigured,
          warnings: problems.filter((p) => p.public && p.severity === "warning").map((p) => p.message),
          version: VERSION,
        }
      : { status, mode: config.mode };
    return json(body, { status: status === "ok" ? 200 : 503 });
  },
});

export default [getHealth];
