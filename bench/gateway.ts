/**
 * `npm run bench:gateway` (`npx tsx bench/gateway.ts`): what the gateway adds to a Gemini call.
 *
 * Three processes, as a deployment has them: this one is the client; the gateway (the app in
 * production mode on 127.0.0.1, bench/gateway-server.ts) and the fake Gemini (testkit/fakes,
 * no latency of its own, bench/gateway-fake.ts) each run in a child of their own, so neither
 * the gateway's outbound hop nor the fake's work waits on the client's event loop. The same
 * generateContent and streamGenerateContent requests go, interleaved, straight to the fake
 * and through the gateway (a signed-in user with a stored key). The difference per pair is the
 * gateway's: auth (a cached session token), its one statement before the upstream call, the
 * proxying and metering, and for the whole answer its settlement statement too. Reported as
 * p50/p95 of those differences, with the gateway process's CPU time per call (read from the
 * child over IPC before and after each call), a breakdown of each call inside the gateway's
 * process (bench/gateway-server.ts), and the database round trips per call counted by a proxy
 * in front of PostgreSQL (testkit/pg-latency-proxy.ts, in this process: it idles while a call
 * is in flight).
 *
 * PostgreSQL from BENCH_DATABASE_URL or TEST_DATABASE_URL (a fresh database is made and
 * dropped); `GATEWAY_BENCH_PROXY=0` connects the gateway to it directly, without the proxy's
 * hop (round trips then not counted); `GATEWAY_BENCH_RTT_MS` adds a round-trip delay at the
 * proxy (a database across a network); without a URL, embedded PGlite in the gateway's process
 * (no round trips to count, statements not timed). `GATEWAY_BENCH_CALLS` pairs per kind
 * (default 300). `GATEWAY_BENCH_BASELINE=<dir>`: another checkout (its node_modules in place)
 * whose gateway runs beside this one, a third request in each round, so the two compare in one
 * run on the same machine load. `GATEWAY_BENCH_CPU_PROF=<dir>`: the gateway children run with
 * `--cpu-prof` (profiles there, the top self times printed). Prints tables and one JSON line
 * (`GATEWAY_BENCH_JSON=path` also writes it to a file).
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { generateKeyringEntry } from "../lib/platform/crypto.js";
import { migrateDatabase, openDatabase } from "../db/client.js";
import { createTestSigner, TEST_AZP } from "../testkit/clerk.js";
import { startPgLatencyProxy, type PgLatencyProxy } from "../testkit/pg-latency-proxy.js";
import { summarizeProfile } from "./profile.js";

// Read here, in a bench script: lib/ never reads process.env outside lib/platform/env.ts.
const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || undefined;
const calls = Number(process.env.GATEWAY_BENCH_CALLS || 300);
const rttMs = Number(process.env.GATEWAY_BENCH_RTT_MS || 0);
const jsonPath = process.env.GATEWAY_BENCH_JSON || undefined;
/** 0: the gateway connects to PostgreSQL itself, without the counting proxy's hop (round trips not counted). */
const viaProxy = process.env.GATEWAY_BENCH_PROXY !== "0";
const baselineRoot = process.env.GATEWAY_BENCH_BASELINE ? resolve(process.env.GATEWAY_BENCH_BASELINE) : undefined;
const profileDir = process.env.GATEWAY_BENCH_CPU_PROF ? resolve(process.env.GATEWAY_BENCH_CPU_PROF) : undefined;
const WARM_UP = 30;
const MODEL = "gemini-3.5-flash";
const KEY = `AQ.Ab8R${"B".repeat(33)}0bench00${"x".repeat(5)}`;
const here = fileURLToPath(new URL(".", import.meta.url));

type Quantiles = { p50: number; p95: number };

export interface GatewayBenchKind {
  kind: "generateContent" | "streamGenerateContent";
  calls: number;
  directMs: Quantiles;
  gatewayMs: Quantiles;
  /** Per pair: gateway − direct, to the response headers and to the end of the answer. */
  addedToHeadersMs: Quantiles;
  addedToEndMs: Quantiles;
  /** CPU time of the gateway's process per call (its whole work: HTTP in and out, auth, statements, metering). */
  gatewayCpuMs: Quantiles;
  /**
   * Inside the gateway's process, per call (bench/gateway-server.ts `breakdown`): its own work
   * before the statement, the statement, its own work up to the upstream request, the
   * upstream's time to headers, its own work up to the Response, @hono/node-server's time from
   * the Response to writing its head, the settlement statement; and `ownToHeaders`, the own
   * parts together (what the gateway's process adds to the headers besides its statement and
   * the upstream's own time).
   */
  insideMs: Record<BreakdownPart | "ownToHeaders", Quantiles>;
  /** Database round trips per gateway call (PostgreSQL only): in all, and before the upstream call. */
  roundTripsPerCall: number | null;
  roundTripsBeforeUpstream: number | null;
}

const breakdownParts = [
  "ownBeforeStatement",
  "statementBefore",
  "ownBeforeUpstream",
  "upstreamToHeaders",
  "ownAfterUpstream",
  "responseToHead",
  "statementAfter",
] as const;
type BreakdownPart = (typeof breakdownParts)[number];

export interface GatewayBenchReport {
  database: string;
  rttMs: number;
  /** A bare `select 1` from the gateway's process through its own connection, p50 ms: one database round trip. */
  databaseRoundTripP50Ms: number;
  /** One durable write from the same process (an insert, committed: it waits for the WAL flush), p50 ms. */
  databaseWriteP50Ms: number;
  /** 1, 5 and 15 minute load averages at the start and the end, and the cores. */
  loadAverage: { start: number[]; end: number[]; cores: number };
  kinds: GatewayBenchKind[];
  /** The other checkout's gateway (`GATEWAY_BENCH_BASELINE`), measured in the same rounds. */
  baseline?: {
    root: string;
    kinds: GatewayBenchKind[];
    /** Per round, by kind: this checkout's time − the baseline's, to the headers and to the end (negative: faster). */
    versus: { kind: GatewayBenchKind["kind"]; toHeadersMs: Quantiles; toEndMs: Quantiles; faster: { headers: number; end: number } }[];
  };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return Math.round(sorted[at]! * 1000) / 1000;
}
const pq = (values: number[]): Quantiles => ({ p50: quantile(values, 0.5), p95: quantile(values, 0.95) });

interface Child {
  port: number;
  /** Sends `message` and waits for the child's message of type `reply`. */
  ask<T extends { type: string }>(message: { type: string; [k: string]: unknown }, reply: string): Promise<T>;
  send(message: { type: string }): void;
  stop(): Promise<void>;
}

/** Forks a TypeScript child (through tsx) that reports `{type: "listening", port}`. */
async function forkChild(entry: string, options: { args?: string[]; env?: Record<string, string>; execArgv?: string[] }): Promise<Child> {
  const child: ChildProcess = fork(join(here, entry), options.args ?? [], {
    env: { ...process.env, ...options.env },
    execArgv: ["--import", "tsx", ...(options.execArgv ?? [])],
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4_000);
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const waiting = new Map<string, (message: never) => void>();
  child.on("message", (message: { type?: string }) => {
    const resolveReply = message?.type ? waiting.get(message.type) : undefined;
    if (resolveReply) {
      waiting.delete(message.type!);
      resolveReply(message as never);
    }
  });
  let gone: ((code: number | null) => void) | undefined;
  void exited.then((code) => gone?.(code));
  const waitFor = <T extends { type: string }>(reply: string) =>
    new Promise<T>((done, fail) => {
      waiting.set(reply, done as (message: never) => void);
      gone = (code) => fail(new Error(`${entry} exited (${code}) waiting for ${reply}: ${stderr}`));
    });
  const ask = <T extends { type: string }>(message: { type: string }, reply: string) => {
    const answer = waitFor<T>(reply);
    child.send(message);
    return answer;
  };
  const listening = waitFor<{ type: string; port: number }>("listening");
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const { port } = await listening;
  clearTimeout(timer);
  return {
    port,
    ask,
    send: (message) => child.send(message),
    async stop() {
      if (child.exitCode !== null) return;
      child.send({ type: "stop" });
      const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(kill);
    },
  };
}

interface Timing {
  headers: number;
  end: number;
}

async function timed(url: string, init: RequestInit): Promise<Timing> {
  const start = performance.now();
  const response = await fetch(url, init);
  const headers = performance.now() - start;
  if (response.status !== 200) throw new Error(`${url}: status ${response.status}: ${(await response.text()).slice(0, 300)}`);
  await response.arrayBuffer();
  return { headers, end: performance.now() - start };
}

async function createBenchDatabase(): Promise<{ name: string; url: string; drop: () => Promise<void> } | undefined> {
  if (!databaseUrl) return undefined;
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
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

interface Target {
  label: string;
  root: string;
  child: Child;
  base: string;
  cpuDir?: string;
}

export async function runGatewayBench(): Promise<GatewayBenchReport> {
  const loadStart = loadavg();
  const created = await createBenchDatabase();
  const proxy: PgLatencyProxy | undefined =
    created && viaProxy ? await startPgLatencyProxy({ target: pgTarget(databaseUrl!), rttMs }) : undefined;
  const children: Child[] = [];
  const targets: Target[] = [];
  try {
    const fake = await forkChild("gateway-fake.ts", {});
    children.push(fake);
    const geminiUrl = `http://127.0.0.1:${fake.port}`;
    const signer = createTestSigner();
    const config = {
      DEPLOY_ENV: "production",
      CLERK_JWT_KEY: signer.publicPem,
      CLERK_AUTHORIZED_PARTIES: TEST_AZP,
      KEY_ENCRYPTION_KEYS: generateKeyringEntry("gwbench"),
      GEMINI_BASE_URL: geminiUrl,
      RATE_LIMIT_GATEWAY_PER_MINUTE: "0",
      LOG_LEVEL: "error",
    };
    const roots: [string, string][] = [["this checkout", resolve(here, "..")]];
    if (baselineRoot) roots.push(["baseline", baselineRoot]);
    for (const [label, root] of roots) {
      const cpuDir = profileDir ? join(profileDir, label === "baseline" ? "baseline" : "current") : undefined;
      if (cpuDir) mkdirSync(cpuDir, { recursive: true });
      const child = await forkChild("gateway-server.ts", {
        args: ["--root", root],
        env: {
          BENCH_GATEWAY_CONFIG: JSON.stringify(config),
          ...(created ? { BENCH_GATEWAY_DATABASE_URL: proxy ? proxy.rewrite(created.url) : created.url } : {}),
        },
        execArgv: cpuDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuDir}`] : [],
      });
      children.push(child);
      targets.push({ label, root, child, base: `http://127.0.0.1:${child.port}`, ...(cpuDir ? { cpuDir } : {}) });
    }

    const userId = `user_gwbench_${randomBytes(4).toString("hex")}`;
    // Valid for the whole run (the signer's default is a minute).
    const token = signer.sign({ sub: userId, exp: Math.floor(Date.now() / 1000) + 3_600 });
    for (const target of targets) {
      const saved = await fetch(`${target.base}/api/onboarding/api-keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ gemini: KEY }),
      });
      if (saved.status !== 200) throw new Error(`saving the key (${target.label}): ${saved.status} ${await saved.text()}`);
    }

    // One database round trip, as the gateway's statements see it (from its process).
    const rtt = await targets[0]!.child.ask<{ type: string; p50: number; writeP50: number }>({ type: "rtt", n: 200 }, "rtt");

    const body = JSON.stringify({
      contents: [{ role: "user", parts: [{ text: "Measure the gateway" }] }],
      generationConfig: { maxOutputTokens: 256 },
    });
    const perTarget = new Map<Target, GatewayBenchKind[]>(targets.map((t) => [t, []]));
    const versus: NonNullable<GatewayBenchReport["baseline"]>["versus"] = [];
    for (const kind of ["generateContent", "streamGenerateContent"] as const) {
      const suffix = kind === "streamGenerateContent" ? "?alt=sse" : "";
      const direct = () =>
        timed(`${geminiUrl}/v1beta/models/${MODEL}:${kind}${suffix}`, {
          method: "POST",
          headers: { "x-goog-api-key": KEY, "content-type": "application/json" },
          body,
        });
      const via = (target: Target) =>
        timed(`${target.base}/api/gateway/gemini/v1beta/models/${MODEL}:${kind}${suffix}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
        });
      const inside = async (target: Target) =>
        (await target.child.ask<{ type: string; calls: Record<BreakdownPart, number>[] }>({ type: "breakdown" }, "breakdown")).calls;
      const cpuUs = async (target: Target) => (await target.child.ask<{ type: string; us: number }>({ type: "cpu" }, "cpu")).us;
      for (let i = 0; i < WARM_UP; i++) {
        await direct();
        for (const target of targets) await via(target);
      }
      for (const target of targets) await inside(target);
      const d: Timing[] = [];
      const g = new Map<Target, { timings: Timing[]; cpu: number[]; roundTrips: number }>(
        targets.map((t) => [t, { timings: [], cpu: [], roundTrips: 0 }]),
      );
      const steps: (Target | "direct")[] = ["direct", ...targets];
      for (let i = 0; i < calls; i++) {
        // Rotate the order so no side always runs first, or right after another.
        for (let s = 0; s < steps.length; s++) {
          const step = steps[(i + s) % steps.length]!;
          if (step === "direct") {
            d.push(await direct());
            continue;
          }
          const seen = g.get(step)!;
          const before = await cpuUs(step);
          proxy?.reset();
          seen.timings.push(await via(step));
          seen.roundTrips += proxy?.counts().roundTrips ?? 0;
          seen.cpu.push(((await cpuUs(step)) - before) / 1000);
        }
      }
      const insides = new Map<Target, Record<BreakdownPart, number>[]>();
      for (const target of targets) insides.set(target, await inside(target));
      for (const target of targets) {
        // Before the upstream call: hold Gemini, count, release.
        let before: number | null = null;
        if (proxy) {
          const seenHeld = fake.ask({ type: "hold" }, "seen");
          proxy.reset();
          const pending = via(target);
          await seenHeld;
          before = proxy.counts().roundTrips;
          fake.send({ type: "release" });
          await pending;
        }
        const seen = g.get(target)!;
        perTarget.get(target)!.push({
          kind,
          calls,
          directMs: pq(d.map((t) => t.end)),
          gatewayMs: pq(seen.timings.map((t) => t.end)),
          addedToHeadersMs: pq(seen.timings.map((t, i) => t.headers - d[i]!.headers)),
          addedToEndMs: pq(seen.timings.map((t, i) => t.end - d[i]!.end)),
          gatewayCpuMs: pq(seen.cpu),
          insideMs: insideQuantiles(insides.get(target)!),
          roundTripsPerCall: proxy ? Math.round((seen.roundTrips / calls) * 100) / 100 : null,
          roundTripsBeforeUpstream: before,
        });
      }
      if (targets.length > 1) {
        const [mine, theirs] = [g.get(targets[0]!)!.timings, g.get(targets[1]!)!.timings];
        const toHeaders = mine.map((t, i) => t.headers - theirs[i]!.headers);
        const toEnd = mine.map((t, i) => t.end - theirs[i]!.end);
        versus.push({
          kind,
          toHeadersMs: pq(toHeaders),
          toEndMs: pq(toEnd),
          faster: { headers: toHeaders.filter((v) => v < 0).length / calls, end: toEnd.filter((v) => v < 0).length / calls },
        });
      }
      fake.send({ type: "reset" });
    }
    const current = targets[0]!;
    const other = targets[1];
    const label = created
      ? proxy
        ? `postgres via a counting proxy in the client's process${rttMs > 0 ? ` (+${rttMs} ms RTT)` : ""}`
        : "postgres, connected directly (round trips not counted)"
      : "pglite (embedded, in the gateway's process)";
    return {
      database: label,
      rttMs,
      databaseRoundTripP50Ms: Math.round(rtt.p50 * 1000) / 1000,
      databaseWriteP50Ms: Math.round(rtt.writeP50 * 1000) / 1000,
      loadAverage: { start: round1(loadStart), end: round1(loadavg()), cores: cpus().length },
      kinds: perTarget.get(current)!,
      ...(other ? { baseline: { root: other.root, kinds: perTarget.get(other)!, versus } } : {}),
    };
  } finally {
    for (const child of children.reverse()) await child.stop().catch(() => undefined);
    if (profileDir) for (const target of targets) printProfile(target);
    await proxy?.close();
    await created?.drop();
  }
}

function insideQuantiles(calls: Record<BreakdownPart, number>[]): GatewayBenchKind["insideMs"] {
  const parts = Object.fromEntries(breakdownParts.map((part) => [part, pq(calls.map((c) => c[part]))]));
  const own = pq(calls.map((c) => c.ownBeforeStatement + c.ownBeforeUpstream + c.ownAfterUpstream + c.responseToHead));
  return { ...parts, ownToHeaders: own } as GatewayBenchKind["insideMs"];
}

const round1 = (values: number[]) => values.map((v) => Math.round(v * 10) / 10);

/** The gateway child's top self times (start-up and warm-up included), from its CPU profile. */
function printProfile(target: Target): void {
  if (!target.cpuDir) return;
  const file = readdirSync(target.cpuDir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) return;
  const summary = summarizeProfile(join(target.cpuDir, file));
  const lines = [`CPU profile of the gateway (${target.label}): ${join(target.cpuDir, file)}, busy ${summary.busyMs.toFixed(0)} ms`];
  for (const o of summary.owners.slice(0, 12)) lines.push(`  ${o.ms.toFixed(1).padStart(8)} ms  ${o.owner}`);
  lines.push("  top functions (self):");
  for (const f of summary.functions.slice(0, 25)) lines.push(`  ${f.ms.toFixed(1).padStart(8)} ms  ${f.name}  (${f.owner})`);
  process.stderr.write(`${lines.join("\n")}\n`);
}

function pgTarget(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 5432) };
}

export function gatewayTable(report: GatewayBenchReport): string {
  const lines = [
    `Gateway overhead (${report.database}; one database round trip p50 ${report.databaseRoundTripP50Ms} ms, one durable write p50 ${report.databaseWriteP50Ms} ms; client, gateway and fake Gemini in three processes)`,
    "",
    "| gateway | call | pairs | direct p50 / p95 ms | via gateway p50 / p95 ms | added to headers p50 / p95 ms | added to end p50 / p95 ms | gateway CPU per call p50 / p95 ms | DB round trips per call (before upstream) |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  const rows = (label: string, kinds: GatewayBenchKind[]) => {
    for (const k of kinds) {
      lines.push(
        `| ${label} | ${k.kind} | ${k.calls} | ${k.directMs.p50} / ${k.directMs.p95} | ${k.gatewayMs.p50} / ${k.gatewayMs.p95} | ${k.addedToHeadersMs.p50} / ${k.addedToHeadersMs.p95} | ${k.addedToEndMs.p50} / ${k.addedToEndMs.p95} | ${k.gatewayCpuMs.p50} / ${k.gatewayCpuMs.p95} | ${k.roundTripsPerCall ?? "n/a"} (${k.roundTripsBeforeUpstream ?? "n/a"}) |`,
      );
    }
  };
  rows("this checkout", report.kinds);
  if (report.baseline) rows(`baseline (${report.baseline.root})`, report.baseline.kinds);
  lines.push(
    "",
    "Inside the gateway's process, per call, p50 / p95 ms (own: the gateway's code and the app's pipeline; statement: sent to answered):",
    "",
    "| gateway | call | own to headers | own before the statement | statement before upstream | own up to the upstream request | upstream to its headers | own up to the Response | Response to head written | settlement statement |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  const inside = (label: string, kinds: GatewayBenchKind[]) => {
    const q = (v: Quantiles) => `${v.p50} / ${v.p95}`;
    for (const k of kinds) {
      const m = k.insideMs;
      lines.push(
        `| ${label} | ${k.kind} | ${q(m.ownToHeaders)} | ${q(m.ownBeforeStatement)} | ${q(m.statementBefore)} | ${q(m.ownBeforeUpstream)} | ${q(m.upstreamToHeaders)} | ${q(m.ownAfterUpstream)} | ${q(m.responseToHead)} | ${q(m.statementAfter)} |`,
      );
    }
  };
  inside("this checkout", report.kinds);
  if (report.baseline) {
    inside("baseline", report.baseline.kinds);
    lines.push(
      "",
      "This checkout against the baseline, round by round (negative: this checkout faster):",
      "",
      "| call | to headers p50 / p95 ms | to end p50 / p95 ms | rounds faster to headers / to end |",
      "|---|---|---|---|",
    );
    const pct = (share: number) => `${Math.round(share * 100)} %`;
    for (const v of report.baseline.versus) {
      lines.push(
        `| ${v.kind} | ${v.toHeadersMs.p50} / ${v.toHeadersMs.p95} | ${v.toEndMs.p50} / ${v.toEndMs.p95} | ${pct(v.faster.headers)} / ${pct(v.faster.end)} |`,
      );
    }
  }
  const fmt = (values: number[]) => values.map((l) => l.toFixed(1)).join(", ");
  lines.push(
    "",
    `load average: ${fmt(report.loadAverage.start)} at the start, ${fmt(report.loadAverage.end)} at the end, on ${report.loadAverage.cores} cores`,
  );
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const report = await runGatewayBench();
  process.stdout.write(`${gatewayTable(report)}\n\n${JSON.stringify({ gateway: report })}\n`);
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify(report, null, 2));
  process.exit(0);
}
