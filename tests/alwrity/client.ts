/**
 * ALwrity's onboarding client, replayed call for call: the exact requests its frontend makes
 * (AJaySi/ALwrity at b1ebe10, 2025-10; `useApiKeyStep.ts` is unchanged since), over three
 * transports of the same app: in-process (`app.fetch`), the local server (`npm start`'s
 * @hono/node-server over real HTTP) and the Lambda handler (API Gateway v2 events).
 *
 * Line references: frontend/src/api/onboarding.ts (O:), frontend/src/components/OnboardingWizard/
 * ApiKeyStep/utils/useApiKeyStep.ts (U:), frontend/src/contexts/OnboardingContext.tsx (C:),
 * counted in the copies the look-up index holds (onboarding.ts at 1db10cc, whose calls are those
 * of b1ebe10; useApiKeyStep.ts unchanged since b1ebe10); "~" marks a line counted less surely.
 * frontend/src/api/client.ts (axios `apiClient`: baseURL REACT_APP_API_URL, `Authorization:
 * Bearer <Clerk getToken()>` on every call, JSON bodies, no cookies).
 */
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import type { LambdaEvent } from "hono/aws-lambda";
import { createLambdaHandler } from "../../lib/server/lambda.js";
import type { TestRuntime } from "../helpers/runtime.js";

export type TransportName = "app" | "local server" | "lambda";
export const transportNames: readonly TransportName[] = ["app", "local server", "lambda"];

/** What axios hands ALwrity's code: status and the parsed body (`response.data`). */
export interface Reply {
  status: number;
  data: any;
  headers: Headers;
}

export interface Transport {
  send(method: string, path: string, token: string, body?: unknown): Promise<Reply>;
  close(): Promise<void>;
}

/** axios: `JSON.stringify(body)` (undefined members dropped), `content-type: application/json`, the bearer token. */
function requestParts(token: string, body: unknown): { headers: Record<string, string>; body?: string } {
  const headers: Record<string, string> = { accept: "application/json, text/plain, */*", authorization: `Bearer ${token}` };
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
  readonly log: { method: string; path: string; body?: unknown; reply: Reply }[] = [];

  constructor(
    private readonly transport: Transport,
    private readonly getToken: () => string,
  ) {}

  private async call(method: string, path: string, body?: unknown): Promise<Reply> {
    const reply = await this.transport.send(method, path, this.getToken(), body);
    this.log.push({ method, path, body, reply });
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

  // U:51-180 handleContinue: client-side checks, three saves + the frontend .env update, step 1 completion, reload.
  async handleContinue(): Promise<boolean> {
    this.error = null;
    if (!this.gemini.trim() || !this.exa.trim() || !this.copilotkit.trim()) {
      this.error = "Please provide all required API keys.";
      return false;
    }
    // U:77 and U:83: the frontend's own format checks (Gemini's is commented out at b1ebe10).
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
