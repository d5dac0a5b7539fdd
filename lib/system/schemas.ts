/**
 * The response schemas of /api/health and /api/config. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { databaseDrivers } from "../platform/env.js";
import { modeSchema, providerSchema } from "../http/schemas.js";

/**
 * `status`: `ok`; `degraded` when the database cannot be reached; `misconfigured` when the
 * configuration has an error. A stranger gets `status` and `mode` only; the rest is for the
 * operator (`x-health-token`, or any caller in development, which answers this machine only):
 * `misconfigured` names the variables, never their values; `warnings` holds only what may be
 * shown (the operator's warnings go to the log and `npm run check-config`).
 */
export const healthResponse = z.object({
  status: z.enum(["ok", "degraded", "misconfigured"]),
  mode: modeSchema,
  /** Which signal decided the mode, by variable name. */
  modeReason: z.string().optional().describe("Operator only"),
  database: z.enum(["ok", "unavailable"]).optional().describe("Operator only"),
  driver: z.enum(databaseDrivers).optional().describe("Operator only"),
  misconfigured: z.array(z.string()).optional().describe("Operator only"),
  warnings: z.array(z.string()).optional().describe("Operator only"),
  version: z.string().optional().describe("Operator only"),
});
export type HealthResponse = z.output<typeof healthResponse>;

/** GET /api/config: what the web app needs before anyone signs in. Nothing secret. */
export const configResponse = z.object({
  mode: modeSchema,
  clerkPublishableKey: z.string().nullable().describe("Clerk's publishable key (pk_…); null when sign-in is not configured"),
  clerkFrontendApi: z.string().nullable().describe("The Clerk instance's Frontend API host, decoded from the publishable key"),
  devUserId: z.string().nullable().describe("Development only: the user every request runs as; null in production"),
  providers: z.array(
    z.object({
      id: providerSchema,
      label: z.string().describe('e.g. "Gemini API key"'),
      format: z.string().describe("What a valid key looks like, in words"),
      placeholder: z.string().describe('What an empty key field shows, e.g. "AQ.Ab8R… (from AI Studio)"'),
      whereToGet: z.string().describe("The provider's page where a key is created"),
      purpose: z.string(),
      required: z.boolean().describe("Generation needs it"),
      returnsValue: z.boolean().describe("The saved key is shown back to its owner (publishable keys only)"),
    }),
  ),
  limits: z.object({
    topic: z.object({ min: z.number().int(), max: z.number().int() }),
    keywords: z.object({ max: z.number().int(), maxLength: z.number().int() }),
    wordCount: z.object({ min: z.number().int(), max: z.number().int(), default: z.number().int() }),
    bodyBytes: z.number().int(),
    generatePerMinute: z.number().int(),
    keyWritesPerMinute: z.number().int(),
    keyChecksPerMinute: z.number().int().describe("Key checks (validate: true) a user may make per minute; 0: no limit"),
  }),
});
export type ConfigResponse = z.output<typeof configResponse>;
