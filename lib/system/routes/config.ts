/**
 * GET /api/config — what the web app (public/, built from web/) needs before anyone signs
 * in: the mode, Clerk's publishable key and Frontend API host, the providers a user brings a
 * key for (label, format, where to get one) and the input limits. Nothing secret: every value
 * here is public by nature (a publishable key is on every page that signs users in).
 */
import { defineRoute, json } from "../../http/route.js";
import { MAX_BODY_BYTES } from "../../http/request.js";
import { providerInfo, providers } from "../../providers/registry.js";
import { parsePublishableKey } from "../../platform/auth/publishable-key.js";
import { generationLimits } from "../../generation/schemas.js";
import { configResponse, type ConfigResponse } from "../schemas.js";

/** Where a person gets each key (the provider's own key page). */
const whereToGet: Record<(typeof providers)[number], string> = {
  gemini: "https://aistudio.google.com/app/apikey",
  exa: "https://dashboard.exa.ai/api-keys",
  copilotkit: "https://cloud.copilotkit.ai",
};

/** What each key is for, in one sentence a person reads on the onboarding page. */
const purpose: Record<(typeof providers)[number], string> = {
  gemini: "Writes your posts. Required for generation.",
  exa: "Finds sources to cite. Optional: without it posts are written without research.",
  copilotkit: "A publishable key for CopilotKit frontends. Optional.",
};

export const getConfig = defineRoute({
  method: "GET",
  path: "/api/config",
  operationId: "getConfig",
  summary: "What the web app needs to start",
  description:
    "No authentication. The mode, Clerk's publishable key (null when CLERK_PUBLISHABLE_KEY is unset or invalid), the providers " +
    "with their labels, key formats and where to get a key, and the input limits. Nothing secret.",
  tags: ["service"],
  auth: false,
  responses: {
    200: {
      description: "The web app's configuration.",
      content: { "application/json": { schema: configResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: ["server-misconfigured"],
  handler: async ({ deps }) => {
    const { config } = deps;
    const key = config.clerk.publishableKey;
    const parsed = key === undefined ? null : parsePublishableKey(key);
    const body: ConfigResponse = {
      mode: config.mode,
      clerkPublishableKey: parsed ? key! : null,
      clerkFrontendApi: parsed ? parsed.frontendApi : null,
      devUserId: config.mode === "development" ? config.devUserId : null,
      providers: providers.map((id) => ({
        id,
        label: `${providerInfo[id].label} ${id === "copilotkit" ? "public key" : "API key"}`,
        format: providerInfo[id].format,
        placeholder: providerInfo[id].placeholder,
        whereToGet: whereToGet[id],
        purpose: purpose[id],
        required: id === "gemini",
        returnsValue: providerInfo[id].returnsValue,
      })),
      limits: {
        topic: generationLimits.topic,
        keywords: generationLimits.keywords,
        wordCount: generationLimits.wordCount,
        bodyBytes: MAX_BODY_BYTES,
        generatePerMinute: config.rateLimits.generatePerMinute,
        keyWritesPerMinute: config.rateLimits.keyWritesPerMinute,
        keyChecksPerMinute: config.rateLimits.keyChecksPerMinute,
      },
    };
    return json(body, { headers: { "cache-control": "no-cache" } });
  },
});

export default [getConfig];
