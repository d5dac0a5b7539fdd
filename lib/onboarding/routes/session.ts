/** /api/onboarding/session — the caller's onboarding step and progress. */
import { defineRoute, json } from "../../http/route.js";
import { getSession, updateSession } from "../session.js";
import { sessionBody, sessionResponse } from "../schemas.js";

const path = "/api/onboarding/session";
const sessionJson = { "application/json": { schema: sessionResponse } };

export const getOnboardingSession = defineRoute({
  method: "GET",
  path,
  operationId: "getOnboardingSession",
  summary: "The caller's onboarding progress",
  tags: ["onboarding"],
  auth: true,
  responses: { 200: { description: "Current step and progress.", content: sessionJson, headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId }) => json(await getSession(await deps.database(), userId)),
});

export const updateOnboardingSession = defineRoute({
  method: "PUT",
  path,
  operationId: "updateOnboardingSession",
  summary: "Record the caller's onboarding progress",
  tags: ["onboarding"],
  auth: true,
  body: { schema: sessionBody, description: "Step 1 to 6, progress 0 to 100.", example: { currentStep: 3, progress: 50 } },
  responses: { 200: { description: "Updated.", content: sessionJson, headers: ["Cache-Control"] } },
  problems: [],
  handler: async ({ deps, userId, body }) => json(await updateSession(await deps.database(), userId, body)),
});

export default [getOnboardingSession, updateOnboardingSession];
