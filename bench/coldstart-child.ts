/**
 * One cold start, in a fresh Node process: import a built function, answer one request, then
 * a second (warm) one, and write the timings and the output files (chunks) the function
 * evaluated to the result file. Bundled by bench/build.ts; run by bench/coldstart.ts as
 * `node coldstart-child.mjs <spec.json> <result.json>`.
 *
 * `performance.now()` counts from the start of this process, so the first reading is the
 * time Node itself took to boot.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

interface Spec {
  module: string;
  /**
   * Neon's HTTP driver sends each statement to https://<host>/sql; when set, those requests go
   * to this local endpoint instead (testkit/neon-http-endpoint.ts), whichever copy of the
   * driver the function bundles. Set before the function is imported.
   */
  neonFetchEndpoint?: string;
  /** The module is the Lambda bundle: call its `handler` with an API Gateway HTTP API (v2) event. */
  lambda?: boolean;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

type Handler = (request: Request) => Promise<Response>;

const bootMs = performance.now();
const [specFile = "", resultFile = ""] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specFile, "utf8")) as Spec;

async function call(handler: Handler): Promise<{ status: number; ms: number; bytes: number }> {
  const start = performance.now();
  const response = await handler(new Request(spec.url, { method: spec.method, headers: spec.headers, body: spec.body }));
  const text = await response.text(); // a streamed answer counts until its last byte
  return { status: response.status, ms: performance.now() - start, bytes: text.length };
}

type LambdaHandler = (event: unknown, context: unknown) => Promise<{ statusCode: number; body?: string; isBase64Encoded?: boolean }>;

/** A Request as API Gateway hands it to Lambda (HTTP API, payload v2), and the proxy result back. */
function lambdaAsFetch(lambda: LambdaHandler | undefined): Handler | undefined {
  if (!lambda) return undefined;
  return async (request) => {
    const url = new URL(request.url);
    const body = request.body ? await request.text() : undefined;
    const event = {
      version: "2.0",
      routeKey: "$default",
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers: { host: url.host, ...Object.fromEntries(request.headers) },
      requestContext: {
        http: { method: request.method, path: url.pathname, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "bench" },
        stage: "$default",
        requestId: "bench",
        timeEpoch: Date.now(),
      },
      body,
      isBase64Encoded: false,
    };
    const result = await lambda(event, { callbackWaitsForEmptyEventLoop: true });
    const text = result.body === undefined ? "" : result.isBase64Encoded ? Buffer.from(result.body, "base64").toString() : result.body;
    return new Response(text, { status: result.statusCode });
  };
}

function redirectNeonHttp(endpoint: string): void {
  const realFetch = globalThis.fetch;
  globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    // Not `new URL(url)`: the driver names https://api.<host>/sql, and for 127.0.0.1 that is
    // https://api.0.0.1/sql, which WHATWG URL parsing refuses (a numeric last label means IPv4).
    if (url.startsWith("https://") && url.endsWith("/sql")) return realFetch(endpoint, init);
    return realFetch(input, init);
  };
}

async function main(): Promise<void> {
  if (spec.neonFetchEndpoint) redirectNeonHttp(spec.neonFetchEndpoint);
  const importStart = performance.now();
  const module = (await import(pathToFileURL(spec.module).href)) as Record<string, Handler | undefined>;
  const importMs = performance.now() - importStart;
  const chunksAfterImport = [...((globalThis as { __benchLoadedChunks?: string[] }).__benchLoadedChunks ?? [])];
  const handler = spec.lambda ? lambdaAsFetch(module.handler as unknown as LambdaHandler | undefined) : module[spec.method];
  if (!handler) throw new Error(`the function exports no ${spec.method} handler`);
  const first = await call(handler);
  const second = await call(handler);
  const chunksAfterRequest = [...((globalThis as { __benchLoadedChunks?: string[] }).__benchLoadedChunks ?? [])];
  writeFileSync(
    resultFile,
    JSON.stringify({ bootMs, importMs, first, second, chunksAfterImport, chunksAfterRequest, rssMiB: process.memoryUsage().rss / 2 ** 20 }),
  );
}

main()
  .then(() => process.exit(0)) // the database pool would keep the process alive
  .catch((error: unknown) => {
    writeFileSync(resultFile, JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
    process.exit(1);
  });
