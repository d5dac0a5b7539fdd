/**
 * The request and response schemas of the HTTP contract (DESIGN.md). Endpoints validate
 * with them and the OpenAPI document is generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { isHintShaped, providerKeySchemas, providers, validateProviderKey } from "./providers/registry.js";
import { keyStatuses } from "./keys/key-status.js";
import { keyRejectionReasons, type KeyRejectionReason } from "./providers/rejections.js";

export const providerSchema = z.enum(providers);

export const saveKeysBody = z
  .strictObject({
    gemini: providerKeySchemas.gemini.optional(),
    exa: providerKeySchemas.exa.optional(),
    copilotkit: providerKeySchemas.copilotkit.optional(),
    validate: z.boolean().optional(),
  })
  .refine((b) => b.gemini !== undefined || b.exa !== undefined || b.copilotkit !== undefined, {
    message: "send at least one of gemini, exa, copilotkit",
    path: [],
  });
export type SaveKeysBody = z.output<typeof saveKeysBody>;

/**
 * ALwrity's one-key form (frontend/src/api/onboarding.ts `saveApiKey`): one provider per call.
 * `api_key` is a well-formed key of that provider, or the hint this service showed for the
 * saved one ("…abcd", meaning unchanged). `description` is accepted and not kept.
 */
export const oneKeyBody = z
  .strictObject({
    provider: providerSchema,
    api_key: z.string().trim().max(200).describe("The whole key, or the hint shown for the saved key (unchanged)"),
    description: z.string().max(500).optional(),
  })
  .superRefine((body, ctx) => {
    if (isHintShaped(body.api_key)) return;
    const checked = validateProviderKey(body.provider, body.api_key);
    if (!checked.ok) ctx.addIssue({ code: "custom", path: ["api_key"], message: checked.error });
  });
export type OneKeyBody = z.output<typeof oneKeyBody>;

/** Both forms of POST /api/onboarding/api-keys. */
export const saveKeysRequest = z.union([saveKeysBody, oneKeyBody]);

/** Which form a parsed body is meant as: one naming `provider` or `api_key` is the one-key form. */
export function saveKeysForm(data: unknown): z.ZodType {
  return typeof data === "object" && data !== null && ("provider" in data || "api_key" in data) ? oneKeyBody : saveKeysBody;
}

export const deleteKeyQuery = z.strictObject({ provider: providerSchema });

export const keyStatusSchema = z.enum(keyStatuses);

export const keyView = z.object({
  provider: providerSchema,
  hint: z.string(),
  updatedAt: z.iso.datetime(),
  validated: z.boolean().optional(),
  status: keyStatusSchema,
  lastUsedAt: z.iso.datetime().optional(),
  lastError: z
    .object({
      code: z.string(),
      at: z.iso.datetime(),
      reason: z.enum(Object.keys(keyRejectionReasons) as [KeyRejectionReason, ...KeyRejectionReason[]]).optional().describe("why the provider refused the key"),
      action: z.string().optional().describe("what to do about it"),
    })
    .optional(),
  notices: z
    .array(z.object({ code: z.enum(["gemini-standard-key-retiring"]), message: z.string(), action: z.string() }))
    .optional()
    .describe("what to know about the key before it fails, e.g. Google retiring standard (AIza…) keys; shown until it is replaced"),
  value: z.string().optional(),
});

export const modeSchema = z.enum(["development", "production"]);

export const saveKeysResponse = z.object({
  userId: z.string(),
  mode: modeSchema,
  saved: z.array(providerSchema),
  /** Sent but equal to the stored key (or its hint): nothing was written. */
  unchanged: z.array(providerSchema),
  storage: z.array(z.enum(["database", "env"])),
  keys: z.array(keyView),
});
export type SaveKeysResponse = z.output<typeof saveKeysResponse>;

export const listKeysResponse = z.object({
  userId: z.string(),
  mode: modeSchema,
  keys: z.array(keyView),
  missing: z.array(providerSchema),
  /** Saved keys that must be replaced: `rejected` by their provider or `unreadable`. */
  needsReplacement: z.array(providerSchema),
});
export type ListKeysResponse = z.output<typeof listKeysResponse>;

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
  driver: z.enum(["pglite", "pg", "neon-http", "neon-ws"]),
  misconfigured: z.array(z.string()),
  warnings: z.array(z.string()),
  version: z.string(),
});
export type HealthResponse = z.output<typeof healthResponse>;

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

/** `YYYY-MM-DD` (a whole UTC day) or an ISO 8601 instant. */
const isoDateOrInstant = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);

export const usageQuery = z
  .strictObject({ from: isoDateOrInstant.optional(), to: isoDateOrInstant.optional() })
  .transform((q, ctx) => {
    const DAY = 86_400_000;
    // A date-only `to` includes that whole day.
    const to = q.to === undefined ? new Date() : q.to.length === 10 ? new Date(Date.parse(q.to) + DAY) : new Date(q.to);
    const from = q.from === undefined ? new Date(to.getTime() - 30 * DAY) : new Date(q.from);
    // Outside these, toISOString() and PostgreSQL disagree (year 0, year 10000): a 400, not a 500.
    const outside = (d: Date) => d.getTime() < Date.UTC(1970, 0, 1) || d.getTime() > Date.UTC(9999, 0, 1);
    if (outside(to)) ctx.addIssue({ code: "custom", path: ["to"], message: "must be between 1970-01-01 and 9998-12-31" });
    else if (outside(from)) ctx.addIssue({ code: "custom", path: ["from"], message: "must be between 1970-01-01 and 9998-12-31" });
    else if (from >= to) ctx.addIssue({ code: "custom", path: ["from"], message: "from must be before to" });
    else if (to.getTime() - from.getTime() > 366 * DAY) ctx.addIssue({ code: "custom", path: ["from"], message: "the range may span at most 366 days" });
    return { from, to };
  });

const usageTotals = z.object({
  requests: z.number().int(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  costUsd: z.number(),
  partialRequests: z
    .number()
    .int()
    .optional()
    .describe("How many of the requests were cut short (the client left or the stream failed) and billed for the tokens up to then; absent when none"),
});

export const budgetResponse = z.object({
  userId: z.string(),
  monthlyUsd: z.number().nullable(),
  source: z.enum(["user", "default"]),
  maxMonthlyUsd: z.number().nullable(),
  spentUsd: z.number(),
  reservedUsd: z.number(),
  remainingUsd: z.number().nullable(),
  resetsAt: z.iso.datetime(),
});
export type BudgetResponse = z.output<typeof budgetResponse>;

export const budgetBody = z.strictObject({
  monthlyUsd: z.number().min(0).max(999_999).nullable(),
});
export type BudgetBody = z.output<typeof budgetBody>;

export const usageResponse = z.object({
  userId: z.string(),
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  totals: z.record(z.string(), usageTotals),
  daily: z.array(usageTotals.extend({ date: z.iso.date(), provider: z.string() })),
  /** This month's cap, spend and what is left (GET /api/usage/budget). */
  budget: budgetResponse,
});
export type UsageResponse = z.output<typeof usageResponse>;

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
      createdAt: z.iso.datetime(),
    }),
  ),
  auditEvents: z.array(
    z.object({
      provider: z.string().nullable(),
      action: z.string(),
      keyVersion: z.string().nullable(),
      requestId: z.string().nullable(),
      createdAt: z.iso.datetime(),
    }),
  ),
  rateLimits: z.array(z.object({ bucket: z.string(), windowStart: z.string(), count: z.number().int() })),
  /** What a frontend sent with each completed onboarding step (ALwrity's wizard); never keys. */
  onboardingSteps: z.array(z.object({ step: z.number().int(), data: z.record(z.string(), z.unknown()), completedAt: z.iso.datetime() })),
});
export type AccountExport = z.output<typeof accountExport>;

const trimmedText = (min: number, max: number) =>
  z
    .string()
    .trim()
    .min(min)
    .max(max)
    .refine((s) => !/\p{Cc}/u.test(s.replace(/[\n\t]/g, "")), "must not contain control characters");

export const generateBody = z.strictObject({
  topic: trimmedText(3, 300),
  keywords: z.array(trimmedText(1, 60)).max(10).optional(),
  tone: trimmedText(1, 60).optional(),
  wordCount: z.number().int().min(200).max(3000).optional(),
  research: z.boolean().optional(),
});
export type GenerateBody = z.output<typeof generateBody>;

export const sourceSchema = z.object({ title: z.string(), url: z.string() });

export const generationUsage = z.object({
  gemini: z.object({ model: z.string(), inputTokens: z.number().int(), outputTokens: z.number().int(), costUsd: z.number() }),
  exa: z.object({ requests: z.number().int(), costUsd: z.number() }),
  totalCostUsd: z.number(),
});
export type GenerationUsage = z.output<typeof generationUsage>;

export const generateResult = z.object({
  title: z.string(),
  markdown: z.string(),
  sources: z.array(sourceSchema),
  usage: generationUsage,
  keySource: z.enum(["env", "database"]),
});
export type GenerateResult = z.output<typeof generateResult>;

/** The Server-Sent Events of POST /api/blog/generate, in the order they come. */
export const generationEvents = {
  status: z.object({ phase: z.enum(["research", "writing"]), message: z.string().optional(), research: z.enum(["used", "skipped", "failed"]).optional() }),
  sources: z.array(sourceSchema),
  delta: z.object({ text: z.string() }),
  usage: generationUsage,
  done: generateResult,
  error: z.object({ problem: problemSchema }),
} as const;
export type GenerationEventName = keyof typeof generationEvents;
