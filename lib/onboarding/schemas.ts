/**
 * The request and response schemas of /api/onboarding/session. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";

export const sessionBody = z.strictObject({
  currentStep: z.number().int().min(1).max(6),
  progress: z.number().min(0).max(100),
});
export type SessionBody = z.output<typeof sessionBody>;

export const sessionResponse = z.object({
  userId: z.string(),
  currentStep: z.number().int(),
  progress: z.number(),
  apiKeysComplete: z.boolean(),
});
export type SessionResponse = z.output<typeof sessionResponse>;
