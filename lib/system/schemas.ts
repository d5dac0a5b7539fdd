/**
 * The response schema of /api/health. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { databaseDrivers } from "../platform/env.js";
import { modeSchema } from "../http/schemas.js";

/**
 * `status`: `ok`; `degraded` when the database cannot be reached; `misconfigured` when the
 * configuration has an error (`misconfigured` names the variables, never their values).
 * `warnings` holds only what anonymous callers may read; the operator's warnings go to the
 * log and `npm run check-config`.
 */
export const healthResponse = z.object({
  status: z.enum(["ok", "degraded", "misconfigured"]),
  mode: modeSchema,
  /** Which signal decided the mode, by variable name. */
  modeReason: z.string(),
  database: z.enum(["ok", "unavailable"]),
  driver: z.enum(databaseDrivers),
  misconfigured: z.array(z.string()),
  warnings: z.array(z.string()),
  version: z.string(),
});
export type HealthResponse = z.output<typeof healthResponse>;
