/**
 * ALwrity's onboarding calls over this service's own pieces: keys through the key service
 * (lib/keys/service.ts), progress through the one onboarding session (lib/onboarding/session.ts), so
 * PUT /api/onboarding/session and these routes show the same progress.
 */
import type { z } from "zod";
import type { Deps } from "../../platform/runtime.js";
import { isHintShaped, providers, type Provider } from "../../providers/registry.js";
import { listKeys, type KeyView } from "../../keys/store.js";
import { saveUserKeys } from "../../keys/service.js";
import { completeStep, getOnboardingState, TOTAL_STEPS, type OnboardingState } from "../../onboarding/session.js";
import type { RateLimitState } from "../../platform/rate-limit.js";
import type {
  alwrityKeys,
  initResponse,
  onboardingStatus,
  progressResponse,
  stepCompleteResponse,
  stepDataResponse,
  StepCompleteBody,
  summaryResponse,
  validateKeysResponse,
} from "./schemas.js";

type Out<S extends z.ZodType> = z.output<S>;

const stepTitles = ["API keys", "Website", "Research", "Personalization", "Integrations", "Finish"];

/** The saved keys as ALwrity's form shows them: hints for gemini and exa, the copilotkit key in full. */
export function formKeys(views: readonly KeyView[]): Out<typeof alwrityKeys> {
  const keys: Out<typeof alwrityKeys> = {};
  for (const view of views) keys[view.provider] = view.value ?? view.hint;
  return keys;
}

async function keyViews(deps: Deps, userId: string): Promise<KeyView[]> {
  return listKeys(await deps.database(), userId, () => deps.keyring());
}

export async function onboardingKeys(deps: Deps, userId: string) {
  const views = await keyViews(deps, userId);
  return { api_keys: formKeys(views), total_providers: providers.length, configured_providers: views.map((v) => v.provider) };
}

function stepRecord(state: OnboardingState, step: number) {
  return state.steps.find((s) => s.step === step);
}

/**
 * Done: before the step to show next, or all done. A step's record alone does not say it:
 * the wizard's own steps keep what they produce (an analysis, a persona) before their Continue.
 */
function stepDone(state: OnboardingState, step: number): boolean {
  return state.completed || step < state.currentStep;
}

export function statusView(state: OnboardingState): Out<typeof onboardingStatus> {
  const steps = Array.from({ length: TOTAL_STEPS }, (_, i) => {
    const step = i + 1;
    const record = stepRecord(state, step);
    // Step 1's data is keys, which live in the key store: never given back here.
    const data = step === 1 || !record || Object.keys(record.data).length === 0 ? null : record.data;
    return {
      step_number: step,
      title: stepTitles[i]!,
      description: `Step ${step} of ${TOTAL_STEPS}: ${stepTitles[i]}`,
      status: stepDone(state, step) ? ("completed" as const) : ("pending" as const),
      completed_at: stepDone(state, step) ? (record?.completedAt ?? null) : null,
      has_data: data !== null,
      data,
    };
  });
  return {
    is_completed: state.completed,
    current_step: state.completed ? TOTAL_STEPS : state.currentStep,
    completion_percentage: state.progress,
    next_step: state.completed ? null : state.currentStep,
    started_at: state.startedAt,
    last_updated: state.updatedAt,
    completed_at: state.completed ? state.updatedAt : null,
    can_proceed_to_final: state.completed || state.currentStep >= 5,
    steps,
  };
}

export async function onboardingStatusOf(deps: Deps, userId: string): Promise<Out<typeof onboardingStatus>> {
  return statusView(await getOnboardingState(await deps.database(), userId));
}

/** GET /api/onboarding/init: `user` is never null (a null user breaks ALwrity's whole app). */
export async function initOnboarding(deps: Deps, userId: string): Promise<Out<typeof initResponse>> {
  const state = await getOnboardingState(await deps.database(), userId);
  return {
    // The service holds no profile: Clerk's frontend has it. The id is the Clerk user id.
    user: { id: userId, email: null, first_name: null, last_name: null, clerk_user_id: userId },
    onboarding: statusView(state),
    session: { session_id: userId, initialized_at: state.startedAt, last_activity: state.updatedAt },
  };
}

export async function onboardingProgress(deps: Deps, userId: string): Promise<Out<typeof progressResponse>> {
  const state = await getOnboardingState(await deps.database(), userId);
  return {
    progress: state.progress,
    current_step: state.completed ? TOTAL_STEPS : state.currentStep,
    total_steps: TOTAL_STEPS,
    completion_percentage: state.progress,
    is_completed: state.completed,
  };
}

/** GET /api/onboarding/step/{step}: step 1 answers the keys as the form shows them. */
export async function stepData(deps: Deps, userId: string, step: number): Promise<Out<typeof stepDataResponse>> {
  const database = await deps.database();
  const [state, views] = await Promise.all([
    getOnboardingState(database, userId),
    step === 1 ? keyViews(deps, userId) : Promise.resolve([]),
  ]);
  const record = stepRecord(state, step);
  const data = step === 1 ? { ...(record?.data ?? {}), api_keys: formKeys(views) } : (record?.data ?? null);
  return { step, status: stepDone(state, step) ? "completed" : "pending", completed_at: record?.completedAt ?? null, data };
}

/**
 * POST /api/onboarding/step/{step}/complete: `data.api_keys` (any step) go through the key
 * service (a shown hint means unchanged; a malformed key was refused by the schema, so nothing
 * is written); the rest of `data` is kept as sent for that step; the session moves forward.
 */
export async function completeOnboardingStep(
  deps: Deps,
  userId: string,
  step: number,
  body: StepCompleteBody,
  signal: AbortSignal,
): Promise<{ body: Out<typeof stepCompleteResponse>; rateLimit: RateLimitState | null }> {
  const { api_keys: sentKeys, ...rest } = body.data ?? {};
  const keys: Partial<Record<Provider, string>> = {};
  const hints: Partial<Record<Provider, string>> = {};
  for (const provider of providers) {
    const value = sentKeys?.[provider];
    if (value === undefined || value === "") continue;
    if (isHintShaped(value)) hints[provider] = value;
    else keys[provider] = value;
  }
  let saved: Provider[] = [];
  let unchanged: Provider[] = [];
  let rateLimit: RateLimitState | null = null;
  if (Object.keys(keys).length > 0 || Object.keys(hints).length > 0) {
    const outcome = await saveUserKeys(deps, userId, keys, signal, hints);
    saved = outcome.body.saved;
    unchanged = outcome.body.unchanged;
    rateLimit = outcome.rateLimit;
  }
  const database = await deps.database();
  await completeStep(database, userId, step, rest);
  const state = await getOnboardingState(database, userId);
  return {
    body: {
      message: `step ${step} completed`,
      step,
      data: rest,
      validation_errors: [],
      warnings: [],
      current_step: state.completed ? TOTAL_STEPS : state.currentStep,
      completion_percentage: state.progress,
      is_completed: state.completed,
      saved,
      unchanged,
    },
    rateLimit,
  };
}

function websiteOf(step2: Record<string, unknown> | null): string | null {
  if (!step2) return null;
  if (typeof step2.website === "string") return step2.website;
  if (typeof step2.website_url === "string") return step2.website_url;
  const kept = step2.style_analysis as { website_url?: unknown } | undefined;
  return typeof kept?.website_url === "string" ? kept.website_url : null;
}

export async function onboardingSummary(deps: Deps, userId: string): Promise<Out<typeof summaryResponse>> {
  const database = await deps.database();
  const [state, views] = await Promise.all([getOnboardingState(database, userId), keyViews(deps, userId)]);
  const data = (step: number) => {
    const record = stepRecord(state, step);
    return record && Object.keys(record.data).length > 0 ? record.data : null;
  };
  const website = data(2);
  return {
    api_keys: formKeys(views),
    website_analysis: website,
    research_preferences: data(3),
    persona_data: data(4),
    // FinalStep.tsx:53 reads this one for "Personalization: Configured".
    personalization_settings: data(4),
    // ALwrity's website step completes with `website` (an older form sent `website_url`); an analysis the
    // style step kept (lib/compat/alwrity/wizard.ts) names its site too.
    website_url: websiteOf(website),
    completion_percentage: state.progress,
    is_completed: state.completed,
  };
}

/** A step's data as sent, or null (website analysis: 2, research preferences: 3). */
export async function storedStep(deps: Deps, userId: string, step: number): Promise<Record<string, unknown> | null> {
  const state = await getOnboardingState(await deps.database(), userId);
  const record = stepRecord(state, step);
  return record && Object.keys(record.data).length > 0 ? record.data : null;
}

/** Whether each saved key is usable, from what is known (format at save, health since): no upstream call. */
export async function validateKeys(deps: Deps, userId: string): Promise<Out<typeof validateKeysResponse>> {
  const views = await keyViews(deps, userId);
  const results: Out<typeof validateKeysResponse>["validation_results"] = {};
  for (const provider of providers) {
    const view = views.find((v) => v.provider === provider);
    const valid = view !== undefined && view.status !== "rejected" && view.status !== "unreadable";
    results[provider] = {
      valid,
      status: view?.status ?? "missing",
      hint: view?.hint ?? null,
      message: !view
        ? `no ${provider} key saved`
        : view.status === "rejected"
          ? `the provider refused the saved ${provider} key; save a new one`
          : view.status === "unreadable"
            ? `the saved ${provider} key can no longer be read; save it again`
            : `${provider} key saved`,
    };
  }
  const missing = providers.filter((p) => !views.some((v) => v.provider === p));
  return { all_valid: Object.values(results).every((r) => r.valid), validation_results: results, missing };
}
