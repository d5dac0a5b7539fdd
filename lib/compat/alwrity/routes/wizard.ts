/**
 * ALwrity's wizard steps 2 to 4 (lib/compat/alwrity/wizard.ts): the website's style analysis
 * and the business information (step 2), competitors and sitemap (step 3), the persona (step 4).
 * The AI steps run on the caller's own keys, metered and capped like blog generation; they answer
 * 200 `{success: false, error}` with a sentence when they cannot run, as ALwrity shows it.
 */
import { defineRoute, json } from "../../../http/route.js";
import {
  analysisById,
  analyzeWebsiteStyle,
  checkExisting,
  discoverCompetitors,
  generatePersona,
  latestPersona,
  personaTask,
  saveBusinessInfo,
  sessionAnalyses,
  sitemapAnalysis,
} from "../wizard.js";
import {
  aiStepResponse,
  analysisIdParams,
  analysisResponse,
  businessInfoBody,
  businessInfoResponse,
  checkExistingParams,
  checkExistingResponse,
  competitorsBody,
  personaLatestResponse,
  personaRequestBody,
  personaTaskParams,
  personaTaskResponse,
  personaTaskStart,
  sessionAnalysesResponse,
  sitemapBody,
  styleDetectionBody,
} from "../schemas.js";

const aiNote =
  "Runs on the caller's own keys (production: their stored keys; development: the .env file; never the operator's), counted against the " +
  "`generate` rate limit, its worst case reserved against the monthly cap and settled to the real cost, with usage rows (`GET /api/usage`). " +
  "When it cannot run (no key, over the cap, rate limited, the provider refused the key) it answers 200 `{success: false, error, code}`: " +
  "ALwrity shows `error` as a sentence.";

export const alwrityStyleDetection = defineRoute({
  method: "POST",
  path: "/api/onboarding/style-detection/complete",
  operationId: "alwrityStyleDetection",
  summary: "Analyse the writing style of the caller's website (ALwrity's website step)",
  description: `Exa reads the site's pages (text limited), Gemini describes the style; kept in step 2. ${aiNote}`,
  tags: ["alwrity"],
  auth: true,
  body: {
    schema: styleDetectionBody,
    description: "ALwrity's `{url, include_patterns, include_guidelines}`.",
    example: { url: "https://example.com", include_patterns: true, include_guidelines: true },
  },
  responses: {
    200: {
      description: "The analysis, or `success: false` with a sentence.",
      content: { "application/json": { schema: aiStepResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ request, deps, userId, body }) => json(await analyzeWebsiteStyle(deps, userId, body.url, request.signal)),
});

export const alwritySessionAnalyses = defineRoute({
  method: "GET",
  path: "/api/onboarding/style-detection/session-analyses",
  operationId: "alwritySessionAnalyses",
  summary: "The caller's last website analysis (ALwrity's prefill)",
  tags: ["alwrity"],
  auth: true,
  responses: {
    200: {
      description: "At most one analysis.",
      content: { "application/json": { schema: sessionAnalysesResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ deps, userId }) => json(await sessionAnalyses(deps, userId)),
});

export const alwrityCheckExisting = defineRoute({
  method: "GET",
  path: "/api/onboarding/style-detection/check-existing/:url",
  operationId: "alwrityCheckExisting",
  summary: "Whether the caller already analysed this website",
  description: "`url` is the URL-encoded website. Only the caller's own analysis is seen.",
  tags: ["alwrity"],
  auth: true,
  params: { schema: checkExistingParams, example: { url: "https%3A%2F%2Fexample.com" } },
  responses: {
    200: {
      description: "`exists`, and the analysis id when it does.",
      content: { "application/json": { schema: checkExistingResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ deps, userId, params }) => json(await checkExisting(deps, userId, params.url)),
});

export const alwrityAnalysisById = defineRoute({
  method: "GET",
  path: "/api/onboarding/style-detection/analysis/:id",
  operationId: "alwrityAnalysisById",
  summary: "One of the caller's website analyses",
  description: 'Ids are per user (the one analysis a user has is 1); any other id: `success: false` (ALwrity shows "Analysis not found").',
  tags: ["alwrity"],
  auth: true,
  params: { schema: analysisIdParams, example: { id: "1" } },
  responses: {
    200: { description: "The analysis.", content: { "application/json": { schema: analysisResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId, params }) => json(await analysisById(deps, userId, params.id)),
});

export const alwrityBusinessInfo = defineRoute({
  method: "POST",
  path: "/onboarding/business-info",
  aliases: ["/api/alwrity/business-info"],
  operationId: "alwrityBusinessInfo",
  summary: "Save the caller's business information (ALwrity's step 2 without a website; no /api prefix)",
  description: "Kept in step 2 (`business_info`). `user_id` is ignored: the user is the token's.",
  tags: ["alwrity"],
  auth: true,
  body: {
    schema: businessInfoBody,
    description: "ALwrity's BusinessInfo.",
    example: { user_id: 1, business_description: "We bake sourdough bread for cafés.", industry: "Food", target_audience: "Café owners" },
  },
  responses: {
    200: { description: "Saved.", content: { "application/json": { schema: businessInfoResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId, body }) => json(await saveBusinessInfo(deps, userId, body)),
});

export const alwrityDiscoverCompetitors = defineRoute({
  method: "POST",
  path: "/api/onboarding/step3/discover-competitors",
  operationId: "alwrityDiscoverCompetitors",
  summary: "Find the caller's competitors (ALwrity's research step)",
  description: `Exa finds sites like the caller's (their own domain left out), Gemini summarises the market; kept in step 3. Without an Exa key: \`success: false\` with a sentence, and the wizard continues. ${aiNote}`,
  tags: ["alwrity"],
  auth: true,
  body: {
    schema: competitorsBody,
    description: "ALwrity's `{user_url, industry_context, num_results, website_analysis_data}` (at most 6 competitors are returned).",
    example: { user_url: "https://example.com", industry_context: "bakery", num_results: 25 },
  },
  responses: {
    200: {
      description: "Competitors and summary, or `success: false` with a sentence.",
      content: { "application/json": { schema: aiStepResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ request, deps, userId, body }) => json(await discoverCompetitors(deps, userId, body, request.signal)),
});

export const alwritySitemap = defineRoute({
  method: "POST",
  path: "/api/onboarding/step3/analyze-sitemap",
  operationId: "alwrityAnalyzeSitemap",
  summary: "Sitemap analysis (not done by this service: an empty analysis at once)",
  description:
    "This service fetches no site a user names; it answers the sitemap's address and empty sections, so ALwrity's step continues. " +
    "Nothing is read, billed or stored, so no user is needed (ALwrity sends its token anyway).",
  tags: ["alwrity"],
  auth: false,
  body: {
    schema: sitemapBody,
    description: "ALwrity's `{user_url, competitors, …}`.",
    example: { user_url: "https://example.com", competitors: ["rival.example"] },
  },
  responses: {
    200: { description: "Empty analysis.", content: { "application/json": { schema: aiStepResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ body }) => json(sitemapAnalysis(body.user_url, body.competitors ?? [])),
});

export const alwrityGeneratePersona = defineRoute({
  method: "POST",
  path: "/api/onboarding/step4/generate-personas-async",
  operationId: "alwrityGeneratePersona",
  summary: "Generate the caller's writing persona (ALwrity's personalization step)",
  description:
    "Runs now and answers a task already `completed` (or `failed`, its sentence in `message` and in the task's `error`), which ALwrity reads from " +
    `\`/persona-task/{id}\`; kept in step 4. Gemini only. ${aiNote.replace("200 `{success: false, error, code}`", "a `failed` task")}`,
  tags: ["alwrity"],
  auth: true,
  body: {
    schema: personaRequestBody,
    description: "ALwrity's `{onboarding_data, selected_platforms, user_preferences}`.",
    example: {
      onboarding_data: { websiteAnalysis: null, businessData: null },
      selected_platforms: ["linkedin", "blog"],
      user_preferences: null,
    },
  },
  responses: {
    200: { description: "The task.", content: { "application/json": { schema: personaTaskStart } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ request, deps, userId, body }) => json(await generatePersona(deps, userId, body, request.signal)),
});

export const alwrityPersonaTask = defineRoute({
  method: "GET",
  path: "/api/onboarding/step4/persona-task/:id",
  operationId: "alwrityPersonaTask",
  summary: "The caller's persona task",
  description: 'The caller\'s last task only: any other id is a `failed` task "Task not found" (ALwrity stops polling on it).',
  tags: ["alwrity"],
  auth: true,
  params: { schema: personaTaskParams, example: { id: "task_00000000000000000000000000000000" } },
  responses: {
    200: {
      description: "The task, with its result.",
      content: { "application/json": { schema: personaTaskResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: [],
  handler: async ({ deps, userId, params }) => json(await personaTask(deps, userId, params.id)),
});

export const alwrityPersonaLatest = defineRoute({
  method: "GET",
  path: "/api/onboarding/step4/persona-latest",
  operationId: "alwrityPersonaLatest",
  summary: "The caller's persona, if any",
  description: "`success: false, persona: null` when none was generated (ALwrity then generates one).",
  tags: ["alwrity"],
  auth: true,
  responses: {
    200: { description: "The persona.", content: { "application/json": { schema: personaLatestResponse } }, headers: ["Cache-Control"] },
  },
  problems: [],
  handler: async ({ deps, userId }) => json(await latestPersona(deps, userId)),
});

export default [
  alwrityStyleDetection,
  alwritySessionAnalyses,
  alwrityCheckExisting,
  alwrityAnalysisById,
  alwrityBusinessInfo,
  alwrityDiscoverCompetitors,
  alwritySitemap,
  alwrityGeneratePersona,
  alwrityPersonaTask,
  alwrityPersonaLatest,
];
