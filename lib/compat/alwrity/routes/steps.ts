/** ALwrity's step calls: GET /api/onboarding/step/{step} and POST /api/onboarding/step/{step}/complete. */
import { defineRoute, json } from "../../../http/route.js";
import type { FieldError } from "../../../http/errors.js";
import { completeOnboardingStep, stepData } from "../onboarding.js";
import { stepCompleteBody, stepCompleteResponse, stepDataResponse, stepParams } from "../schemas.js";
import { providerInfo } from "../../../providers/registry.js";
import { withRateLimit } from "../../../platform/rate-limit.js";

const params = { schema: stepParams, example: { step: "1" } };

export const alwrityStepData = defineRoute({
  method: "GET",
  path: "/api/onboarding/step/:step",
  operationId: "alwrityStepData",
  summary: "One onboarding step's status and data",
  description:
    "Step 1's `data.api_keys` are the caller's keys as the form shows them (hints for gemini and exa); other steps give back what the frontend sent.",
  tags: ["alwrity"],
  auth: true,
  params,
  responses: {
    200: { description: "The step.", content: { "application/json": { schema: stepDataResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId, params }) => json(await stepData(deps, userId, params.step)),
});

/** Only malformed keys inside data.api_keys: a key-format problem. */
const keyFormatOnly = (errors: FieldError[]) =>
  errors.length > 0 && errors.every((e) => e.pointer.startsWith("/data/api_keys/")) ? "invalid-key-format" : "invalid-request";

export const alwrityCompleteStep = defineRoute({
  method: "POST",
  path: "/api/onboarding/step/:step/complete",
  operationId: "alwrityCompleteStep",
  summary: "Complete an onboarding step (ALwrity)",
  description:
    "Moves the caller's session forward (next step = step + 1, progress = step ÷ 6; step 6 completes onboarding; never backwards). " +
    "`data.api_keys` in any step are saved through the key service (a shown hint means unchanged; a malformed key is a 400 and nothing changes); " +
    "the rest of `data` (at most 12 KiB of JSON) is kept for that step and given back by `init` and `GET /api/onboarding/step/{step}`.",
  tags: ["alwrity"],
  auth: true,
  params,
  body: {
    schema: stepCompleteBody,
    description: "ALwrity's `{data, validation_errors}`.",
    example: {
      data: {
        api_keys: { gemini: providerInfo.gemini.example, exa: providerInfo.exa.example, copilotkit: providerInfo.copilotkit.example },
      },
    },
    codeFor: keyFormatOnly,
  },
  responses: {
    200: { description: "Completed.", content: { "application/json": { schema: stepCompleteResponse } }, headers: ["Cache-Control"] },
  },
  problems: ["invalid-key-format", "rate-limited"],
  handler: async ({ request, deps, userId, params, body }) => {
    const outcome = await completeOnboardingStep(deps, userId, params.step, body, request.signal);
    return withRateLimit(json(outcome.body), outcome.rateLimit);
  },
});

export default [alwrityStepData, alwrityCompleteStep];
