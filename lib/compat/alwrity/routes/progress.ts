/** ALwrity's progress calls: init, status, progress, complete. One session behind them all (lib/onboarding/session.ts). */
import { defineRoute, json } from "../../../http/route.js";
import { initOnboarding, onboardingProgress, onboardingStatusOf } from "../onboarding.js";
import { completeResponse, initResponse, onboardingStatus, progressResponse } from "../schemas.js";
import { completeOnboarding, getOnboardingState, TOTAL_STEPS } from "../../../onboarding/session.js";

export const alwrityInit = defineRoute({
  method: "GET",
  path: "/api/onboarding/init",
  operationId: "alwrityInit",
  summary: "User, onboarding state and session in one call (ALwrity's OnboardingContext)",
  description: "`onboarding.current_step` is the step to show next; `steps[]` carry each completed step's data. `user` is never null.",
  tags: ["alwrity"],
  auth: true,
  responses: {
    200: { description: "The caller's onboarding.", content: { "application/json": { schema: initResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId }) => json(await initOnboarding(deps, userId)),
});

export const alwrityStatus = defineRoute({
  method: "GET",
  path: "/api/onboarding/status",
  operationId: "alwrityStatus",
  summary: "The caller's onboarding status (ALwrity's getCurrentStep)",
  tags: ["alwrity"],
  auth: true,
  responses: { 200: { description: "Status.", content: { "application/json": { schema: onboardingStatus } }, headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId }) => json(await onboardingStatusOf(deps, userId)),
});

export const alwrityProgress = defineRoute({
  method: "GET",
  path: "/api/onboarding/progress",
  operationId: "alwrityProgress",
  summary: "The caller's onboarding progress (ALwrity's getProgress)",
  tags: ["alwrity"],
  auth: true,
  responses: {
    200: { description: "Progress.", content: { "application/json": { schema: progressResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId }) => json(await onboardingProgress(deps, userId)),
});

export const alwrityComplete = defineRoute({
  method: "POST",
  path: "/api/onboarding/complete",
  operationId: "alwrityComplete",
  summary: "Mark the caller's onboarding completed (step 6, progress 100)",
  tags: ["alwrity"],
  auth: true,
  responses: {
    200: { description: "Completed.", content: { "application/json": { schema: completeResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId }) => {
    const database = await deps.database();
    await completeOnboarding(database, userId);
    const state = await getOnboardingState(database, userId);
    return json({
      message: "onboarding completed",
      is_completed: true,
      current_step: TOTAL_STEPS,
      completion_percentage: state.progress,
      completed_at: state.updatedAt,
    });
  },
});

export default [alwrityInit, alwrityStatus, alwrityProgress, alwrityComplete];
