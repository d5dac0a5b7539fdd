/**
 * The request, response and event schemas of generation, usage and the monthly budget. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { problemSchema } from "../http/schemas.js";

/** `YYYY-MM-DD` (a whole UTC day) or an ISO 8601 instant. */
const isoDateOrInstant = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);

export const usageQuery = z.strictObject({ from: isoDateOrInstant.optional(), to: isoDateOrInstant.optional() }).transform((q, ctx) => {
  const DAY = 86_400_000;
  // A date-only `to` includes that whole day.
  const to = q.to === undefined ? new Date() : q.to.length === 10 ? new Date(Date.parse(q.to) + DAY) : new Date(q.to);
  const from = q.from === undefined ? new Date(to.getTime() - 30 * DAY) : new Date(q.from);
  // Outside these, toISOString() and PostgreSQL disagree (year 0, year 10000): a 400, not a 500.
  const outside = (d: Date) => d.getTime() < Date.UTC(1970, 0, 1) || d.getTime() > Date.UTC(9999, 0, 1);
  if (outside(to)) ctx.addIssue({ code: "custom", path: ["to"], message: "must be between 1970-01-01 and 9998-12-31" });
  else if (outside(from)) ctx.addIssue({ code: "custom", path: ["from"], message: "must be between 1970-01-01 and 9998-12-31" });
  else if (from >= to) ctx.addIssue({ code: "custom", path: ["from"], message: "from must be before to" });
  else if (to.getTime() - from.getTime() > 366 * DAY)
    ctx.addIssue({ code: "custom", path: ["from"], message: "the range may span at most 366 days" });
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
    .describe(
      "How many of the requests were cut short (the client left or the stream failed) and billed for the tokens up to then; absent when none",
    ),
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
 * The input limits of a generation: the schema enforces them, /api/config hands them to the
 * web app, the prompt's worst case (generate.ts) is bounded by them. Defined here only.
 */
export const generationLimits = {
  topic: { min: 3, max: 300 },
  keywords: { max: 10, maxLength: 60 },
  tone: { maxLength: 60 },
  wordCount: { min: 200, max: 3000, default: 800 },
} as const;

const trimmedText = (min: number, max: number) =>
  z
    .string()
    .trim()
    .min(min)
    .max(max)
    .refine((s) => !/\p{Cc}/u.test(s.replace(/[\n\t]/g, "")), "must not contain control characters");

export const generateBody = z.strictObject({
  topic: trimmedText(generationLimits.topic.min, generationLimits.topic.max),
  keywords: z.array(trimmedText(1, generationLimits.keywords.maxLength)).max(generationLimits.keywords.max).optional(),
  tone: trimmedText(1, generationLimits.tone.maxLength).optional(),
  wordCount: z.number().int().min(generationLimits.wordCount.min).max(generationLimits.wordCount.max).optional(),
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
  status: z.object({
    phase: z.enum(["research", "writing"]),
    message: z.string().optional(),
    research: z.enum(["used", "skipped", "failed"]).optional(),
  }),
  sources: z.array(sourceSchema),
  delta: z.object({ text: z.string() }),
  usage: generationUsage,
  done: generateResult,
  error: z.object({ problem: problemSchema }),
} as const;
export type GenerationEventName = keyof typeof generationEvents;

/**
 * The wire form of one generation event, `{event, data}`, around the data schemas the
 * generator is typed with (documentation: the endpoint writes these, nobody parses them).
 */
export const generationEvent = z.discriminatedUnion(
  "event",
  Object.entries(generationEvents).map(([event, data]) => z.object({ event: z.literal(event), data: data as z.ZodType })) as unknown as [
    z.ZodObject<{ event: z.ZodLiteral<string>; data: z.ZodType }>,
    ...z.ZodObject<{ event: z.ZodLiteral<string>; data: z.ZodType }>[],
  ],
);
