/**
 * The AWS Lambda adapter (lib/server/lambda.ts) with real event shapes: API Gateway HTTP API
 * (payload v2, base64 body), a Function URL event (cookies array with `__session`), a REST
 * API (v1) event; buffered and response-streamed (a faithful stand-in for the Lambda
 * runtime's `awslambda` global); and the esbuild bundle from scripts/build-lambda.ts loaded
 * in a child `node` process with a Lambda-like environment.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { deflateRawSync } from "node:zlib";
import type { LambdaContext, LambdaEvent } from "hono/aws-lambda";
import { ConfigError } from "../../lib/platform/env.js";
import {
  createLambdaHandler,
  createLambdaStreamingHandler,
  type AwsLambdaGlobal,
  type LambdaStreamingHandler,
} from "../../lib/server/lambda.js";
import { defineRoute, type AnyRoute } from "../../lib/http/route.js";
import { migrateDatabase, openDatabase, type Database } from "../../db/client.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { buildLambda, type BuildLambdaResult } from "../../scripts/build-lambda.js";
import { backends, backendLabel, createPostgresDatabase, testDatabaseUrl, type TestDatabase } from "../helpers/db.js";
import { makeRuntime, operatorHealth, sampleKeys, TEST_HEALTH_TOKEN, testSigner, type TestRuntime } from "../helpers/runtime.js";
import { TEST_AZP } from "../../testkit/clerk.js";
import { readEvents, validateGenerationEvents } from "../helpers/sse.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { generateResult } from "../../lib/generation/schemas.js";

// ---- event shapes, as API Gateway and Lambda Function URLs deliver them --------------------

interface EventOptions {
  method?: string;
  query?: string;
  headers?: Record<string, string>;
  cookies?: string[];
  body?: string;
  base64?: boolean;
  stage?: string;
}

const API_HOST = "r4nd0m1d.execute-api.eu-west-1.amazonaws.com";
const URL_HOST = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws";

function v2Event(host: string, rawPath: string, options: EventOptions = {}): LambdaEvent {
  const method = options.method ?? "GET";
  const stage = options.stage ?? "$default";
  const body = options.body === undefined ? undefined : options.base64 ? Buffer.from(options.body).toString("base64") : options.body;
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString: options.query ?? "",
    ...(options.cookies ? { cookies: options.cookies } : {}),
    headers: {
      host,
      "user-agent": "vitest",
      "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678",
      "x-forwarded-for": "203.0.113.7",
      "x-forwarded-port": "443",
      "x-forwarded-proto": "https",
      accept: "application/json",
      ...(body !== undefined ? { "content-length": String(Buffer.byteLength(options.body ?? "")) } : {}),
      ...options.headers,
    },
    ...(options.query ? { queryStringParameters: Object.fromEntries(new URLSearchParams(options.query)) } : {}),
    requestContext: {
      accountId: host === URL_HOST ? "anonymous" : "123456789012",
      apiId: host.split(".")[0]!,
      domainName: host,
      domainPrefix: host.split(".")[0]!,
      http: { method, path: rawPath, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: "vitest" },
      requestId: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
      routeKey: "$default",
      stage,
      time: "12/Mar/2026:19:03:58 +0000",
      timeEpoch: 1_773_342_238_000,
    },
    ...(body !== undefined ? { body } : {}),
    isBase64Encoded: options.base64 ?? false,
  } as unknown as LambdaEvent;
}

/** API Gateway HTTP API, payload format 2.0. */
const httpApiEvent = (path: string, options?: EventOptions) => v2Event(API_HOST, path, options);
/** Lambda Function URL (same 2.0 payload; its own host, stage always `$default`). */
const functionUrlEvent = (path: string, options?: EventOptions) => v2Event(URL_HOST, path, options);

/** API Gateway REST API, payload format 1.0. */
function restApiEvent(path: string, headers: Record<string, string> = {}): LambdaEvent {
  return {
    version: "1.0",
    resource: "/{proxy+}",
    path,
    httpMethod: "GET",
    headers: { host: API_HOST, ...headers },
    multiValueHeaders: Object.fromEntries(Object.entries({ host: API_HOST, ...headers }).map(([k, v]) => [k, [v]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: { proxy: path.slice(1) },
    stageVariables: null,
    requestContext: {
      accountId: "123456789012",
      apiId: "r4nd0m1d",
      httpMethod: "GET",
      path: `/prod${path}`,
      stage: "prod",
      requestId: "id",
      resourcePath: "/{proxy+}",
      identity: { sourceIp: "203.0.113.7" },
    },
    body: null,
    isBase64Encoded: false,
  } as unknown as LambdaEvent;
}

function lambdaContext(): LambdaContext {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: "byok-functions",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:byok-functions",
    memoryLimitInMB: "1024",
    awsRequestId: "8f5e6c1a-0000-4000-8000-000000000000",
    logGroupName: "/aws/lambda/byok-functions",
    logStreamName: "2026/03/12/[$LATEST]0123456789abcdef",
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  } as unknown as LambdaContext;
}

function jsonBody(result: { statusCode: number; body: string; isBase64Encoded: boolean }, status: number): any {
  if (result.statusCode !== status) throw new Error(`expected status ${status}, got ${result.statusCode}: ${result.body}`);
  expect(result.isBase64Encoded).toBe(false);
  return result.body ? JSON.parse(result.body) : undefined;
}

// ---- a stand-in for the Lambda Node.js runtime's `awslambda` global ------------------------
// Mirrors aws-lambda-nodejs-runtime-interface-client: streamifyResponse marks the handler;
// HttpResponseStream.from sets the integration content type and, before the first write,
// writes the JSON metadata prelude and 8 NUL bytes.

const HANDLER_STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const PRELUDE_TYPE = "application/vnd.awslambda.http-integration-response";

class FakeResponseStream extends Writable {
  readonly chunks: Buffer[] = [];
  contentType: string | undefined;
  _onBeforeFirstWrite: ((write: (chunk: Uint8Array | string) => void) => void) | undefined;
  private firstWriteDone = false;
  private readonly chunkListeners: ((text: string) => void)[] = [];

  setContentType(type: string) {
    this.contentType = type;
  }
  /** Called with the body so far after every chunk. */
  onChunk(listener: (text: string) => void) {
    this.chunkListeners.push(listener);
  }
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    if (!this.firstWriteDone) {
      this.firstWriteDone = true;
      this._onBeforeFirstWrite?.((c) => this.chunks.push(Buffer.from(c)));
    }
    return super.write(chunk, ...(rest as [BufferEncoding]));
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void) {
    this.chunks.push(Buffer.from(chunk));
    const text = this.parse().body;
    for (const listener of this.chunkListeners) listener(text);
    callback();
  }
  /** Splits what was written into the metadata prelude and the body. */
  parse(): { metadata: { statusCode: number; headers: Record<string, string>; cookies: string[] } | undefined; body: string } {
    const all = Buffer.concat(this.chunks);
    const delimiter = all.indexOf(Buffer.alloc(8));
    if (this.contentType !== PRELUDE_TYPE || delimiter < 0) return { metadata: undefined, body: all.toString("utf8") };
    return { metadata: JSON.parse(all.subarray(0, delimiter).toString("utf8")), body: all.subarray(delimiter + 8).toString("utf8") };
  }
}

const fakeAwsLambda: AwsLambdaGlobal = {
  streamifyResponse(handler) {
    (handler as unknown as Record<symbol, string>)[HANDLER_STREAMING] = "response";
    return handler;
  },
  HttpResponseStream: {
    from(stream, metadata) {
      const s = stream as FakeResponseStream;
      s.setContentType(PRELUDE_TYPE);
      const prelude = JSON.stringify(metadata);
      s._onBeforeFirstWrite = (write) => {
        write(prelude);
        write(new Uint8Array(8));
      };
      return stream;
    },
  },
};

async function invokeStreaming(handler: LambdaStreamingHandler, event: LambdaEvent, stream = new FakeResponseStream()) {
  const finished = new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve);
    stream.on("error", reject);
  });
  await handler(event, stream, lambdaContext());
  await finished;
  return stream.parse();
}

// ---- in-process: buffered --------------------------------------------------------------------

for (const backend of backends) {
  describe.skipIf(!backend.available)(`Lambda adapter, buffered, ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      prod = makeRuntime({ database, mode: "production" });
    });
    afterAll(async () => {
      prod.cleanup();
      await database.destroy();
    });

    it("answers /api/health from an HTTP API event, as JSON text", async () => {
      const handler = createLambdaHandler(prod.runtime);
      const context = lambdaContext();
      const result = await handler(httpApiEvent("/api/health", { headers: operatorHealth }), context);
      const body = jsonBody(result, 200);
      expect(body).toMatchObject({ status: "ok", mode: "production", database: "ok" });
      expect(result.headers?.["content-type"]).toMatch(/^application\/json/);
      expect(result.headers?.["x-request-id"]).toMatch(/^req_/);
      // Pooled connections must not hold the invocation open.
      expect(context.callbackWaitsForEmptyEventLoop).toBe(false);
    });

    it("strips a named HTTP API stage from rawPath, and serves REST API (v1) events", async () => {
      const handler = createLambdaHandler(prod.runtime);
      jsonBody(await handler(httpApiEvent("/prod/api/health", { stage: "prod" })), 200);
      jsonBody(await handler(restApiEvent("/api/health")), 200);
      // The stage prefix only comes off as a whole path segment.
      jsonBody(await handler(httpApiEvent("/production/api/health", { stage: "prod" })), 404);
      // A body survives the rewrite.
      const put = await handler(
        httpApiEvent("/prod/api/onboarding/session", {
          stage: "prod",
          method: "PUT",
          headers: { "content-type": "application/json", authorization: `Bearer ${prod.token("user_lambda_stage")}` },
          body: JSON.stringify({ currentStep: 2, progress: 25 }),
          base64: true,
        }),
      );
      expect(jsonBody(put, 200)).toMatchObject({ userId: "user_lambda_stage", currentStep: 2, progress: 25 });
    });

    it("saves keys from a base64 body with a Bearer token, lists them with the __session cookie, deletes by query", async () => {
      const handler = createLambdaHandler(prod.runtime);
      const userId = `user_lambda_${backend.name}`;
      const keys = sampleKeys(71);
      const saved = jsonBody(
        await handler(
          httpApiEvent("/api/onboarding/api-keys", {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${prod.token(userId)}` },
            body: JSON.stringify(keys),
            base64: true,
          }),
        ),
        200,
      );
      expect(saved).toMatchObject({ userId, mode: "production", saved: ["gemini", "exa", "copilotkit"], storage: ["database"] });
      expect(JSON.stringify(saved)).not.toContain(keys.gemini);
      expect(JSON.stringify(saved)).not.toContain(keys.exa);

      // Function URLs deliver cookies as an array; the session cookie sits among others.
      const listed = jsonBody(
        await handler(
          functionUrlEvent("/api/onboarding/api-keys", { cookies: ["theme=dark", `__session=${prod.token(userId)}`, "_ga=GA1.1.1"] }),
        ),
        200,
      );
      expect(listed.userId).toBe(userId);
      expect(listed.keys.map((k: { hint: string }) => k.hint)).toEqual(
        [keys.gemini, keys.exa, keys.copilotkit].map((k) => "…" + k.slice(-4)),
      );
      expect(listed.missing).toEqual([]);

      const other = jsonBody(
        await handler(functionUrlEvent("/api/onboarding/api-keys", { cookies: [`__session=${prod.token(userId + "_other")}`] })),
        200,
      );
      expect(other.keys).toEqual([]);

      const deleted = await handler(
        functionUrlEvent("/api/onboarding/api-keys", {
          method: "DELETE",
          query: "provider=gemini",
          cookies: [`__session=${prod.token(userId)}`],
        }),
      );
      expect(deleted.statusCode, deleted.body).toBe(204);
      expect(deleted.body).toBe("");
      const after = jsonBody(
        await handler(functionUrlEvent("/api/onboarding/api-keys", { cookies: [`__session=${prod.token(userId)}`] })),
        200,
      );
      expect(after.missing).toEqual(["gemini"]);
    });

    it("answers problems as JSON text: no token 401, unknown path 404, wrong method 405, bad JSON 400", async () => {
      const handler = createLambdaHandler(prod.runtime);
      const unauthorized = await handler(functionUrlEvent("/api/onboarding/api-keys", { cookies: ["theme=dark"] }));
      expect(jsonBody(unauthorized, 401)).toMatchObject({ code: "unauthorized", status: 401 });
      expect(unauthorized.headers?.["content-type"]).toBe("application/problem+json");
      expect(unauthorized.headers?.["www-authenticate"]).toMatch(/^Bearer/);

      expect(jsonBody(await handler(httpApiEvent("/api/nope")), 404)).toMatchObject({ code: "not-found" });
      const patch = await handler(httpApiEvent("/api/health", { method: "PATCH" }));
      expect(jsonBody(patch, 405)).toMatchObject({ code: "method-not-allowed" });
      expect(patch.headers?.allow).toContain("GET");

      const badJson = await handler(
        httpApiEvent("/api/onboarding/session", {
          method: "PUT",
          headers: { "content-type": "application/json", authorization: `Bearer ${prod.token("user_lambda_badjson")}` },
          body: "{not json",
          base64: true,
        }),
      );
      expect(jsonBody(badJson, 400)).toMatchObject({ code: "invalid-json" });
    });
  });
}

// ---- in-process: adapter behaviour that needs no database ------------------------------------

/** For tests that never reach the database: using it fails loudly instead of opening ./.data/pglite. */
const noDatabase = (() => Promise.reject(new Error("this test has no database"))) as unknown as Database;

describe("Lambda adapter without a database", () => {
  /** A table with one test endpoint that streams two Server-Sent Events, the second only when released. */
  function probeRoutes(release: Promise<void>): AnyRoute[] {
    const encoder = new TextEncoder();
    const probe = defineRoute({
      method: "GET",
      path: "/api/probe",
      operationId: "probe",
      summary: "A test endpoint",
      tags: ["test"],
      auth: false,
      responses: { 200: { description: "Two events." } },
      problems: [],
      handler: async () => {
        let step = 0;
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            step++;
            if (step === 1) controller.enqueue(encoder.encode('event: status\ndata: {"phase":"writing"}\n\n'));
            else if (step === 2) {
              await release;
              controller.enqueue(encoder.encode('event: done\ndata: {"ok":true}\n\n'));
            } else controller.close();
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store" } });
      },
    });
    return [probe];
  }

  it("a buffered Server-Sent Events response arrives as text, not base64", async () => {
    const { runtime } = makeRuntime({ database: noDatabase, mode: "production" });
    const handler = createLambdaHandler(runtime, probeRoutes(Promise.resolve()));
    const result = await handler(functionUrlEvent("/api/probe"));
    expect(result.statusCode).toBe(200);
    expect(result.isBase64Encoded).toBe(false);
    expect(result.body).toBe('event: status\ndata: {"phase":"writing"}\n\nevent: done\ndata: {"ok":true}\n\n');
  });

  it("a configuration error answers 500 server-misconfigured without details, and is retried on the next request", async () => {
    let calls = 0;
    const { runtime } = makeRuntime({ database: noDatabase, mode: "production" });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const handler = createLambdaHandler(() => {
        calls++;
        if (calls === 1) throw new ConfigError(["KEY_ENCRYPTION_KEYS: invalid"]);
        return runtime;
      }, probeRoutes(Promise.resolve()));
      const first = await handler(httpApiEvent("/api/probe"));
      const problem = jsonBody(first, 500);
      expect(problem).toMatchObject({ code: "server-misconfigured", status: 500 });
      expect(first.body).not.toContain("KEY_ENCRYPTION_KEYS");
      expect(first.headers?.["x-request-id"]).toBe(problem.requestId);
      // The operator finds the reason in the function's log.
      const logged = stderr.mock.calls.map((c) => String(c[0])).join("");
      expect(logged).toContain("KEY_ENCRYPTION_KEYS: invalid");
      expect(logged).toContain(problem.requestId);

      const second = await handler(httpApiEvent("/api/probe"));
      expect(second.statusCode).toBe(200);
      expect(calls).toBe(2);
    } finally {
      stderr.mockRestore();
    }
  });

  describe("response streaming", () => {
    const saved = globalThis.awslambda;
    beforeAll(() => {
      globalThis.awslambda = fakeAwsLambda;
    });
    afterAll(() => {
      globalThis.awslambda = saved;
    });

    it("refuses to build without the awslambda global", () => {
      globalThis.awslambda = undefined;
      try {
        const { runtime } = makeRuntime({ database: noDatabase, mode: "production" });
        expect(() => createLambdaStreamingHandler(runtime)).toThrow(/awslambda/);
      } finally {
        globalThis.awslambda = fakeAwsLambda;
      }
    });

    it("writes the metadata prelude, then each chunk as the endpoint produces it", async () => {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const { runtime } = makeRuntime({ database: noDatabase, mode: "production" });
      const handler = createLambdaStreamingHandler(runtime, probeRoutes(released));
      const stream = new FakeResponseStream();
      let firstSeenBeforeRelease = false;
      // The endpoint holds its second event until the first has reached the response stream:
      // a buffering adapter would never get there (and this test would time out).
      stream.onChunk((body) => {
        if (body.includes("event: status") && !body.includes("event: done")) {
          firstSeenBeforeRelease = true;
          release();
        }
      });
      const { metadata, body } = await invokeStreaming(
        handler,
        functionUrlEvent("/api/probe", { headers: { accept: "text/event-stream" } }),
        stream,
      );
      expect(firstSeenBeforeRelease).toBe(true);
      expect(metadata).toMatchObject({
        statusCode: 200,
        headers: { "content-type": "text/event-stream; charset=utf-8", "x-request-id": expect.stringMatching(/^req_[0-9a-f]{24}$/) },
        cookies: [],
      });
      expect(body).toBe('event: status\ndata: {"phase":"writing"}\n\nevent: done\ndata: {"ok":true}\n\n');
    }, 15_000);

    it("streams an ordinary JSON endpoint and a problem with their status and headers", async () => {
      const database = await backends[0]!.open();
      const prod = makeRuntime({ database, mode: "production" });
      try {
        const handler = createLambdaStreamingHandler(prod.runtime);
        const health = await invokeStreaming(handler, functionUrlEvent("/api/health", { headers: operatorHealth }));
        expect(health.metadata).toMatchObject({ statusCode: 200, headers: { "content-type": "application/json; charset=utf-8" } });
        expect(health.metadata?.headers["x-request-id"]).toMatch(/^req_/);
        expect(JSON.parse(health.body)).toMatchObject({ status: "ok", mode: "production", database: "ok" });

        const unauthorized = await invokeStreaming(handler, functionUrlEvent("/api/onboarding/session"));
        expect(unauthorized.metadata).toMatchObject({ statusCode: 401, headers: { "content-type": "application/problem+json" } });
        expect(JSON.parse(unauthorized.body)).toMatchObject({ code: "unauthorized" });

        const session = await invokeStreaming(
          handler,
          functionUrlEvent("/api/onboarding/session", { cookies: [`__session=${prod.token("user_stream")}`] }),
        );
        expect(session.metadata?.statusCode).toBe(200);
        expect(JSON.parse(session.body)).toMatchObject({ userId: "user_stream", currentStep: 1 });

        const empty = await invokeStreaming(
          handler,
          functionUrlEvent("/api/onboarding/api-keys", {
            method: "DELETE",
            query: "provider=exa",
            cookies: [`__session=${prod.token("user_stream")}`],
          }),
        );
        expect(empty.metadata?.statusCode).toBe(404);
      } finally {
        prod.cleanup();
        await database.destroy();
      }
    }, 60_000);
  });
});

// ---- generation: Server-Sent Events through both handlers -------------------------------------

describe("POST /api/blog/generate through the Lambda adapter (fake Gemini and Exa)", () => {
  const { gemini, exa } = useFakeUpstreams();
  let database: TestDatabase;
  let prod: TestRuntime;
  const saved = globalThis.awslambda;
  const keys = sampleKeys(4242);
  const userId = "user_lambda_generate";

  beforeAll(async () => {
    globalThis.awslambda = fakeAwsLambda;
    database = await backends[0]!.open();
    prod = makeRuntime({
      database,
      mode: "production",
      env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, UPSTREAM_TIMEOUT_MS: "5000", RATE_LIMIT_GENERATE_PER_MINUTE: "0" },
    });
    const save = await createLambdaHandler(prod.runtime)(
      httpApiEvent("/api/onboarding/api-keys", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${prod.token(userId)}` },
        body: JSON.stringify({ gemini: keys.gemini, exa: keys.exa }),
        base64: true,
      }),
    );
    jsonBody(save, 200);
  });
  afterAll(async () => {
    globalThis.awslambda = saved;
    const logs = prod.logs.join("\n");
    for (const key of [keys.gemini, keys.exa]) expect(logs).not.toContain(key);
    prod.cleanup();
    await database.destroy();
  });

  const generateEvent = (accept: string) =>
    functionUrlEvent("/api/blog/generate", {
      method: "POST",
      headers: { "content-type": "application/json", accept },
      cookies: [`__session=${prod.token(userId)}`],
      body: JSON.stringify({ topic: "Deploying the same functions on Vercel and AWS Lambda", keywords: ["lambda", "streaming"] }),
      base64: true,
    });

  it("a RESPONSE_STREAM handler streams the documented events, with the caller's own keys", async () => {
    gemini.reset();
    exa.reset();
    const handler = createLambdaStreamingHandler(prod.runtime);
    const { metadata, body } = await invokeStreaming(handler, generateEvent("text/event-stream"));
    expect(metadata?.statusCode, body).toBe(200);
    expect(metadata?.headers["content-type"]).toMatch(/^text\/event-stream/);
    const { events } = await readEvents(new Response(body));
    validateGenerationEvents(events);
    const names = events.map((e) => e.event).join(",");
    expect(names).toMatch(/^(status,)+sources,status,(delta,)+usage,done$/);
    expect(events.at(-1)?.data.markdown).toBe(gemini.expectedText);
    expect(gemini.requests.length).toBeGreaterThan(0);
    expect(gemini.requests.every((r) => r.apiKey === keys.gemini)).toBe(true);
    expect(exa.requests.length).toBeGreaterThan(0);
    expect(exa.requests.every((r) => r.apiKey === keys.exa)).toBe(true);
    for (const key of [keys.gemini, keys.exa]) expect(body).not.toContain(key);
  });

  it("the buffered handler answers Accept: application/json with one JSON result", async () => {
    const result = await createLambdaHandler(prod.runtime)(generateEvent("application/json"));
    const body = jsonBody(result, 200);
    expect(generateResult.parse(body)).toMatchObject({ markdown: gemini.expectedText, keySource: "database" });
  });
});

// ---- the bundle, in a child process ---------------------------------------------------------

/** Loads the bundle like the Lambda runtime does (awslambda global first), invokes it, writes results to a file. */
const INVOKE_SCRIPT = `
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [bundle, eventsFile, resultFile] = process.argv.slice(2);
const HANDLER_STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
globalThis.awslambda = {
  streamifyResponse(handler) { handler[HANDLER_STREAMING] = "response"; return handler; },
  HttpResponseStream: {
    from(stream, metadata) {
      stream.setContentType("${PRELUDE_TYPE}");
      stream.prelude = metadata;
      return stream;
    },
  },
};
const { Writable } = await import("node:stream");
const mod = await import(pathToFileURL(bundle).href);
const results = { exports: Object.keys(mod).sort(), streamingMarked: mod.streamingHandler?.[HANDLER_STREAMING] ?? null, buffered: {}, streamed: {} };
const context = () => ({ callbackWaitsForEmptyEventLoop: true, awsRequestId: "r", functionName: "byok-test", getRemainingTimeInMillis: () => 30000 });
for (const [name, event, mode] of JSON.parse(readFileSync(eventsFile, "utf8"))) {
  if (mode === "buffered") {
    results.buffered[name] = await mod.handler(event, context());
  } else {
    const chunks = [];
    const stream = new Writable({ write(chunk, _e, cb) { chunks.push(Buffer.from(chunk)); cb(); } });
    stream.setContentType = (t) => { stream.contentType = t; };
    const done = new Promise((resolve) => stream.on("finish", resolve));
    await mod.streamingHandler(event, stream, context());
    await done;
    results.streamed[name] = { contentType: stream.contentType, metadata: stream.prelude, body: Buffer.concat(chunks).toString("utf8") };
  }
}
writeFileSync(resultFile, JSON.stringify(results));
process.exit(0);
`;

interface ChildRun {
  results: {
    exports: string[];
    streamingMarked: string | null;
    buffered: Record<string, { statusCode: number; body: string; headers: Record<string, string>; isBase64Encoded: boolean }>;
    streamed: Record<string, { contentType: string; metadata: { statusCode: number; headers: Record<string, string> }; body: string }>;
  };
  output: string;
}

function runBundle(dir: string, env: Record<string, string>, events: [string, LambdaEvent, "buffered" | "streamed"][]): Promise<ChildRun> {
  const script = join(dir, "invoke-test.mjs");
  const eventsFile = join(dir, "events.json");
  const resultFile = join(dir, "result.json");
  writeFileSync(script, INVOKE_SCRIPT);
  writeFileSync(eventsFile, JSON.stringify(events));
  return new Promise((resolve, reject) => {
    // Only what a Lambda function would be given: no inherited DEPLOY_ENV, DATABASE_URL, keys...
    execFile(
      process.execPath,
      [script, join(dir, "index.mjs"), eventsFile, resultFile],
      { cwd: dir, env, timeout: 60_000 },
      (error, stdout, stderr) => {
        const output = `${stdout}\n${stderr}`;
        if (error) return reject(new Error(`bundle invocation failed: ${error.message}\n${output}`));
        try {
          resolve({ results: JSON.parse(readFileSync(resultFile, "utf8")), output });
        } catch (parseError) {
          reject(new Error(`no results from the bundle: ${String(parseError)}\n${output}`));
        }
      },
    );
  });
}

const lambdaEnv = { AWS_LAMBDA_FUNCTION_NAME: "byok-test", AWS_REGION: "eu-west-1", LOG_LEVEL: "debug" };

describe("the Lambda bundle (scripts/build-lambda.ts) in a child process", () => {
  let lean: BuildLambdaResult;
  let leanDir: string;

  beforeAll(async () => {
    leanDir = mkdtempSync(join(tmpdir(), "byok-lambda-lean-"));
    lean = await buildLambda({ outdir: leanDir });
  });
  afterAll(() => rmSync(leanDir, { recursive: true, force: true }));

  it("is an ESM entry with its lazy chunks beside it, holding every route file, without PGlite", async () => {
    // index.mjs and chunks only; each route module, driver and SDK loads when first used.
    const written = readdirSync(leanDir).sort();
    expect(written).toContain("index.mjs");
    expect(
      written.every((f) => f === "index.mjs" || /^[\w-]+-[A-Z0-9]{8}\.mjs$/.test(f)),
      written.join(", "),
    ).toBe(true);
    expect(lean.files.map((f) => f.file).sort()).toEqual(written);
    expect(written.length).toBeGreaterThan(10);
    const inputs = Object.keys(lean.metafile.inputs);
    // Every feature's routes/ folder (lib/keys/routes/, lib/compat/alwrity/routes/, ...).
    const routeFiles = (readdirSync(join(import.meta.dirname, "../../lib"), { recursive: true }) as string[])
      .map((f) => f.split("\\").join("/"))
      .filter((f) => f.endsWith(".ts") && f.split("/").includes("routes"))
      .map((f) => `lib/${f}`);
    expect(routeFiles.length).toBeGreaterThanOrEqual(6);
    for (const file of routeFiles) expect(inputs, `${file} is not in the bundle`).toContain(file);
    expect(inputs.some((f) => f.startsWith("node_modules/@electric-sql/pglite/"))).toBe(false);
    expect(lean.bytes).toBeGreaterThan(0);
  });

  it("zips to at most 1.5 MB: every file deflated as a zip stores it", () => {
    // A zip is each file deflated plus ~100 bytes of headers per file; no zip tool needed.
    const zipBytes = lean.files.reduce((sum, f) => sum + deflateRawSync(readFileSync(join(leanDir, f.file)), { level: 9 }).length + 200, 0);
    expect(zipBytes, `${zipBytes} bytes`).toBeLessThanOrEqual(1_500_000);
  });

  it("without DATABASE_URL: production (on Lambda), health 503 as well-formed JSON, protected routes refuse without Clerk", async () => {
    const { results, output } = await runBundle(leanDir, { ...lambdaEnv, HEALTH_TOKEN: TEST_HEALTH_TOKEN }, [
      ["health", functionUrlEvent("/api/health", { headers: operatorHealth }), "buffered"],
      ["keys", functionUrlEvent("/api/onboarding/api-keys", { cookies: ["__session=x.y.z"] }), "buffered"],
      ["healthStreamed", functionUrlEvent("/api/health", { headers: operatorHealth }), "streamed"],
      ["openapi", httpApiEvent("/api/openapi.json"), "buffered"],
    ]);
    expect(results.exports).toEqual(["createLambdaHandler", "createLambdaStreamingHandler", "handler", "streamingHandler"]);
    expect(results.streamingMarked).toBe("response");

    const health = results.buffered.health!;
    expect(health.statusCode, health.body).toBe(503);
    expect(health.headers["content-type"]).toMatch(/^application\/json/);
    const body = JSON.parse(health.body);
    // Misconfigured comes first: no Clerk and no key ring, named (never valued); the operator's
    // warnings (PGlite in production) go to the log only.
    expect(body).toMatchObject({ status: "misconfigured", mode: "production", database: "unavailable", driver: "pglite" });
    expect(body.misconfigured).toEqual(["CLERK_JWT_KEY", "CLERK_SECRET_KEY", "KEY_ENCRYPTION_KEYS"]);
    expect(body.modeReason).toContain("AWS_LAMBDA_FUNCTION_NAME");
    expect(body.warnings).toEqual([]);
    expect(output).toMatch(/PGlite/);
    expect(output).toMatch(/configuration error CLERK_JWT_KEY/);

    const keys = results.buffered.keys!;
    expect(keys.statusCode, keys.body).toBe(500);
    expect(JSON.parse(keys.body)).toMatchObject({ code: "server-misconfigured" });
    expect(output).not.toContain("x.y.z");

    // The lazily imported OpenAPI generator works from inside the bundle too.
    const openapi = results.buffered.openapi!;
    expect(openapi.statusCode, openapi.body.slice(0, 500)).toBe(200);
    expect(JSON.parse(openapi.body)).toMatchObject({ openapi: "3.1.0", info: { title: "byok-functions" } });

    const streamed = results.streamed.healthStreamed!;
    expect(streamed.contentType).toBe(PRELUDE_TYPE);
    expect(streamed.metadata.statusCode).toBe(503);
    expect(JSON.parse(streamed.body)).toMatchObject({ mode: "production", database: "unavailable" });
  }, 60_000);

  type BundleBackend = {
    name: string;
    available: boolean;
    setup(): Promise<{ dir: string; env: Record<string, string>; cleanup(): Promise<void> }>;
  };
  const bundleBackends: BundleBackend[] = [
    {
      name: "embedded PGlite (--with-pglite, PGLITE_DIR on a temp dir)",
      available: true,
      async setup() {
        const dir = mkdtempSync(join(tmpdir(), "byok-lambda-pglite-"));
        const built = await buildLambda({ outdir: dir, withPglite: true });
        expect(built.assets.map((a) => a.file).sort()).toEqual(["initdb.wasm", "pglite.data", "pglite.wasm"]);
        const pgliteDir = join(dir, "pgdata");
        const database = await openDatabase({ driver: "pglite", pgliteDir });
        await migrateDatabase(database);
        await database.close();
        return { dir, env: { PGLITE_DIR: pgliteDir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
      },
    },
    {
      name: testDatabaseUrl ? "PostgreSQL (DATABASE_URL)" : "PostgreSQL (skipped: TEST_DATABASE_URL is not set)",
      available: testDatabaseUrl !== undefined,
      async setup() {
        const { url, drop } = await createPostgresDatabase(testDatabaseUrl!);
        const database = await openDatabase({ driver: "pg", url });
        await migrateDatabase(database);
        await database.close();
        return { dir: leanDir, env: { DATABASE_URL: url }, cleanup: drop };
      },
    },
  ];

  for (const bb of bundleBackends) {
    it.skipIf(!bb.available)(
      `on ${bb.name}: health, save keys and list them with a Clerk token, streamed and buffered`,
      async () => {
        const { dir, env, cleanup } = await bb.setup();
        try {
          const signer = testSigner();
          const userId = "user_bundle";
          const keys = sampleKeys(88);
          const token = signer.sign({ sub: userId });
          const { results, output } = await runBundle(
            dir,
            {
              ...lambdaEnv,
              ...env,
              CLERK_JWT_KEY: signer.publicPem,
              CLERK_AUTHORIZED_PARTIES: TEST_AZP,
              KEY_ENCRYPTION_KEYS: generateKeyringEntry("lambda1"),
              HEALTH_TOKEN: TEST_HEALTH_TOKEN,
            },
            [
              ["health", httpApiEvent("/api/health", { headers: operatorHealth }), "buffered"],
              [
                "save",
                httpApiEvent("/api/onboarding/api-keys", {
                  method: "POST",
                  headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
                  body: JSON.stringify(keys),
                  base64: true,
                }),
                "buffered",
              ],
              ["list", functionUrlEvent("/api/onboarding/api-keys", { cookies: [`__session=${token}`] }), "streamed"],
            ],
          );
          const health = results.buffered.health!;
          expect(health.statusCode, health.body).toBe(200);
          expect(JSON.parse(health.body)).toMatchObject({ status: "ok", mode: "production", database: "ok" });

          const save = results.buffered.save!;
          expect(save.statusCode, save.body).toBe(200);
          expect(JSON.parse(save.body)).toMatchObject({
            userId,
            mode: "production",
            saved: ["gemini", "exa", "copilotkit"],
            storage: ["database"],
          });

          const list = results.streamed.list!;
          expect(list.metadata.statusCode, list.body).toBe(200);
          const listed = JSON.parse(list.body);
          expect(listed.keys.map((k: { hint: string }) => k.hint)).toEqual(
            [keys.gemini, keys.exa, keys.copilotkit].map((k) => "…" + k.slice(-4)),
          );

          // Nothing secret in the function's log.
          expect(output).toContain('"msg":"keys saved"');
          for (const secret of [keys.gemini, keys.exa, keys.copilotkit, token]) expect(output).not.toContain(secret);
        } finally {
          await cleanup();
        }
      },
      180_000,
    ); // a child process loads the whole bundle (and PGlite's WASM): slow on a busy machine
  }
});
