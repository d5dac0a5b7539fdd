/**
 * What ALwrity's final step reads (FinalStep.tsx): the summary, website analysis and research
 * preferences. All answer 2xx: if any failed, that page would read GET /api/onboarding/api-keys
 * as a provider → key map, which this service's list is not.
 */
import { defineRoute, json } from "../../../http/route.js";
import { onboardingSummary, storedStep } from "../onboarding.js";
import { storedStepData, summaryResponse } from "../schemas.js";

export const alwritySummary = defineRoute({
  method: "GET",
  path: "/api/onboarding/summary",
  operationId: "alwritySummary",
  summary: "The caller's onboarding summary (ALwrity's final step)",
  description:
    "Keys as the form shows them (hints for gemini and exa), the data of steps 2 to 4 as the frontend sent it (null when none), and progress.",
  tags: ["alwrity"],
  auth: true,
  responses: { 200: { description: "Summary.", content: { "application/json": { schema: summaryResponse } }, headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId }) => json(await onboardingSummary(deps, userId)),
});

const stored = (path: string, operationId: string, summary: string, step: number) =>
  defineRoute({
    method: "GET",
    path,
    operationId,
    summary,
    description: `The data the frontend sent when it completed step ${step}, as sent; \`null\` when there is none (this service analyses nothing itself).`,
    tags: ["alwrity"],
    auth: true,
    responses: {
      200: {
        description: "The step's data, or null.",
        content: { "application/json": { schema: storedStepData } },
        headers: ["Cache-Control"],
      },
    },
    problems: [],
    handler: async ({ deps, userId }) => json(await storedStep(deps, userId, step)),
  });

export const alwrityWebsiteAnalysis = stored(
  "/api/onboarding/website-analysis",
  "alwrityWebsiteAnalysis",
  "The caller's website step data (ALwrity's final step)",
  2,
);
export const alwrityResearchPreferences = stored(
  "/api/onboarding/research-preferences",
  "alwrityResearchPreferences",
  "The caller's research step data (ALwrity's final step)",
  3,
);

export default [alwritySummary, alwrityWebsiteAnalysis, alwrityResearchPreferences];
