/**
 * Serves one built function (a `.func` folder's handler module, or the floor's) over HTTP with
 * @hono/node-server, the way a long-lived instance of it would answer: every request goes to
 * the module's exported handler for its method. With BENCH_NEON_FETCH_ENDPOINT, Neon's HTTP
 * driver reaches the local stand-in for its endpoint (testkit/neon-http-endpoint.ts). Run by bench/shipped.ts through bench/child.ts
 * (`{type: "listening", port}` over IPC); the module's path is in BENCH_FUNC_MODULE (a harness
 * variable; the function itself reads its configuration through lib/platform/env.ts).
 */
import { serve } from "@hono/node-server";
import { pathToFileURL } from "node:url";

type Handler = (request: Request) => Promise<Response>;

/** As bench/coldstart-child.ts: Neon's HTTP driver's https://<host>/sql requests go to the local endpoint. */
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
  if (process.env.BENCH_NEON_FETCH_ENDPOINT) redirectNeonHttp(process.env.BENCH_NEON_FETCH_ENDPOINT);
  const modulePath = process.env.BENCH_FUNC_MODULE;
  if (!modulePath) throw new Error("BENCH_FUNC_MODULE is not set");
  const module = (await import(pathToFileURL(modulePath).href)) as Record<string, Handler | undefined>;
  const fetch = (request: Request): Promise<Response> | Response => {
    const handler = module[request.method];
    return handler ? handler(request) : new Response(null, { status: 405 });
  };
  const server = serve({ fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
    process.send?.({ type: "listening", port: info.port });
  });
  const stop = () => {
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on("message", (message: { type?: string }) => {
    if (message?.type === "stop") stop();
  });
  process.on("SIGTERM", stop);
  process.on("disconnect", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`func server failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
