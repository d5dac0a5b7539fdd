/**
 * The shapes ALwrity's onboarding wizard sends and reads (AJaySi/ALwrity, frontend/src/api/onboarding.ts,
 * ApiKeyStep/utils/useApiKeyStep.ts, contexts/OnboardingContext.tsx, FinalStep; the FastAPI handlers
 * in backend/api/onboarding_utils/ for the answers). snake_case because that client reads it so.
 */
import { z } from "zod";
import { isHintShaped, providerInfo, providerKeySchemas, validateProviderKey, type Provider } from "../../providers/registry.js";
import { providerSchema } from "../../http/schemas.js";
import { refineStepData } from "../../onboarding/step-data.js";

/** Most a step's data may hold (as JSON), so a frontend's step data stays a small record. */
export { MAX_STEP_DATA_CHARS } from "../../onboarding/step-data.js";

export const alwrityKeys = z
  .object({ gemini: z.string().optional(), exa: z.string().optional(), copilotkit: z.string().optional() })
  .describe("The caller's saved keys as the form shows them: a hint (… + last 4) for gemini and exa, the copilotkit key in full");

/** `{api_keys}` of GET /api/onboarding/api-keys/onboarding (read by `getApiKeysForOnboarding`). */
export const onboardingKeysResponse = z.object({
  api_keys: alwrityKeys,
  total_providers: z.number().int(),
  configured_providers: z.array(providerSchema),
});

export const stepParams = z.strictObject({
  step: z.enum(["1", "2", "3", "4", "5", "6"], { error: "a step from 1 to 6" }).transform(Number),
});

export const stepView = z.object({
  step_number: z.number().int(),
  title: z.string(),
  description: z.string(),
  status: z.enum(["completed", "pending"]),
  completed_at: z.string().nullable(),
  has_data: z.boolean(),
  data: z.record(z.string(), z.unknown()).nullable(),
});

export const onboardingStatus = z.object({
  is_completed: z.boolean(),
  /** The step to show next (1 to 6). */
  current_step: z.number().int(),
  completion_percentage: z.number(),
  next_step: z.number().int().nullable(),
  started_at: z.string().nullable(),
  last_updated: z.string().nullable(),
  completed_at: z.string().nullable(),
  can_proceed_to_final: z.boolean(),
  steps: z.array(stepView),
});

export const initResponse = z.object({
  user: z.object({
    id: z.string(),
    email: z.string().nullable(),
    first_name: z.string().nullable(),
    last_name: z.string().nullable(),
    clerk_user_id: z.string(),
  }),
  onboarding: onboardingStatus,
  session: z.object({ session_id: z.string(), initialized_at: z.string().nullable(), last_activity: z.string().nullable() }),
});

export const progressResponse = z.object({
  progress: z.number(),
  current_step: z.number().int(),
  total_steps: z.number().int(),
  completion_percentage: z.number(),
  is_completed: z.boolean(),
});

export const stepDataResponse = z.object({
  step: z.number().int(),
  status: z.enum(["completed", "pending"]),
  completed_at: z.string().nullable(),
  /** Step 1: `{api_keys}` as the form shows them; other steps: what the frontend sent, or null. */
  data: z.record(z.string(), z.unknown()).nullable(),
});

/** One key inside a step's `data.api_keys`: empty (not sent), the shown hint (unchanged) or a whole key. */
function stepKey(provider: Provider) {
  return z
    .string()
    .trim()
    .max(200)
    .superRefine((value, ctx) => {
      if (value === "" || isHintShaped(value)) return;
      const checked = validateProviderKey(provider, value);
      if (!checked.ok) ctx.addIssue({ code: "custom", message: checked.error });
    })
    .describe(`${providerInfo[provider].label} key, the hint shown for the saved one (unchanged), or empty`);
}

export const stepApiKeys = z.strictObject({
  gemini: stepKey("gemini").optional(),
  exa: stepKey("exa").optional(),
  copilotkit: stepKey("copilotkit").optional(),
});

/** `POST /api/onboarding/step/{step}/complete`: `{data, validation_errors}` (`setCurrentStep`), or `{data}` (useApiKeyStep). */
export const stepCompleteBody = z.strictObject({
  data: z
    .looseObject({ api_keys: stepApiKeys.optional() })
    .superRefine(refineStepData({ skip: ["api_keys"] })) // size, depth, NUL, lone surrogates, key shapes (lib/onboarding/step-data.ts)
    .optional(),
  validation_errors: z.array(z.string().max(500)).max(50).optional(),
});
export type StepCompleteBody = z.output<typeof stepCompleteBody>;

export const stepCompleteResponse = z.object({
  message: z.string(),
  step: z.number().int(),
  /** What was kept of the step's data (keys are never kept here). */
  data: z.record(z.string(), z.unknown()),
  validation_errors: z.array(z.string()),
  warnings: z.array(z.string()),
  current_step: z.number().int(),
  completion_percentage: z.number(),
  is_completed: z.boolean(),
  /** Keys in `data.api_keys` saved (changed) and unchanged. */
  saved: z.array(providerSchema),
  unchanged: z.array(providerSchema),
});

export const completeResponse = z.object({
  message: z.string(),
  is_completed: z.literal(true),
  current_step: z.number().int(),
  completion_percentage: z.number(),
  completed_at: z.string().nullable(),
});

export const summaryResponse = z.object({
  api_keys: alwrityKeys,
  website_analysis: z.record(z.string(), z.unknown()).nullable(),
  research_preferences: z.record(z.string(), z.unknown()).nullable(),
  persona_data: z.record(z.string(), z.unknown()).nullable(),
  /** The same as persona_data: ALwrity's final step reads this name. */
  personalization_settings: z.record(z.string(), z.unknown()).nullable(),
  website_url: z.string().nullable(),
  completion_percentage: z.number(),
  is_completed: z.boolean(),
});

/** A step's data as the frontend sent it, or null when it sent none (FinalStep accepts null). */
export const storedStepData = z.record(z.string(), z.unknown()).nullable();

export const validateKeysResponse = z.object({
  all_valid: z.boolean(),
  validation_results: z.record(
    z.string(),
    z.object({ valid: z.boolean(), status: z.string(), hint: z.string().nullable(), message: z.string() }),
  ),
  missing: z.array(providerSchema),
});

export const frontendEnvBody = z.strictObject({
  key: z.literal(providerInfo.copilotkit.frontendEnvVar ?? "REACT_APP_COPILOTKIT_API_KEY", {
    error: "only REACT_APP_COPILOTKIT_API_KEY can be written",
  }),
  value: providerKeySchemas.copilotkit,
  description: z.string().max(500).optional(),
});

export const frontendEnvResponse = z.object({
  success: z.boolean(),
  key: z.string(),
  /** False when FRONTEND_ENV_FILE is not set (nothing to write to). */
  written: z.boolean(),
  message: z.string(),
});

// ---------------------------------------------------------------- wizard steps 2 to 5 (lib/compat/alwrity/wizard.ts)

/** A short line of text a user types (no control characters but tab and newline). */
const text = (max: number) =>
  z
    .string()
    .trim()
    .max(max, `at most ${max} characters`)
    .refine((v) => ![...v].some((c) => (c < " " && c !== "\n" && c !== "\t") || c === "\u007f"), "no control characters");

/** `GET /health`: ALwrity's App.tsx only needs a 2xx; the shape is its own backend's. */
export const alwrityHealthResponse = z.object({
  status: z.literal("healthy"),
  service: z.string(),
  timestamp: z.string(),
});

export const styleDetectionBody = z.strictObject({
  url: z.string().trim().min(1, "the website's URL").max(500),
  include_patterns: z.boolean().optional(),
  include_guidelines: z.boolean().optional(),
});

/** Answers of the AI steps: `success` and, when false, `error` as a sentence ALwrity shows. */
export const aiStepResponse = z.looseObject({
  success: z.boolean(),
  error: z
    .string()
    .optional()
    .describe("Why the step could not run, as a sentence (no key saved, over the monthly cap, rate limited, the provider refused the key)"),
  code: z
    .string()
    .optional()
    .describe("The problem code behind `error` (missing-provider-key, budget-exceeded, rate-limited, provider-rejected-key…)"),
  key_source: z.enum(["env", "database"]).optional().describe("Whose keys ran it: the .env file (development) or the caller's stored keys"),
});

export const checkExistingParams = z.strictObject({
  url: z
    .string()
    .min(3)
    .max(600)
    .refine((v) => v.includes("."), "a website address (URL-encoded)"),
});
export const checkExistingResponse = z.looseObject({ exists: z.boolean(), analysis_id: z.number().int().optional() });
export const analysisIdParams = z.strictObject({
  id: z
    .string()
    .min(1)
    .max(9)
    .refine((v) => [...v].every((c) => c >= "0" && c <= "9") && !v.startsWith("0"), "an analysis id (1 or more)")
    .transform(Number),
});
export const sessionAnalysesResponse = z.object({
  success: z.boolean(),
  analyses: z.array(z.looseObject({ id: z.number().int(), website_url: z.string(), style_analysis: z.record(z.string(), z.unknown()) })),
});
export const analysisResponse = z.object({
  success: z.boolean(),
  analysis: z.record(z.string(), z.unknown()).nullable(),
  error: z.string().optional(),
});

/** ALwrity's BusinessInfo (frontend/src/api/businessInfo.ts); its `user_id` (always 1 at b1ebe10) is ignored. */
export const businessInfoBody = z
  .strictObject({
    user_id: z.number().int().optional(),
    business_description: text(2_000).pipe(z.string().min(1, "describe your business")),
    industry: text(200).optional(),
    target_audience: text(500).optional(),
    business_goals: text(1_000).optional(),
  })
  // Kept as step data: no key shapes, no lone surrogates (lib/onboarding/step-data.ts).
  .superRefine(refineStepData());
export const businessInfoResponse = z.object({
  id: z.number().int(),
  business_description: z.string(),
  industry: z.string().nullable(),
  target_audience: z.string().nullable(),
  business_goals: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const competitorsBody = z.strictObject({
  /** Empty when step 2 was completed without a website (business information instead): answered with a sentence. */
  user_url: z.string().trim().max(500),
  industry_context: z.string().max(500).nullable().optional(),
  num_results: z.number().int().min(1).max(100).optional(),
  /** ALwrity's copy of the analysis (bounded by the body limit); not used: the service reads the one step 2 kept. */
  website_analysis_data: z.unknown().optional(),
});

export const sitemapBody = z.strictObject({
  user_url: z.string().max(500),
  competitors: z.array(z.string().max(300)).max(50).optional(),
  industry_context: z.string().max(500).nullable().optional(),
  analyze_content_trends: z.boolean().optional(),
  analyze_publishing_patterns: z.boolean().optional(),
});

/** A platform id as ALwrity's persona step sends it (`linkedin`, `blog`…): lowercase letters and `_`. */
const platformId = z
  .string()
  .min(1)
  .max(24)
  .refine((v) => [...v].every((c) => (c >= "a" && c <= "z") || c === "_"), "a platform id (lowercase letters)");

export const personaRequestBody = z.strictObject({
  onboarding_data: z.record(z.string(), z.unknown()).nullable().optional(),
  selected_platforms: z.array(platformId).max(5, "at most 5 platforms"),
  user_preferences: z.unknown().optional(),
});
export const personaTaskStart = z.object({
  task_id: z.string(),
  status: z.enum(["completed", "failed"]),
  message: z.string(),
  key_source: z.enum(["env", "database"]).optional(),
});
/**
 * A persona task's id: `task_` and 32 hex digits (lib/compat/alwrity/wizard.ts `newTaskId`). Not a
 * UUID, which is an Exa key's shape: the id is kept in step 4's data, where nothing key-shaped may
 * be. A UUID (the form ids had before) is still accepted, and answered as an unknown task.
 */
export const TASK_ID_PREFIX = "task_";
const isHex = (c: string) => (c >= "0" && c <= "9") || (c >= "a" && c <= "f");
export const isTaskId = (v: string) =>
  v.length === TASK_ID_PREFIX.length + 32 && v.startsWith(TASK_ID_PREFIX) && [...v.slice(TASK_ID_PREFIX.length)].every(isHex);
const uuidString = z.string().uuid();
export const personaTaskParams = z.strictObject({
  id: z
    .string()
    .max(40)
    .refine((v) => isTaskId(v) || uuidString.safeParse(v).success, "a task id"),
});
export const personaTaskResponse = z.looseObject({
  task_id: z.string(),
  status: z.enum(["completed", "failed"]),
  progress: z.number(),
  error: z.string().optional(),
  result: z.record(z.string(), z.unknown()).nullable(),
});
export const personaLatestResponse = z.object({ success: z.boolean(), persona: z.record(z.string(), z.unknown()).nullable() });

/** What this service answers for a publishing integration it does not offer: not connected. */
export const integrationStatusResponse = z.object({
  connected: z.literal(false),
  sites: z.array(z.object({})).max(0),
  total_sites: z.literal(0),
  message: z.string(),
});
export const integrationClearResponse = z.object({ success: z.boolean(), message: z.string() });
