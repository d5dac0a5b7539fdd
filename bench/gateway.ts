/**
 * `npm run bench:gateway` (`npx tsx bench/gateway.ts`): what the gateway adds to a Gemini call.
 *
 * The same generateContent and streamGenerateContent requests go, interleaved, straight to the
 * fake Gemini (testkit/fakes, no latency of its own) and through the gateway (the app served
 * on 127.0.0.1 in production mode, a signed-in user with a stored key). The difference per
 * pair is the gateway's: auth (a cached session token), its one statement before the upstream
 * call, the proxying and metering, and for the whole answer its settlement statement too.
 * Reported as p50/p95 of those differences, with the database round trips per call counted
 * by a proxy in front of PostgreSQL (testkit/pg-latency-proxy.ts).
 *
 * PostgreSQL from BENCH_DATABASE_URL or TEST_DATABASE_URL (a fresh database is made and
 * dropped); `GATEWAY_BENCH_RTT_MS` adds a round-trip delay at the proxy (a database across a
 * network); without a URL, embedded PGlite (no round trips to count). `GATEWAY_BENCH_CALLS`
 * pairs per kind (default 300). Prints a table and one JSON line (`GATEWAY_BENCH_JSON=path`
 * also writes it to a file) for bench/run.ts.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import pg from "pg";
import { createApp } from "../lib/app.js";
import { routes } from "../lib/routes.js";
import { loadConfig } from "../lib/platform/env.js";
import { createLogger } from "../lib/platform/log.js";
import { createRuntime } from "../lib/platform/runtime.js";
import { generateKeyringEntry } from "../lib/platform/crypto.js";
import { migrateDatabase, openDatabase, type Database } from "../db/client.js";
import { startFakeGemini } from "../testkit/fakes/gemini.js";
import { createTestSigner, TEST_AZP } from "../testkit/clerk.js";
import { startPgLatencyProxy, type PgLatencyProxy } from "../testkit/pg-latency-proxy.js";

// Read here, in a bench script: lib/ never reads process.env outside lib/platform/env.ts.
const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || undefined;
const calls = Number(process.env.GATEWAY_BENCH_CALLS || 300);
const rttMs = Number(process.env.GATEWAY_BENCH_RTT_MS || 0);
const jsonPath = process.env.GATEWAY_BENCH_JSON || undefined;
const WARM_UP = 30;
const MODEL = "gemini-3.5-flash";
const KEY = `AQ.Ab8R${"B".repeat(33)}0bench00${"x".repeat(5)}`;

export interface GatewayBenchKind {
  kind: "generateContent" | "streamGenerateContent";
  calls: number;
  directMs: { p50: number; p95: number };
  gatewayMs: { p50: number; p95: number };
  /** Per pair: gateway − direct, to the response headers and to the end of the answer. */
  addedToHeadersMs: { p50: number; p95: number };
  addedToEndMs: { p50: number; p95: number };
  /** Per pair: CPU ms of the gateway call − CPU ms of the direct one (see `timed`). */
  addedCpuMs: { p50: number; p95: number };
  /** Database round trips per gateway call (PostgreSQL only): in all, and before the upstream call. */
  roundTripsPerCall: number | null;
  roundTripsBeforeUpstream: number | null;
}

export interface GatewayBenchReport {
  database: string;
  rttMs: number;
  /** A bare `select 1` through the same connection, p50 ms: one database round trip. */
  databaseRoundTripP50Ms: number;
  kinds: GatewayBenchKind[];
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return Math.round(sorted[at]! * 1000) / 1000;
}
const pq = (values: number[]) => ({ p50: quantile(values, 0.5), p95: quantile(values, 0.95) });

/**
 * One call: wall time to the headers and to the end, and the CPU time this process spent on it
 * (client, server and fake all run here). On a busy machine the wall times include waiting for
 * a core; the CPU time does not, so the CPU difference per pair says what the gateway costs
 * an idle machine, its database round trips aside.
 */
async function timed(url: string, init: RequestInit): Promise<{ headers: number; end: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const response = await fetch(url, init);
  const headers = performance.now() - start;
  if (response.status !== 200) throw new Error(`${url}: status ${response.status}: ${(await response.text()).slice(0, 300)}`);
  await response.arrayBuffer();
  const end = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { headers, end, cpu: (used.user + used.system) / 1000 };
}

async function openBenchDatabase(
  proxy: PgLatencyProxy | undefined,
): Promise<{ database: Database; label: string; drop: () => Promise<void> }> {
  if (!databaseUrl || !proxy) {
    const database = await openDatabase({ driver: "pglite", pgliteDir: "memory://" });
    await migrateDatabase(database);
    return { database, label: "pglite (embedded)", drop: () => database.close() };
  }
  const name = `byok_gwbench_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  const direct = await openDatabase({ driver: "pg", url: url.toString() });
  await migrateDatabase(direct);
  await direct.close();
  const database = await openDatabase({ driver: "pg", url: proxy.rewrite(url.toString()), namedStatements: true, maxConnections: 4 });
  return {
    database,
    label: `postgres via a counting proxy${rttMs > 0 ? ` (+${rttMs} ms RTT)` : ""}`,
    drop: async () => {
      await database.close();
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export async function runGatewayBench(): Promise<GatewayBenchReport> {
  const gemini = await startFakeGemini();
  const proxy = databaseUrl ? await startPgLatencyProxy({ target: pgTarget(databaseUrl), rttMs }) : undefined;
  const { database, label, drop } = await openBenchDatabase(proxy);
  const signer = createTestSigner();
  const config = loadConfig({
    DEPLOY_ENV: "production",
    CLERK_JWT_KEY: signer.publicPem,
    CLERK_AUTHORIZED_PARTIES: TEST_AZP,
    KEY_ENCRYPTION_KEYS: generateKeyringEntry("gwbench"),
    GEMINI_BASE_URL: gemini.url,
    RATE_LIMIT_GATEWAY_PER_MINUTE: "0",
    LOG_LEVEL: "error",
  });
  const runtime = createRuntime(config, { database, logger: createLogger({ level: "error" }) });
  const app = createApp(routes, { runtime });
  let server!: ServerType;
  const base = await new Promise<string>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(`http://127.0.0.1:${info.port}`));
  });
  try {
    const userId = `user_gwbench_${randomBytes(4).toString("hex")}`;
    const token = signer.sign({ sub: userId });
    const saved = await fetch(`${base}/api/onboarding/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ gemini: KEY }),
    });
    if (saved.status !== 200) throw new Error(`saving the key: ${saved.status} ${await saved.text()}`);

    // One database round trip, as the gateway's statements see it.
    const rtts: number[] = [];
    const { sql } = await import("drizzle-orm");
    for (let i = 0; i < 200; i++) {
      const start = performance.now();
      await database.rows(sql`select 1`);
      rtts.push(performance.now() - start);
    }

    const body = JSON.stringify({
      contents: [{ role: "user", parts: [{ text: "Measure the gateway" }] }],
      generationConfig: { maxOutputTokens: 256 },
    });
    const kinds: GatewayBenchKind[] = [];
    for (const kind of ["generateContent", "streamGenerateContent"] as const) {
      const suffix = kind === "streamGenerateContent" ? "?alt=sse" : "";
      const direct = () =>
        timed(`${gemini.url}/v1beta/models/${MODEL}:${kind}${suffix}`, {
          method: "POST",
          headers: { "x-goog-api-key": KEY, "content-type": "application/json" },
          body,
        });
      const via = () =>
        timed(`${base}/api/gateway/gemini/v1beta/models/${MODEL}:${kind}${suffix}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
        });
      for (let i = 0; i < WARM_UP; i++) {
        await direct();
        await via();
      }
      const d: { headers: number; end: number; cpu: number }[] = [];
      const g: { headers: number; end: number; cpu: number }[] = [];
      let roundTrips = 0;
      for (let i = 0; i < calls; i++) {
        // Alternate the order so neither side always runs on a warmer machine.
        if (i % 2 === 0) d.push(await direct());
        proxy?.reset();
        g.push(await via());
        roundTrips += proxy?.counts().roundTrips ?? 0;
        if (i % 2 === 1) d.push(await direct());
      }
      // Before the upstream call: hold Gemini, count, release.
      let before: number | null = null;
      if (proxy) {
        let release!: () => void;
        gemini.setMode({ holdUntil: new Promise<void>((resolve) => (release = resolve)) });
        const seen = gemini.requests.length;
        proxy.reset();
        const pending = via();
        while (gemini.requests.length === seen) await new Promise((resolve) => setTimeout(resolve, 1));
        before = proxy.counts().roundTrips;
        release();
        await pending;
        gemini.setMode({});
      }
      kinds.push({
        kind,
        calls,
        directMs: pq(d.map((t) => t.end)),
        gatewayMs: pq(g.map((t) => t.end)),
        addedToHeadersMs: pq(g.map((t, i) => t.headers - d[i]!.headers)),
        addedToEndMs: pq(g.map((t, i) => t.end - d[i]!.end)),
        addedCpuMs: pq(g.map((t, i) => t.cpu - d[i]!.cpu)),
        roundTripsPerCall: proxy ? Math.round((roundTrips / calls) * 100) / 100 : null,
        roundTripsBeforeUpstream: before,
      });
      gemini.reset();
    }
    return { database: label, rttMs, databaseRoundTripP50Ms: quantile(rtts, 0.5), kinds };
  } finally {
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await drop();
    await proxy?.close();
    await gemini.close();
  }
}

function pgTarget(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 5432) };
}

export function gatewayTable(report: GatewayBenchReport): string {
  const lines = [
    `Gateway overhead (${report.database}; one database round trip p50 ${report.databaseRoundTripP50Ms} ms)`,
    "",
    "| call | pairs | direct p50 / p95 ms | via gateway p50 / p95 ms | added to headers p50 / p95 ms | added to end p50 / p95 ms | added CPU p50 / p95 ms | DB round trips per call (before upstream) |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const k of report.kinds) {
    lines.push(
      `| ${k.kind} | ${k.calls} | ${k.directMs.p50} / ${k.directMs.p95} | ${k.gatewayMs.p50} / ${k.gatewayMs.p95} | ${k.addedToHeadersMs.p50} / ${k.addedToHeadersMs.p95} | ${k.addedToEndMs.p50} / ${k.addedToEndMs.p95} | ${k.addedCpuMs.p50} / ${k.addedCpuMs.p95} | ${k.roundTripsPerCall ?? "n/a"} (${k.roundTripsBeforeUpstream ?? "n/a"}) |`,
    );
  }
  lines.push(
    "",
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(", ")} on ${cpus().length} cores`,
  );
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const report = await runGatewayBench();
  process.stdout.write(`${gatewayTable(report)}\n\n${JSON.stringify({ gateway: report })}\n`);
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify(report, null, 2));
  process.exit(0);
}
