/**
 * The schemas of /api/me/export and the Clerk webhook. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { budgetResponse } from "../generation/schemas.js";
import { keyView } from "../keys/schemas.js";

/**
 * A Clerk webhook event (Standard Webhooks envelope). Not strict: the fields are Clerk's,
 * and a field Clerk adds must not make a signed delivery fail. `data.id` is the user's id
 * in `user.*` events.
 */
export const clerkWebhookEvent = z.object({
  type: z.string().min(1).max(100),
  object: z.literal("event").optional(),
  data: z.looseObject({ id: z.string().min(1).max(200).optional() }),
  timestamp: z.number().optional(),
  instance_id: z.string().optional(),
  event_attributes: z.record(z.string(), z.unknown()).optional(),
});
export type ClerkWebhookEvent = z.output<typeof clerkWebhookEvent>;

export const webhookResponse = z.object({
  received: z.literal(true),
  type: z.string(),
  /** `deleted`: the user's data was deleted; `duplicate`: this delivery was processed before; `ignored`: nothing to do for this type. */
  outcome: z.enum(["deleted", "duplicate", "ignored"]),
});
export type WebhookResponse = z.output<typeof webhookResponse>;

export const accountExport = z.object({
  userId: z.string(),
  exportedAt: z.iso.datetime(),
  session: z
    .object({ currentStep: z.number().int(), progress: z.number(), createdAt: z.iso.datetime(), updatedAt: z.iso.datetime() })
    .nullable(),
  keys: z.array(keyView),
  budget: budgetResponse,
  usage: z.array(
    z.object({
      provider: z.string(),
      operation: z.string(),
      model: z.string().nullable(),
      inputTokens: z.number().int(),
      outputTokens: z.number().int(),
      costUsd: z.number(),
      requestId: z.string().nullable(),
      serverRequestId: z.string().nullable().describe("The id the server made for that request (requestId may be the client's)"),
      createdAt: z.iso.datetime(),
    }),
  ),
  auditEvents: z.array(
    z.object({
      provider: z.string().nullable(),
      action: z.string(),
      keyVersion: z.string().nullable(),
      requestId: z.string().nullable(),
      serverRequestId: z.string().nullable().describe("The id the server made for that request (requestId may be the client's)"),
      createdAt: z.iso.datetime(),
    }),
  ),
  rateLimits: z.array(z.object({ bucket: z.string(), windowStart: z.string(), count: z.number().int() })),
  /** Calls through the provider gateway made for this user (lib/gateway): who called, route, model, outcome; never a body. */
  gatewayCalls: z.array(
    z.object({
      caller: z.string(),
      provider: z.string(),
      operation: z.string(),
      model: z.string().nullable(),
      outcome: z.string(),
      upstreamStatus: z.number().int().nullable(),
      costUsd: z.number().nullable(),
      requestId: z.string().nullable(),
      createdAt: z.iso.datetime(),
      finishedAt: z.iso.datetime().nullable(),
    }),
  ),
  /** What a frontend sent with each completed onboarding step (ALwrity's wizard); never keys. */
  onboardingSteps: z.array(z.object({ step: z.number().int(), data: z.record(z.string(), z.unknown()), completedAt: z.iso.datetime() })),
});
export type AccountExport = z.output<typeof accountExport>;
