/**
 * Shared machinery of the batteries (tests/batteries: auth, faults, input, secrets, cors):
 * - the app's own route list (lib/routes.ts) as endpoints, so a new route is covered by
 *   every battery without editing it;
 * - a valid request for every endpoint (bodies and queries checked against the features' schemas);
 * - the two apps a request can reach: the app over every route (local server and Lambda) and
 *   an app over one path's routes only (what one Vercel function serves);
 * - the bad-token matrix;
 * - fingerprints of the database tables and of files (to prove a rejected request changed
 *   nothing), problem+json checks, a closed port, and a TCP proxy that can drop connections.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { readFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import type { z } from "zod";
import { routes } from "../../lib/routes.js";
import { createApp, type App } from "../../lib/app.js";
import type { Runtime } from "../../lib/platform/runtime.js";
import { examplePath, type AnyRoute, type Method } from "../../lib/http/route.js";
import { errorCodes } from "../../lib/http/errors.js";
import { PROBLEM_TYPE_BASE } from "../../lib/http/problem.js";
import { clerkWebhookEvent } from "../../lib/account/schemas.js";
import { budgetBody, generateBody, usageQuery } from "../../lib/generation/schemas.js";
import { problemSchema } from "../../lib/http/schemas.js";
import { deleteKeyQuery, saveKeysRequest } from "../../lib/keys/schemas.js";
import { sessionBody } from "../../lib/onboarding/schemas.js";
import {
  businessInfoBody,
  competitorsBody,
  personaRequestBody,
  sitemapBody,
  styleDetectionBody,
  frontendEnvBody,
  stepCompleteBody,
} from "../../lib/compat/alwrity/schemas.js";
import { exaBodies, geminiGenerateBody } from "../../lib/gateway/schemas.js";
import type { Database } from "../../db/client.js";
import {
  algNoneToken,
  createTestSigner,
  expiredToken,
  futureIatToken,
  futureNbfToken,
  hs256WithPublicKeyToken,
  malformedTokens,
  noSubToken,
  tamperedToken,
  wrongAzpToken,
  wrongKeyToken,
  type TestSigner,
} from "../../testkit/clerk.js";
import { signWebhook, userDeletedEvent } from "../../testkit/webhooks.js";
import { sampleKeys } from "./runtime.js";

// ---- endpoints from the route table --------------------------------------------------------

export interface Endpoint {
  route: AnyRoute;
  method: Method;
  /** Every method served at this path (OPTIONS excluded). */
  methods: Method[];
  /** "POST /api/onboarding/api-keys" (path parameters as `:name`) */
  label: string;
}

/** Every route of the app, in list order; `filter` picks routes. */
export async function endpoints(filter: (route: AnyRoute) => boolean = () => true): Promise<Endpoint[]> {
  return routes.filter(filter).map((route) => ({
    route,
    method: route.method,
    methods: routes.filter((r) => r.path === route.path).map((r) => r.method),
    label: `${route.method} ${route.path}`,
  }));
}

/** Methods that may carry a JSON body (an endpoint takes one when its route declares `body`). */
export const bodyMethods: readonly Method[] = ["POST", "PUT"];

/** Whether `endpoint` takes a JSON body. */
export const takesBody = (endpoint: Endpoint): boolean => endpoint.route.body !== undefined;

export interface BodySpec {
  schema: z.ZodType;
  /** A valid body; `seed` varies it (distinct keys, steps...). */
  valid(seed: number): Record<string, unknown>;
}

/** The body of every endpoint that takes one, keyed by endpoint label (a test checks coverage). */
export const bodySpecs: Readonly<Record<string, BodySpec>> = {
  // Both forms: the keys by provider, and ALwrity's one key per call.
  "POST /api/onboarding/api-keys": {
    schema: saveKeysRequest,
    valid: (seed) =>
      seed % 2 === 0 ? { provider: "exa", api_key: sampleKeys(seed).exa, description: "battery" } : { ...sampleKeys(seed) },
  },
  "POST /api/onboarding/step/:step/complete": {
    schema: stepCompleteBody,
    valid: (seed) =>
      seed % 2 === 0
        ? { data: { api_keys: { ...sampleKeys(seed) } } }
        : { data: { website_url: `https://example.com/${seed}`, tone: "plain" }, validation_errors: [] },
  },
  "POST /api/frontend-env/update": {
    schema: frontendEnvBody,
    valid: (seed) => ({ key: "REACT_APP_COPILOTKIT_API_KEY", value: sampleKeys(seed).copilotkit, description: "CopilotKit API key" }),
  },
  // ALwrity's wizard steps 2 to 4 (lib/compat/alwrity/routes/wizard.ts).
  "POST /api/onboarding/style-detection/complete": {
    schema: styleDetectionBody,
    valid: (seed) => ({ url: `https://site${seed}.example.com`, include_patterns: true, include_guidelines: true }),
  },
  "POST /onboarding/business-info": {
    schema: businessInfoBody,
    valid: (seed) => ({ user_id: 1, business_description: `Business number ${seed}`, industry: "Food" }),
  },
  "POST /api/onboarding/step3/discover-competitors": {
    schema: competitorsBody,
    valid: (seed) => ({ user_url: `https://site${seed}.example.com`, num_results: 25, website_analysis_data: null }),
  },
  "POST /api/onboarding/step3/analyze-sitemap": {
    schema: sitemapBody,
    valid: (seed) => ({ user_url: `https://site${seed}.example.com`, competitors: ["rival.example"], analyze_content_trends: true }),
  },
  "POST /api/onboarding/step4/generate-personas-async": {
    schema: personaRequestBody,
    valid: () => ({
      onboarding_data: { websiteAnalysis: null, businessData: null },
      selected_platforms: ["linkedin", "blog"],
      user_preferences: null,
    }),
  },
  "PUT /api/onboarding/session": { schema: sessionBody, valid: (seed) => ({ currentStep: 1 + (seed % 6), progress: seed % 101 }) },
  "POST /api/blog/generate": {
    schema: generateBody,
    valid: () => ({ topic: "Battery testing of serverless functions", keywords: ["tests", "faults"], wordCount: 300, research: true }),
  },
  // Generous caps (or none), so the batteries' generations keep running after a valid PUT.
  "PUT /api/usage/budget": { schema: budgetBody, valid: (seed) => ({ monthlyUsd: seed % 3 === 0 ? null : 100 + (seed % 900) }) },
  // The gateway: the providers' own bodies, small (the fakes answer them).
  "POST /api/gateway/gemini/v1beta/models/:action": {
    schema: geminiGenerateBody,
    valid: (seed) => ({ contents: [{ role: "user", parts: [{ text: `battery ${seed}` }] }], generationConfig: { maxOutputTokens: 64 } }),
  },
  "POST /api/gateway/exa/search": { schema: exaBodies.search, valid: (seed) => ({ query: `battery ${seed}`, numResults: 2 }) },
  "POST /api/gateway/exa/findSimilar": {
    schema: exaBodies.findSimilar,
    valid: (seed) => ({ url: `https://example.com/${seed}`, numResults: 2 }),
  },
  "POST /api/gateway/exa/contents": { schema: exaBodies.contents, valid: (seed) => ({ urls: [`https://example.com/${seed}`] }) },
  "POST /api/gateway/exa/answer": { schema: exaBodies.answer, valid: (seed) => ({ query: `battery ${seed}` }) },
  // A user only the webhook's requests name: deleting them touches no other test's data.
  "POST /api/webhooks/clerk": { schema: clerkWebhookEvent, valid: (seed) => userDeletedEvent(`user_battery_webhook_${seed}`) },
};

/**
 * Endpoints that authenticate a request by a signature over its body instead of a Clerk
 * session: `endpointRequest` signs whatever body it sends (valid or not) with the test
 * secret every test runtime is configured with, so the batteries reach past the signature
 * check into the endpoint itself; `unsigned: true` sends no signature.
 */
export const signedEndpoints: ReadonlySet<string> = new Set(["POST /api/webhooks/clerk"]);

export interface QuerySpec {
  schema: z.ZodType;
  /** A valid query string, without "?". */
  valid: string;
}

/** Endpoints that read a query, keyed by endpoint label. */
export const querySpecs: Readonly<Record<string, QuerySpec>> = {
  "DELETE /api/onboarding/api-keys": { schema: deleteKeyQuery, valid: "provider=gemini" },
  "GET /api/usage": { schema: usageQuery, valid: "from=2024-01-01&to=2024-02-01" },
};

export interface RequestParts {
  /** Session token sent as `Authorization: Bearer`. */
  token?: string;
  origin?: string;
  headers?: Record<string, string>;
  /** Replaces the valid query (without "?"). */
  query?: string;
  /** Replaces the valid body: a value to JSON-encode, or raw text/bytes. */
  body?: { json: unknown } | { raw: string | Uint8Array };
  seed?: number;
  /** For a signed endpoint (`signedEndpoints`): send no signature headers. */
  unsigned?: boolean;
}

/** A request to `endpoint` that passes validation unless `parts` says otherwise. */
export function endpointRequest(endpoint: Endpoint, parts: RequestParts = {}): Request {
  const headers = new Headers(parts.headers);
  if (parts.token !== undefined) headers.set("authorization", `Bearer ${parts.token}`);
  if (parts.origin !== undefined) headers.set("origin", parts.origin);
  const query = parts.query ?? querySpecs[endpoint.label]?.valid ?? "";
  let body: string | Uint8Array | undefined;
  if (parts.body && "raw" in parts.body) body = parts.body.raw;
  else if (parts.body) body = JSON.stringify(parts.body.json);
  else if (takesBody(endpoint)) {
    const spec = bodySpecs[endpoint.label];
    if (!spec) throw new Error(`no body spec for ${endpoint.label}: add one to tests/helpers/battery.ts`);
    body = JSON.stringify(spec.valid(parts.seed ?? 1));
  }
  if (body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  if (signedEndpoints.has(endpoint.label) && !parts.unsigned && !headers.has("svix-signature")) {
    for (const [name, value] of Object.entries(signWebhook(body ?? ""))) headers.set(name, value);
  }
  const url = `http://localhost${examplePath(endpoint.route)}${query ? `?${query}` : ""}`;
  return new Request(url, { method: endpoint.method, headers, body: body as BodyInit | undefined });
}

// ---- transports ------------------------------------------------------------------------------

/** `app`: the app over every route (local server, Lambda). `function`: an app over this path's routes only (one Vercel function). */
export type Transport = "app" | "function";
export const transports: readonly Transport[] = ["app", "function"];

const apps = new WeakMap<Runtime, Map<string, App>>();

/** Sends `request` to `endpoint` through `transport`. */
export function send(runtime: Runtime, transport: Transport, endpoint: Endpoint, request: Request): Promise<Response> {
  let byKey = apps.get(runtime);
  if (!byKey) apps.set(runtime, (byKey = new Map()));
  const key = transport === "app" ? "*" : endpoint.route.path;
  let app = byKey.get(key);
  if (!app) {
    const served = transport === "app" ? routes : routes.filter((r) => r.path === endpoint.route.path);
    byKey.set(key, (app = createApp(served, { runtime })));
  }
  return Promise.resolve(app.fetch(request));
}

// ---- responses -------------------------------------------------------------------------------

export interface Exchange {
  status: number;
  headers: Headers;
  text: string;
}

/** Reads the whole response (SSE streams included). */
export async function readResponse(response: Response): Promise<Exchange> {
  return { status: response.status, headers: response.headers, text: await response.text() };
}

export function describeExchange(label: string, exchange: Exchange): string {
  const headers = [...exchange.headers].map(([k, v]) => `${k}: ${v}`).join("; ");
  return `${label} → ${exchange.status} [${headers}] ${exchange.text.slice(0, 2_000)}`;
}

/**
 * Why `exchange` is not a well-formed RFC 9457 problem (undefined when it is): content type,
 * schema, status and code agreeing with the one code → status map, type URI, request id.
 */
export function problemViolation(exchange: Exchange): string | undefined {
  const type = exchange.headers.get("content-type") ?? "";
  if (!type.startsWith("application/problem+json")) return `content-type is ${JSON.stringify(type)}`;
  let body: unknown;
  try {
    body = JSON.parse(exchange.text);
  } catch {
    return "body is not JSON";
  }
  const parsed = problemSchema.safeParse(body);
  if (!parsed.success) return `body is not a problem: ${parsed.error.message}`;
  const problem = parsed.data;
  if (problem.status !== exchange.status) return `problem.status ${problem.status} differs from HTTP ${exchange.status}`;
  if (!(problem.code in errorCodes)) return `unknown code ${problem.code}`;
  if (errorCodes[problem.code as keyof typeof errorCodes] !== exchange.status)
    return `code ${problem.code} does not map to ${exchange.status}`;
  if (problem.type !== PROBLEM_TYPE_BASE + problem.code) return `type ${problem.type} does not match code`;
  if (problem.requestId !== exchange.headers.get("x-request-id")) return "requestId differs from the x-request-id header";
  if (/\n\s+at .+:\d+:\d+/.test(exchange.text)) return "contains a stack trace";
  return undefined;
}

/** The problem's code, asserting (with the whole exchange) that it is a problem at all. */
export function problemCode(label: string, exchange: Exchange): string {
  const violation = problemViolation(exchange);
  if (violation) throw new Error(`${violation}\n${describeExchange(label, exchange)}`);
  return (JSON.parse(exchange.text) as { code: string }).code;
}

/** Parses Server-Sent Events into {event, data} pairs (comments skipped). */
export function parseSse(text: string): { event: string; data: unknown }[] {
  const events: { event: string; data: unknown }[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length > 0) events.push({ event, data: JSON.parse(data.join("\n")) });
  }
  return events;
}

// ---- fingerprints --------------------------------------------------------------------------

/** Tables whose content a rejected request must leave untouched. */
export const stateTables = [
  "onboarding_sessions",
  "api_keys",
  "key_events",
  "usage_events",
  "budgets",
  "webhook_deliveries",
  "onboarding_steps",
] as const;

/** Row count and md5 of every row's text of each state table, as one comparable string. */
export async function databaseFingerprint(database: Database): Promise<string> {
  const parts = stateTables.map(
    (table) =>
      `select '${table}' as t, count(*)::int as n, coalesce(md5(string_agg(x::text, E'\\n' order by x::text)), '-') as sum from ${table} x`,
  );
  const rows = await database.rows<{ t: string; n: number; sum: string }>(sql.raw(parts.join(" union all ")));
  return rows.map((r) => `${r.t}:${r.n}:${r.sum}`).join(" ");
}

/** A file's exact bytes (base64), or "<missing>". */
export function fileFingerprint(path: string): string {
  try {
    return readFileSync(path).toString("base64");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "<missing>";
    throw error;
  }
}

// ---- bad tokens ------------------------------------------------------------------------------

export interface TokenCase {
  name: string;
  /**
   * True when the request carries no usable token at all (nothing, another scheme, a token in
   * the URL): production answers 401, development runs it as DEV_USER_ID.
   */
  absent: boolean;
  /** The secret-looking strings this case sends (asserted never to be echoed). */
  tokens: string[];
  apply(request: { url: URL; headers: Headers }): void;
}

let otherInstance: TestSigner | undefined;
const caseCache = new Map<string, { at: number; cases: TokenCase[] }>();

/**
 * Every way a request can fail authentication, each through the Authorization header and
 * (where a token is sent) the `__session` cookie. Built fresh so time-based tokens are current.
 */
export function badTokenCases(signer: TestSigner, userId = "user_battery_victim"): TokenCase[] {
  // Reused for 10 s: signing is the slow part, and a future-nbf token must not become valid.
  const cacheKey = `${signer.kid}|${userId}`;
  const cached = caseCache.get(cacheKey);
  if (cached && Date.now() - cached.at < 10_000) return cached.cases;
  const cases = buildTokenCases(signer, userId);
  caseCache.set(cacheKey, { at: Date.now(), cases });
  return cases;
}

function buildTokenCases(signer: TestSigner, userId: string): TokenCase[] {
  otherInstance ??= createTestSigner();
  const claims = { sub: userId };
  const valid = signer.sign(claims);
  const bad: Record<string, string> = {
    ...Object.fromEntries(
      Object.entries(malformedTokens(signer))
        .filter(([name]) => name !== "empty")
        .map(([n, t]) => [`malformed: ${n}`, t]),
    ),
    expired: expiredToken(signer, claims),
    "future nbf": futureNbfToken(signer, claims),
    "future iat": futureIatToken(signer, claims),
    "no exp": signer.sign({ ...claims, exp: undefined }),
    "wrong signature (other key, same kid)": wrongKeyToken(signer, claims),
    "payload edited after signing": tamperedToken(signer, claims),
    "alg none": algNoneToken(signer, claims),
    "alg none with the original signature": `${algNoneToken(signer, claims)}${valid.split(".")[2]}`,
    "HS256 with the public key PEM as secret": hs256WithPublicKeyToken(signer, claims),
    "HS256 with the PEM without trailing newline": hs256WithPublicKeyToken(signer, claims, signer.publicPem.trim()),
    "wrong azp": wrongAzpToken(signer, claims),
    "no sub": noSubToken(signer),
    "typ at+jwt": signer.sign(claims, { header: { typ: "at+jwt" } }),
    "machine token (cat header)": signer.sign(claims, { header: { cat: "cl_B7d4PD333AAA" } }),
    "another Clerk instance": otherInstance.sign(claims),
    "pending session (sts)": signer.sign({ ...claims, sts: "pending" }),
  };
  const cases: TokenCase[] = [
    { name: "missing token", absent: true, tokens: [], apply: () => {} },
    { name: "empty bearer", absent: true, tokens: [], apply: ({ headers }) => headers.set("authorization", "Bearer ") },
    { name: "Basic scheme", absent: true, tokens: [], apply: ({ headers }) => headers.set("authorization", "Basic dXNlcjpwYXNzd29yZA==") },
    {
      name: "valid token under another scheme",
      absent: true,
      tokens: [valid],
      apply: ({ headers }) => headers.set("authorization", `Token ${valid}`),
    },
    {
      name: "valid token in ?__session= only",
      absent: true,
      tokens: [valid],
      apply: ({ url }) => url.searchParams.set("__session", valid),
    },
    { name: "valid token in ?token= only", absent: true, tokens: [valid], apply: ({ url }) => url.searchParams.set("token", valid) },
    {
      name: "valid token in ?authorization= only",
      absent: true,
      tokens: [valid],
      apply: ({ url }) => url.searchParams.set("authorization", `Bearer ${valid}`),
    },
    {
      name: "bearer with two tokens",
      absent: true,
      tokens: [valid],
      apply: ({ headers }) => headers.set("authorization", `Bearer ${valid} ${valid}`),
    },
    // An unreadable credential is refused even next to a valid cookie (in development too).
    {
      name: "Basic scheme next to a valid __session cookie",
      absent: false,
      tokens: [valid],
      apply: ({ headers }) => {
        headers.set("authorization", "Basic dXNlcjpwYXNzd29yZA==");
        headers.set("cookie", `__session=${valid}`);
      },
    },
  ];
  for (const [name, token] of Object.entries(bad)) {
    // A bearer value with whitespace inside is no bearer token at all (RFC 6750's token68).
    const absent = /\s/.test(token);
    cases.push({
      name: `${name} (bearer)`,
      absent,
      tokens: [token],
      apply: ({ headers }) => headers.set("authorization", `Bearer ${token}`),
    });
    cases.push({
      name: `${name} (cookie)`,
      absent: false,
      tokens: [token],
      apply: ({ headers }) => headers.set("cookie", `theme=dark; __session=${token}`),
    });
  }
  return cases;
}

/** `request` with the token case applied (URL and headers rebuilt; the body is re-read). */
export async function withTokenCase(request: Request, tokenCase: TokenCase): Promise<Request> {
  const url = new URL(request.url);
  const headers = new Headers(request.headers);
  headers.delete("authorization");
  headers.delete("cookie");
  tokenCase.apply({ url, headers });
  const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
  return new Request(url, { method: request.method, headers, body: body && body.byteLength > 0 ? body : undefined });
}

// ---- network -------------------------------------------------------------------------------

/** A port nothing listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TcpProxy {
  port: number;
  /**
   * Arms a one-shot fault: the next client→server chunk containing `marker` is either
   * dropped with both sockets (`before`: the server never sees it) or forwarded and then both
   * sockets destroyed (`after`: the server may run it, the client never hears back).
   * Resolves when it fired.
   */
  dropOn(marker: string, when: "before" | "after"): Promise<void>;
  /** Connections currently open through the proxy. */
  open(): number;
  close(): Promise<void>;
}

/**
 * A TCP proxy to `target` (e.g. PostgreSQL) that can kill a connection mid-request; on
 * `listenPort` when given (a database "coming back" on a port that was closed), else any.
 */
export async function startTcpProxy(target: { host: string; port: number }, listenPort = 0): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let trigger: { marker: Buffer; when: "before" | "after"; fired: () => void } | undefined;
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on("close", () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on("error", kill);
    upstream.on("error", kill);
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    client.on("data", (chunk: Buffer) => {
      const armed = trigger;
      if (armed && chunk.includes(armed.marker)) {
        trigger = undefined;
        if (armed.when === "before") {
          kill();
        } else {
          // Let the bytes reach the server, then cut both sides before any answer is relayed.
          upstream.removeAllListeners("data");
          upstream.write(chunk, () => setTimeout(kill, 20));
        }
        armed.fired();
        return;
      }
      upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    dropOn: (marker, when) =>
      new Promise<void>((resolve) => {
        trigger = { marker: Buffer.from(marker), when, fired: resolve };
      }),
    open: () => sockets.size,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
