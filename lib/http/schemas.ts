/**
 * Wire shapes every endpoint shares: the problem body (RFC 9457), the mode, the provider ids. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { providers } from "../providers/registry.js";

export const providerSchema = z.enum(providers);

export const modeSchema = z.enum(["development", "production"]);

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string(),
  requestId: z.string(),
  action: z.string().optional(),
  errors: z.array(z.object({ pointer: z.string(), message: z.string() })).optional(),
  retry_after: z
    .number()
    .int()
    .optional()
    .describe(
      "Seconds to wait before trying again, as in the Retry-After header; also in a stream's error event, which has no header (snake_case: ALwrity's frontend reads it)",
    ),
});
