/** ALwrity's key reads: the form's prefill (/api-keys/onboarding) and the key check (/api-keys/validate). */
import { defineRoute, json } from "../../../http/route.js";
import { onboardingKeys, validateKeys } from "../onboarding.js";
import { onboardingKeysResponse, validateKeysResponse } from "../schemas.js";

export const alwrityOnboardingKeys = defineRoute({
  method: "GET",
  path: "/api/onboarding/api-keys/onboarding",
  operationId: "alwrityOnboardingKeys",
  summary: "The caller's keys as ALwrity's API-key form shows them",
  description:
    '`api_keys.{gemini,exa}` are hints (… + last 4 characters), never the keys; sent back unchanged they mean "unchanged". ' +
    "`api_keys.copilotkit` is the publishable key in full. Providers without a saved key are absent.",
  tags: ["alwrity"],
  auth: true,
  responses: {
    200: {
      description: "The form's prefill.",
      content: { "application/json": { schema: onboardingKeysResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ deps, userId }) => json(await onboardingKeys(deps, userId)),
});

const validateSpec = {
  path: "/api/onboarding/api-keys/validate",
  summary: "Whether each of the caller's keys is saved and usable",
  description: "From what is known (format checked when saved, the provider's last answer since): no upstream call, nothing to pay.",
  tags: ["alwrity"],
  auth: true as const,
  responses: {
    200: {
      description: "Per provider.",
      content: { "application/json": { schema: validateKeysResponse } },
      headers: ["Cache-Control" as const],
    },
  },
  problems: [],
};

export const alwrityValidateKeys = defineRoute({
  ...validateSpec,
  method: "GET",
  operationId: "alwrityValidateKeys",
  handler: async ({ deps, userId }) => json(await validateKeys(deps, userId)),
});

/** ALwrity's `validateApiKeys()` posts (frontend/src/api/onboarding.ts); it changes nothing all the same. */
export const alwrityValidateKeysPost = defineRoute({
  ...validateSpec,
  method: "POST",
  operationId: "alwrityValidateKeysPost",
  handler: async ({ deps, userId }) => json(await validateKeys(deps, userId)),
});

export default [alwrityOnboardingKeys, alwrityValidateKeys, alwrityValidateKeysPost];
