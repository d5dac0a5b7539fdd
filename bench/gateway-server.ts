/**
 * The gateway's own process for `npm run bench:gateway` (bench/gateway.ts forks it): the app
 * in production mode on 127.0.0.1, as a deployment runs it, reaching PostgreSQL through the
 * bench's counting proxy (or, without a URL, its own embedded PGlite).
 *
 * The app's code is imported from `--root <dir>` (default: this checkout), so the bench can
 * run an older checkout's gateway beside this one and compare the two in one run.
 *
 * Harness variables (the app itself reads its configuration through lib/platform/env.ts, here
 * from the record passed in): BENCH_GATEWAY_CONFIG, the app's environment as JSON;
 * BENCH_GATEWAY_DATABASE_URL, PostgreSQL (absent: PGlite). IPC: `{type: "listening", port}`
 * once it serves; `{type: "cpu"}` is answered with this process's CPU time so far (µs);
 * `{type: "rtt", n}` with the p50 of `n` bare `select 1` statements through the app's own
 * database (ms); `{type: "stop"}` ends it (a CPU profile, if asked for, is written then).
 */
import { ServerResponse } from "node:http";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { serve } from "@hono/node-server";
import { sql, type SQL } from "drizzle-orm";
import { createRequire } from "node:module";

type AppModule = typeof import("../lib/app.js");
type RoutesModule = typeof import("../lib/routes.js");
type EnvModule = typeof import("../lib/platform/env.js");
type LogModule = typeof import("../lib/platform/log.js");
type RuntimeModule = typeof import("../lib/platform/runtime.js");
type DbModule = typeof import("../db/client.js");

function rootArg(): string {
  const at = process.argv.indexOf("--root");
  const given = at >= 0 ? process.argv[at + 1] : undefined;
  return given ? resolve(given) : resolve(fileURLToPath(new URL("..", import.meta.url)));
}

async function main(): Promise<void> {
  const root = rootArg();
  const load = <M>(path: string) => import(pathToFileURL(resolve(root, path)).href) as Promise<M>;
  const [{ createApp }, { routes }, { loadConfig }, { createLogger }, { createRuntime }, { migrateDatabase, openDatabase }] =
    await Promise.all([
      load<AppModule>("lib/app.ts"),
      load<RoutesModule>("lib/routes.ts"),
      load<EnvModule>("lib/platform/env.ts"),
      load<LogModule>("lib/platform/log.ts"),
      load<RuntimeModule>("lib/platform/runtime.ts"),
      load<DbModule>("db/client.ts"),
    ]);
  const env = JSON.parse(process.env.BENCH_GATEWAY_CONFIG ?? "{}") as Record<string, string>;
  const url = process.env.BENCH_GATEWAY_DATABASE_URL;
  const database = url
    ? await openDatabase({ driver: "pg", url, namedStatements: true, maxConnections: 4 })
    : await openDatabase({ driver: "pglite", pgliteDir: "memory://" });
  if (!url) await migrateDatabase(database);
  const config = loadConfig(env);
  const runtime = createRuntime(config, { database, logger: createLogger({ level: "error" }) });
  const app = createApp(routes, { runtime });
  // The pg the loaded app uses (a baseline checkout may have its own node_modules).
  const pg = createRequire(resolve(root, "db/client.ts"))("pg") as typeof import("pg");
  const traces = traceCalls(app, pg);

  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
    process.send?.({ type: "listening", port: info.port });
  });
  const stop = () => {
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => {
      void database.close().finally(() => process.exit(0));
    });
    setTimeout(() => process.exit(0), 3_000).unref();
  };
  process.on("message", (message: { type?: string; n?: number }) => {
    if (message?.type === "cpu") {
      const used = process.cpuUsage();
      process.send?.({ type: "cpu", us: used.user + used.system });
    } else if (message?.type === "breakdown") {
      process.send?.({ type: "breakdown", calls: traces.splice(0).map(breakdown) });
    } else if (message?.type === "rtt") {
      void (async () => {
        const n = message.n ?? 200;
        const time = async (statement: SQL) => {
          const times: number[] = [];
          for (let i = 0; i < n; i++) {
            const start = performance.now();
            await database.rows(statement);
            times.push(performance.now() - start);
          }
          return median(times);
        };
        const p50 = await time(sql`select 1`);
        // A durable write: one row inserted and committed (the commit waits for the WAL flush).
        await database.rows(sql`create table if not exists gwbench_commit_probe (at timestamptz not null default now())`);
        const writeP50 = await time(sql`insert into gwbench_commit_probe default values`);
        process.send?.({ type: "rtt", p50, writeP50 });
      })();
    } else if (message?.type === "stop") stop();
  });
  process.on("SIGTERM", stop);
  process.on("disconnect", stop);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.ceil(values.length / 2) - 1] ?? Number.NaN;

/** One gateway call as seen from inside this process (performance.now() ms). */
interface CallTrace {
  /** The app got the request (@hono/node-server parsed its head). */
  in: number;
  /** The app returned its Response: the status and headers go out next. */
  returned?: number;
  /** @hono/node-server wrote the status line and headers (it may first wait for the body's first chunks). */
  headWritten?: number;
  /** Each database statement: start and end. */
  statements: [number, number][];
  /** The upstream request: fetch called, and its response headers in. */
  upstream?: [number, number];
}

/**
 * Times each /api/gateway/ call from outside lib/: the app's fetch, node-postgres' pool query
 * (PostgreSQL only: PGlite's statements are not timed) and the global fetch are wrapped (calls
 * come one at a time, so the one in flight owns what runs).
 */
function traceCalls(
  app: { fetch: (request: Request, ...rest: never[]) => Response | Promise<Response> },
  pg: typeof import("pg"),
): CallTrace[] {
  const traces: CallTrace[] = [];
  let current: CallTrace | undefined;
  const appFetch = app.fetch.bind(app);
  app.fetch = async (request: Request, ...rest: never[]) => {
    if (!request.url.includes("/api/gateway/")) return appFetch(request, ...rest);
    const trace: CallTrace = { in: performance.now(), statements: [] };
    current = trace;
    traces.push(trace);
    const response = await appFetch(request, ...rest);
    trace.returned = performance.now();
    return response;
  };
  // Statements are timed where every driver call passes (drizzle, named or not, calls the pool's query).
  const pool = pg.Pool.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = pool.query;
  pool.query = function (this: unknown, ...args: unknown[]) {
    const trace = current;
    const start = performance.now();
    const result = query.apply(this, args);
    if (trace && result instanceof Promise) {
      void result.then(
        () => trace.statements.push([start, performance.now()]),
        () => undefined,
      );
    }
    return result;
  };
  const response = ServerResponse.prototype as unknown as { writeHead: (...args: unknown[]) => unknown };
  const writeHead = response.writeHead;
  response.writeHead = function (this: unknown, ...args: unknown[]) {
    if (current && current.headWritten === undefined && current.returned !== undefined) current.headWritten = performance.now();
    return writeHead.apply(this, args);
  };
  const upstreamFetch = globalThis.fetch;
  globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const trace = current;
    const start = performance.now();
    const response = await upstreamFetch(input, init);
    if (trace) trace.upstream = [start, performance.now()];
    return response;
  };
  return traces;
}

/**
 * A call's parts, ms: the gateway's own work before its statement, the statement(s) before the
 * upstream call, its own work between them and the upstream request, the upstream's time to its
 * headers, its own work from there to the Response, from the Response to its head written, and
 * the statement(s) after (the settlement).
 */
function breakdown(trace: CallTrace): Record<string, number> {
  const returned = trace.returned ?? Number.NaN;
  const [upStart, upHeaders] = trace.upstream ?? [Number.NaN, Number.NaN];
  const before = trace.statements.filter(([, end]) => end <= upStart);
  const after = trace.statements.filter(([start]) => start >= returned);
  const sum = (spans: [number, number][]) => spans.reduce((total, [start, end]) => total + (end - start), 0);
  return {
    ownBeforeStatement: (before[0]?.[0] ?? upStart) - trace.in,
    statementBefore: sum(before),
    ownBeforeUpstream: upStart - (before.at(-1)?.[1] ?? trace.in),
    upstreamToHeaders: upHeaders - upStart,
    ownAfterUpstream: returned - upHeaders,
    responseToHead: (trace.headWritten ?? Number.NaN) - returned,
    statementAfter: sum(after),
  };
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway bench server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
