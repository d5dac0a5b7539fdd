/**
 * ALwrity's onboarding client, replayed call for call: the exact requests its frontend makes
 * (AJaySi/ALwrity at b1ebe10, 2025-10; `useApiKeyStep.ts` is unchanged since), over three
 * transports of the same app: in-process (`app.fetch`), the local server (`npm start`'s
 * @hono/node-server over real HTTP) and the Lambda handler (API Gateway v2 events).
 *
 * Line references (AJaySi/ALwrity at b1ebe10, counted in `git show b1ebe10:<file>`): `alwrityCalls`
 * below lists every request of the app's start and of the onboarding wizard's steps 1 to 6, each
 * with its file and line; older comments use O: frontend/src/api/onboarding.ts, U:
 * frontend/src/components/OnboardingWizard/ApiKeyStep/utils/useApiKeyStep.ts, C:
 * frontend/src/contexts/OnboardingContext.tsx (counted in an earlier copy; `alwrityCalls` is exact).
 * frontend/src/api/client.ts (axios `apiClient`: baseURL REACT_APP_API_URL, `Authorization:
 * Bearer <Clerk getToken()>` on every call, JSON bodies, no cookies).
 */
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import type { LambdaEvent } from "hono/aws-lambda";
import { createLambdaHandler } from "../../lib/server/lambda.js";
import type { TestRuntime } from "../helpers/runtime.js";

/** One request ALwrity's frontend makes, where it makes it, and the AlwrityApi method that replays it. */
export interface AlwrityCall {
  method: "GET" | "POST";
  /** `:name` for a path parameter. */
  path: string;
  /** file:line at b1ebe10 (frontend/src/…). */
  at: string;
  step: "start" | 1 | 2 | 3 | 4 | 5 | 6;
  replay: keyof AlwrityApi;
  /**
   * False for code the wizard's UI does not reach at b1ebe10: useApiKeyStep's handleContinue (ApiKeyStep.tsx:45
   * takes it and renders nothing that calls it). Replayed by the key-step tests, not by the whole-wizard run.
   */
  reachable?: false;
}

/**
 * Every call of the app's start and of wizard steps 1 to 6 at b1ebe10 (`git grep -n
 * "apiClient\.\(get\|post\)"` over App.tsx, contexts/, api/ and components/OnboardingWizard/, and
 * the GSC/WordPress clients the integrations step opens). Calls those files define that the
 * wizard never makes are left out: startOnboarding (/start), getApiKeys (FinalStep's fallback,
 * only after a failed summary), getOnboardingConfig, setProgress, skipStep, resetOnboarding,
 * businessInfo get/update, the GSC/WordPress connect, callback and disconnect calls (Connect is
 * not offered: docs/alwrity.md), StyleDetectionStep.tsx (not mounted by Wizard.tsx).
 * tests/alwrity/alwrity-replay.happy.test.ts fails when one of these is not replayed.
 */
export const alwrityCalls: readonly AlwrityCall[] = [
  { method: "GET", path: "/health", at: "App.tsx:144", step: "start", replay: "health" },
  { method: "GET", path: "/api/onboarding/init", at: "contexts/OnboardingContext.tsx:106", step: "start", replay: "init" },
  { method: "GET", path: "/api/onboarding/init", at: "components/OnboardingWizard/Wizard.tsx:252", step: "start", replay: "init" },
  { method: "GET", path: "/api/onboarding/api-keys/onboarding", at: "api/onboarding.ts:107", step: 1, replay: "getApiKeysForOnboarding" },
  { method: "GET", path: "/api/onboarding/step/:step", at: "api/onboarding.ts:162", step: 1, replay: "getStepData" },
  { method: "POST", path: "/api/onboarding/api-keys", at: "api/onboarding.ts:136", step: 1, replay: "saveApiKey" },
  {
    method: "POST",
    path: "/api/frontend-env/update",
    at: "components/OnboardingWizard/ApiKeyStep/utils/useApiKeyStep.ts:109",
    step: 1,
    replay: "updateFrontendEnv",
    reachable: false,
  },
  {
    method: "POST",
    path: "/api/onboarding/step/:step/complete",
    at: "components/OnboardingWizard/ApiKeyStep/utils/useApiKeyStep.ts:149",
    step: 1,
    replay: "post",
    reachable: false,
  },
  { method: "POST", path: "/api/onboarding/step/:step/complete", at: "api/onboarding.ts:53", step: 2, replay: "setCurrentStep" },
  { method: "GET", path: "/api/onboarding/status", at: "api/onboarding.ts:45", step: 2, replay: "getCurrentStep" },
  {
    method: "GET",
    path: "/api/onboarding/style-detection/session-analyses",
    at: "components/OnboardingWizard/WebsiteStep/utils/websiteUtils.ts:267",
    step: 2,
    replay: "sessionAnalyses",
  },
  {
    method: "GET",
    path: "/api/onboarding/style-detection/check-existing/:url",
    at: "components/OnboardingWizard/WebsiteStep/utils/websiteUtils.ts:76",
    step: 2,
    replay: "checkExisting",
  },
  {
    method: "POST",
    path: "/api/onboarding/style-detection/complete",
    at: "components/OnboardingWizard/WebsiteStep/utils/websiteUtils.ts:194",
    step: 2,
    replay: "performAnalysis",
  },
  {
    method: "GET",
    path: "/api/onboarding/style-detection/analysis/:id",
    at: "components/OnboardingWizard/WebsiteStep/utils/websiteUtils.ts:113",
    step: 2,
    replay: "loadExistingAnalysis",
  },
  { method: "POST", path: "/onboarding/business-info", at: "api/businessInfo.ts:22", step: 2, replay: "saveBusinessInfo" },
  {
    method: "POST",
    path: "/api/onboarding/step3/discover-competitors",
    at: "components/OnboardingWizard/CompetitorAnalysisStep.tsx:174",
    step: 3,
    replay: "discoverCompetitors",
  },
  {
    method: "POST",
    path: "/api/onboarding/step3/analyze-sitemap",
    at: "components/OnboardingWizard/CompetitorAnalysisStep.tsx:237",
    step: 3,
    replay: "analyzeSitemap",
  },
  {
    method: "GET",
    path: "/api/onboarding/step4/persona-latest",
    at: "components/OnboardingWizard/PersonaStep.tsx:163",
    step: 4,
    replay: "personaLatest",
  },
  {
    method: "POST",
    path: "/api/onboarding/step4/generate-personas-async",
    at: "components/OnboardingWizard/PersonaStep/personaGeneration.ts:59",
    step: 4,
    replay: "generatePersonas",
  },
  {
    method: "GET",
    path: "/api/onboarding/step4/persona-task/:id",
    at: "components/OnboardingWizard/PersonaStep/personaGeneration.ts:68",
    step: 4,
    replay: "personaTask",
  },
  { method: "GET", path: "/api/onboarding/step4/persona-task/:id", at: "hooks/usePersonaPolling.ts:108", step: 4, replay: "personaTask" },
  {
    method: "GET",
    path: "/gsc/status",
    at: "api/gsc.ts:152 (from OnboardingWizard/common/useGSCConnection.ts:27)",
    step: 5,
    replay: "gscStatus",
  },
  {
    method: "POST",
    path: "/gsc/clear-incomplete",
    at: "api/gsc.ts:166 (from OnboardingWizard/common/useGSCConnection.ts:38)",
    step: 5,
    replay: "gscClearIncomplete",
  },
  {
    method: "GET",
    path: "/wp/status",
    at: "api/wordpressOAuth.ts:75 (from hooks/useWordPressOAuth.ts:50)",
    step: 5,
    replay: "wordpressStatus",
  },
  {
    method: "GET",
    path: "/api/onboarding/summary",
    at: "api/onboarding.ts:202 (FinalStep.tsx:43)",
    step: 6,
    replay: "getOnboardingSummary",
  },
  {
    method: "GET",
    path: "/api/onboarding/website-analysis",
    at: "api/onboarding.ts:207 (FinalStep.tsx:46)",
    step: 6,
    replay: "getWebsiteAnalysisData",
  },
  {
    method: "GET",
    path: "/api/onboarding/research-preferences",
    at: "api/onboarding.ts:212 (FinalStep.tsx:47)",
    step: 6,
    replay: "getResearchPreferencesData",
  },
  {
    method: "POST",
    path: "/api/onboarding/step/:step/complete",
    at: "api/onboarding.ts:53 (FinalStep.tsx:86, setCurrentStep(6))",
    step: 6,
    replay: "setCurrentStep",
  },
  {
    method: "POST",
    path: "/api/onboarding/complete",
    at: "api/onboarding.ts:191 (FinalStep.tsx:91)",
    step: 6,
    replay: "completeOnboarding",
  },
];

/** Whether `path` (as sent) is an instance of `template` (`:name` matches one non-empty segment). */
export function matchesTemplate(template: string, path: string): boolean {
  const want = template.split("/");
  const got = path.split("?")[0]!.split("/");
  return want.length === got.length && want.every((part, i) => (part.startsWith(":") ? got[i] !== "" : part === got[i]));
}

/** The listed calls (those the UI reaches, or all) no exchange of `log` replayed (by method and path). */
export function unreplayed(log: readonly { method: string; path: string }[], options: { includeUnreachable?: boolean } = {}): string[] {
  return alwrityCalls
    .filter((c) => options.includeUnreachable || c.reachable !== false)
    .filter((c) => !log.some((x) => x.method === c.method && matchesTemplate(c.path, x.path)))
    .map((c) => `${c.method} ${c.path} (${c.at})`);
}

export type TransportName = "app" | "local server" | "lambda";
export const transportNames: readonly TransportName[] = ["app", "local server", "lambda"];

/** What axios hands ALwrity's code: status and the parsed body (`response.data`). */
export interface Reply {
  status: number;
  data: any;
  headers: Headers;
}

export interface Transport {
  /** `token` undefined: no Authorization header (App.tsx's GET /health, sent before any sign-in). */
  send(method: string, path: string, token: string | undefined, body?: unknown): Promise<Reply>;
  close(): Promise<void>;
}

/** axios: `JSON.stringify(body)` (undefined members dropped), `content-type: application/json`, the bearer token when there is one. */
function requestParts(token: string | undefined, body: unknown): { headers: Record<string, string>; body?: string } {
  const headers: Record<string, string> = { accept: "application/json, text/plain, */*" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body === undefined) return { headers };
  headers["content-type"] = "application/json";
  return { headers, body: JSON.stringify(body) };
}

async function reply(response: Response): Promise<Reply> {
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : undefined, headers: response.headers };
}

const API_HOST = "r4nd0m1d.execute-api.eu-west-1.amazonaws.com";

export async function openTransport(name: TransportName, rt: TestRuntime): Promise<Transport> {
  if (name === "app") {
    return {
      send: async (method, path, token, body) => {
        const parts = requestParts(token, body);
        return reply(await rt.fetch(new Request(`http://localhost${path}`, { method, headers: parts.headers, body: parts.body })));
      },
      close: async () => {},
    };
  }
  if (name === "local server") {
    // What scripts/start.ts does: the one app under @hono/node-server.
    const server: ServerType = await new Promise((resolve) => {
      const s = serve({ fetch: rt.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    const { port } = server.address() as AddressInfo;
    return {
      send: async (method, path, token, body) => {
        const parts = requestParts(token, body);
        return reply(await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: parts.headers, body: parts.body }));
      },
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }
  const handler = createLambdaHandler(rt.runtime);
  const development = rt.runtime.config.mode === "development";
  return {
    send: async (method, path, token, body) => {
      const parts = requestParts(token, body);
      // Development answers only this machine: a Lambda event addressed to localhost, no proxy headers.
      const host = development ? "localhost" : API_HOST;
      const event = {
        version: "2.0",
        routeKey: "$default",
        rawPath: path,
        rawQueryString: "",
        headers: {
          host,
          ...(development ? {} : { "x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https" }),
          ...parts.headers,
          ...(parts.body !== undefined ? { "content-length": String(Buffer.byteLength(parts.body)) } : {}),
        },
        requestContext: {
          accountId: "123456789012",
          apiId: "r4nd0m1d",
          domainName: host,
          domainPrefix: "r4nd0m1d",
          http: { method, path, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: "vitest" },
          requestId: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
          routeKey: "$default",
          stage: "$default",
          time: "12/Mar/2026:19:03:58 +0000",
          timeEpoch: 1_773_342_238_000,
        },
        ...(parts.body !== undefined ? { body: parts.body } : {}),
        isBase64Encoded: false,
      } as unknown as LambdaEvent;
      const result = await handler(event);
      const headers = new Headers(result.headers as Record<string, string>);
      const text = result.isBase64Encoded ? Buffer.from(result.body, "base64").toString("utf8") : result.body;
      return { status: result.statusCode, data: text ? JSON.parse(text) : undefined, headers };
    },
    close: async () => {},
  };
}

/** Thrown like axios does for a non-2xx answer (`error.response.status`, `error.response.data`). */
export class AxiosLikeError extends Error {
  constructor(readonly response: Reply) {
    super(`Request failed with status code ${response.status}`);
  }
}

/** ALwrity's frontend/src/api/onboarding.ts, for one signed-in user. */
export class AlwrityApi {
  /** Every exchange, in order, for assertions. */
  readonly log: { method: string; path: string; body?: unknown; reply: Reply; authorized: boolean }[] = [];

  constructor(
    private readonly transport: Transport,
    private readonly getToken: () => string,
  ) {}

  private async call(method: string, path: string, body?: unknown, options: { anonymous?: boolean } = {}): Promise<Reply> {
    const token = options.anonymous ? undefined : this.getToken();
    const reply = await this.transport.send(method, path, token, body);
    this.log.push({ method, path, body, reply, authorized: token !== undefined });
    if (reply.status >= 400) throw new AxiosLikeError(reply);
    return reply;
  }

  // O:45-51 getCurrentStep: GET /api/onboarding/status (O:48), reads current_step (O:50).
  async getCurrentStep() {
    const res = await this.call("GET", "/api/onboarding/status");
    return { step: res.data.current_step || 1 };
  }

  // O:53-74 setCurrentStep: POST /api/onboarding/step/{step}/complete {data: stepData || {}, validation_errors: []} (O:57-60); shows errorData.detail (O:68).
  async setCurrentStep(step: number, stepData?: unknown) {
    const res = await this.call("POST", `/api/onboarding/step/${step}/complete`, { data: stepData || {}, validation_errors: [] });
    return { step, response: res.data };
  }

  // O:113-149 getApiKeysForOnboarding: GET /api/onboarding/api-keys/onboarding (O:122), returns data.api_keys || {} (O:124); on 429 reads data.retry_after (O:131).
  async getApiKeysForOnboarding(): Promise<Record<string, string>> {
    const res = await this.call("GET", "/api/onboarding/api-keys/onboarding");
    return res.data.api_keys || {};
  }

  // O:151-158 saveApiKey: POST /api/onboarding/api-keys {provider, api_key, description} (O:152-156; description undefined: dropped by JSON).
  async saveApiKey(provider: string, api_key: string, description?: string) {
    const res = await this.call("POST", "/api/onboarding/api-keys", { provider, api_key, description });
    return res.data;
  }

  // O:160-163 getProgress: GET /api/onboarding/progress (O:161), reads completion_percentage (O:162).
  async getProgress() {
    const res = await this.call("GET", "/api/onboarding/progress");
    return { progress: res.data.completion_percentage || 0 };
  }

  // O:177-180 getStepData: GET /api/onboarding/step/{n} (O:178).
  async getStepData(stepNumber: number) {
    return (await this.call("GET", `/api/onboarding/step/${stepNumber}`)).data;
  }

  // O:182-194 getStep1ApiKeysFromProgress: step.data.api_keys (O:185), errors swallowed (O:191).
  async getStep1ApiKeysFromProgress(): Promise<{ gemini?: string; exa?: string; copilotkit?: string }> {
    try {
      const step = await this.getStepData(1);
      const keys = step?.data?.api_keys || {};
      return { gemini: keys.gemini || undefined, exa: keys.exa || undefined, copilotkit: keys.copilotkit || undefined };
    } catch {
      return {};
    }
  }

  // O:201-204 validateApiKeys (posts, O:202; the issue names GET too: both are served).
  async validateApiKeys(method: "GET" | "POST" = "POST") {
    return (await this.call(method, "/api/onboarding/api-keys/validate")).data;
  }

  // O:206-209 completeOnboarding: POST /api/onboarding/complete (O:207).
  async completeOnboarding() {
    return (await this.call("POST", "/api/onboarding/complete")).data;
  }

  // O:216-230 FinalStep's loaders: summary (O:218), website analysis (O:223), research preferences (O:228).
  async getOnboardingSummary() {
    return (await this.call("GET", "/api/onboarding/summary")).data;
  }
  async getWebsiteAnalysisData() {
    return (await this.call("GET", "/api/onboarding/website-analysis")).data;
  }
  async getResearchPreferencesData() {
    return (await this.call("GET", "/api/onboarding/research-preferences")).data;
  }

  // C:~112-114 fetchOnboardingData: GET /api/onboarding/init, destructures {user, onboarding, session}.
  async init() {
    const res = await this.call("GET", "/api/onboarding/init");
    const { user, onboarding, session } = res.data;
    // C:~116-120 logs user.id, onboarding.current_step: a null user throws here and breaks the app.
    void user.id;
    return { user, onboarding, session };
  }

  // U:108-113 the frontend .env update (development; its errors are ignored).
  async updateFrontendEnv(value: string) {
    return this.call("POST", "/api/frontend-env/update", {
      key: "REACT_APP_COPILOTKIT_API_KEY",
      value,
      description: "CopilotKit API key for AI assistant functionality",
    });
  }

  // App.tsx:144: the app's first call, no /api prefix, before any sign-in (no token); only a 2xx matters.
  async health() {
    return (await this.call("GET", "/health", undefined, { anonymous: true })).data;
  }

  // websiteUtils.ts:267 fetchLastAnalysis: data.success && data.analyses[0].website_url / .style_analysis.
  async sessionAnalyses() {
    return (await this.call("GET", "/api/onboarding/style-detection/session-analyses")).data;
  }

  // websiteUtils.ts:76 checkExistingAnalysis: the URL encoded as one segment; reads result.exists.
  async checkExisting(url: string) {
    return (await this.call("GET", `/api/onboarding/style-detection/check-existing/${encodeURIComponent(url)}`)).data;
  }

  // websiteUtils.ts:113 loadExistingAnalysis: result.success && result.analysis (flat fields and style_guidelines).
  async loadExistingAnalysis(analysisId: number) {
    return (await this.call("GET", `/api/onboarding/style-detection/analysis/${analysisId}`)).data;
  }

  // websiteUtils.ts:186-221 performAnalysis: posts {url, include_patterns, include_guidelines}; on success flattens
  // style_analysis with style_guidelines' lists and style_patterns into the analysis the step shows and completes with.
  async performAnalysis(url: string) {
    const result = (
      await this.call("POST", "/api/onboarding/style-detection/complete", { url, include_patterns: true, include_guidelines: true })
    ).data;
    if (!result.success) return { success: false as const, error: result.error as string, result };
    const analysis = {
      ...result.style_analysis,
      guidelines: result.style_guidelines?.guidelines,
      best_practices: result.style_guidelines?.best_practices,
      avoid_elements: result.style_guidelines?.avoid_elements,
      content_strategy: result.style_guidelines?.content_strategy,
      ai_generation_tips: result.style_guidelines?.ai_generation_tips,
      competitive_advantages: result.style_guidelines?.competitive_advantages,
      content_calendar_suggestions: result.style_guidelines?.content_calendar_suggestions,
      style_patterns: result.style_patterns,
      style_consistency: result.style_patterns?.style_consistency,
      unique_elements: result.style_patterns?.unique_elements,
    };
    return { success: true as const, analysis, result };
  }

  // businessInfo.ts:22 saveBusinessInfo (BusinessDescriptionStep.tsx:47-50: user_id is always 1).
  async saveBusinessInfo(info: { business_description: string; industry?: string; target_audience?: string; business_goals?: string }) {
    return (await this.call("POST", "/onboarding/business-info", { ...info, user_id: 1 })).data;
  }

  // CompetitorAnalysisStep.tsx:174 (aiApiClient): {user_url, industry_context, num_results: 25, website_analysis_data}.
  async discoverCompetitors(userUrl: string, websiteAnalysis: unknown, industryContext?: string) {
    return (
      await this.call("POST", "/api/onboarding/step3/discover-competitors", {
        user_url: userUrl,
        industry_context: industryContext,
        num_results: 25,
        website_analysis_data: websiteAnalysis ?? null,
      })
    ).data;
  }

  // CompetitorAnalysisStep.tsx:237 (aiApiClient): started once competitors are shown.
  async analyzeSitemap(userUrl: string, competitorDomains: string[], industryContext?: string) {
    return (
      await this.call("POST", "/api/onboarding/step3/analyze-sitemap", {
        user_url: userUrl,
        competitors: competitorDomains,
        industry_context: industryContext,
        analyze_content_trends: true,
        analyze_publishing_patterns: true,
      })
    ).data;
  }

  // PersonaStep.tsx:163: resp.data.success && resp.data.persona, else none yet (so does a 404 there).
  async personaLatest() {
    return (await this.call("GET", "/api/onboarding/step4/persona-latest")).data;
  }

  // personaGeneration.ts:52-59: {onboarding_data: prepareOnboardingData(stepData) (api/personaApi.ts:126), selected_platforms, user_preferences: null}.
  async generatePersonas(stepData: any, selectedPlatforms: string[] = ["linkedin", "blog"]) {
    const onboarding_data = {
      websiteAnalysis: stepData?.analysis || null,
      competitorResearch: {
        competitors: stepData?.competitors || [],
        researchSummary: stepData?.researchSummary || null,
        socialMediaAccounts: stepData?.socialMediaAccounts || {},
      },
      sitemapAnalysis: stepData?.sitemapAnalysis || null,
      businessData: stepData?.businessData || null,
    };
    return (
      await this.call("POST", "/api/onboarding/step4/generate-personas-async", {
        onboarding_data,
        selected_platforms: selectedPlatforms,
        user_preferences: null,
      })
    ).data;
  }

  // personaGeneration.ts:68 and usePersonaPolling.ts:108: status, progress, result | error.
  async personaTask(taskId: string) {
    return (await this.call("GET", `/api/onboarding/step4/persona-task/${taskId}`)).data;
  }

  // IntegrationsStep: useGSCConnection.ts:27 (status; on failure clear-incomplete), useWordPressOAuth.ts:50 (status). Errors are caught there.
  async gscStatus() {
    return (await this.call("GET", "/gsc/status")).data;
  }
  async gscClearIncomplete() {
    return (await this.call("POST", "/gsc/clear-incomplete")).data;
  }
  async wordpressStatus() {
    return (await this.call("GET", "/wp/status")).data;
  }

  /** Raw exchange (the step-1 completion in useApiKeyStep posts `{data}` only: U:149). */
  async post(path: string, body: unknown) {
    return this.call("POST", path, body);
  }
}

const exaUuidRegex = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * ALwrity's API-key step (useApiKeyStep.ts) as a state machine: three fields, the keys loaded
 * on mount, an auto-save of all three on every edit once all are non-empty, and Continue.
 */
export class ApiKeyStep {
  gemini = "";
  exa = "";
  copilotkit = "";
  /** localStorage.setItem('copilotkit_api_key', …) (U:104 and the auto-save). */
  localStorageCopilotkit: string | undefined;
  /** Every auto-save's three answers (status per provider). */
  readonly autoSaves: { provider: string; status: number; data: any }[][] = [];
  error: string | null = null;

  constructor(private readonly api: AlwrityApi) {}

  // U:25-49 loadExistingKeys: the prefill endpoint, then step 1's data, merged; errors swallowed.
  async loadExistingKeys(): Promise<Record<string, string>> {
    try {
      const envKeys = await this.api.getApiKeysForOnboarding();
      const progressKeys = await this.api.getStep1ApiKeysFromProgress();
      const merged = {
        gemini: envKeys.gemini ?? progressKeys.gemini ?? "",
        exa: envKeys.exa ?? progressKeys.exa ?? "",
        copilotkit: envKeys.copilotkit ?? progressKeys.copilotkit ?? "",
      };
      if (merged.gemini) this.gemini = merged.gemini;
      if (merged.exa) this.exa = merged.exa;
      if (merged.copilotkit) this.copilotkit = merged.copilotkit;
      return merged;
    } catch {
      return {};
    }
  }

  /** One edit of one field, then the auto-save effect (U:~255-285: on every change, once all three are non-empty). */
  async edit(field: "gemini" | "exa" | "copilotkit", value: string): Promise<void> {
    this[field] = value;
    const isValid = !!(this.gemini.trim() && this.exa.trim() && this.copilotkit.trim());
    if (!isValid) return;
    // Three saves in parallel, errors logged and ignored.
    const sends: [string, string][] = [];
    if (this.gemini.trim()) sends.push(["gemini", this.gemini.trim()]);
    if (this.exa.trim()) sends.push(["exa", this.exa.trim()]);
    if (this.copilotkit.trim()) {
      sends.push(["copilotkit", this.copilotkit.trim()]);
      this.localStorageCopilotkit = this.copilotkit.trim();
    }
    const answers = await Promise.all(
      sends.map(async ([provider, key]) => {
        try {
          return { provider, status: 200, data: await this.api.saveApiKey(provider, key) };
        } catch (error) {
          const response = (error as AxiosLikeError).response;
          return { provider, status: response.status, data: response.data };
        }
      }),
    );
    this.autoSaves.push(answers);
  }

  /** Types `value` into `field` one character at a time (each keystroke an edit). */
  async type(field: "gemini" | "exa" | "copilotkit", value: string): Promise<void> {
    for (let i = 1; i <= value.length; i++) await this.edit(field, value.slice(0, i));
  }

  /** Pastes `value` into `field` (one edit). */
  paste(field: "gemini" | "exa" | "copilotkit", value: string): Promise<void> {
    return this.edit(field, value);
  }

  /**
   * The wizard's Continue on step 1 (WizardNavigation → Wizard.tsx:296 handleNext with a click event): enabled
   * when the three fields are filled (useApiKeyStep.ts:231 isValid), it sends no request (no serialized step data).
   */
  wizardContinue(): boolean {
    return !!(this.gemini.trim() && this.exa.trim() && this.copilotkit.trim());
  }

  // U:51-180 handleContinue (not called by ApiKeyStep.tsx at b1ebe10: it destructures it at :45 and renders nothing that calls it): client-side checks, three saves + the frontend .env update, step 1 completion, reload.
  async handleContinue(): Promise<boolean> {
    this.error = null;
    if (!this.gemini.trim() || !this.exa.trim() || !this.copilotkit.trim()) {
      this.error = "Please provide all required API keys.";
      return false;
    }
    // useApiKeyStep.ts:69, :76 and :83: the frontend's own format checks, Gemini's first ("AIza" only: today's
    // AI Studio keys are "AQ.", and a saved key comes back as a hint "…abcd").
    if (!this.gemini.trim().startsWith("AIza")) {
      this.error = 'Gemini API key must start with "AIza"';
      return false;
    }
    if (!exaUuidRegex.test(this.exa.trim())) {
      this.error = "Exa API key must be a valid UUID (format: xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)";
      return false;
    }
    if (!this.copilotkit.trim().startsWith("ck_pub_")) {
      this.error = 'CopilotKit API key must start with "ck_pub_"';
      return false;
    }
    const promises = [this.api.saveApiKey("gemini", this.gemini.trim()), this.api.saveApiKey("exa", this.exa.trim())];
    promises.push(this.api.saveApiKey("copilotkit", this.copilotkit.trim()));
    this.localStorageCopilotkit = this.copilotkit.trim();
    // U:108-118: awaited before the saves settle; failures ignored.
    try {
      await this.api.updateFrontendEnv(this.copilotkit.trim());
    } catch {
      /* ignored by ALwrity */
    }
    try {
      await Promise.all(promises);
    } catch {
      this.error = "Failed to save API keys. Please try again.";
      return false;
    }
    const stepData = { api_keys: { gemini: this.gemini.trim(), exa: this.exa.trim(), copilotkit: this.copilotkit.trim() } };
    try {
      // U:149: `{ data: stepData }` only.
      await this.api.post("/api/onboarding/step/1/complete", { data: stepData });
    } catch (error) {
      // U:155-158: the problem's `detail` is shown as a string.
      this.error = (error as AxiosLikeError).response?.data?.detail || "Failed to complete step. Please try again.";
      return false;
    }
    await this.loadExistingKeys();
    return true;
  }
}
