/**
 * What ships, measured: the `.func` folders of `.vercel/output` as `bash scripts/vercel-build.sh`
 * wrote them (vercel build, then scripts/bundle-functions.ts), the Lambda bundle
 * (scripts/build-lambda.ts), and the floor: a driver-only function (`SELECT 1`) built by the same
 * bundler into the same layout, with node-postgres and with Neon's HTTP driver.
 *
 * - Cold start: every target in a fresh `node` per run (bench/coldstart-child.ts), copied out of
 *   the repository first (nothing resolves through its node_modules), import + first request +
 *   second request, through each driver (neon-http reaches PostgreSQL through the local stand-in
 *   for Neon's /sql endpoint, testkit/neon-http-endpoint.ts). Runs are interleaved (target
 *   by target, driver by driver, run after run) so a busy spell of the shared machine spreads
 *   over all of them; the ratios compare medians of the same run.
 * - Load: the key function's and the floor's handler modules each served by one long-lived
 *   process (bench/func-server.ts), alternating rounds, CPU per request from /proc.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";
import { type BundleManifest, bundleFunction, findFuncDirs } from "../scripts/bundle-functions.js";
import { summarizeProfile } from "./profile.js";
import { buildLambda } from "../scripts/build-lambda.js";
import type { NeonHttpEndpoint } from "../testkit/neon-http-endpoint.js";
import { buildDir, repoRoot } from "./build.js";
import { startServer } from "./child.js";
import { quantile, runLoad, type LoadResult } from "./load.js";
import { cpuPerRequest, cpuSnapshot, foreignShare } from "./machine.js";
import type { TargetCheck } from "./report.js";

export type Driver = "pg" | "neon-http";
export const drivers: readonly Driver[] = ["pg", "neon-http"];

/** The function the targets are about. */
export const KEY_FUNCTION = "api/onboarding/api-keys";
export const KEY_PATH = "/api/onboarding/api-keys";
/** The app pipeline answering SELECT 1 (bench/floor-app-function.ts). */
export const APP_FLOOR = "floor, app pipeline.func";

export interface ShippedTarget {
  /** e.g. `api/onboarding/api-keys.func`, `floor (pg).func`, `lambda`. */
  label: string;
  kind: "function" | "floor" | "lambda";
  /** The handler module inside the staged copy. */
  module: string;
  /** Files and bytes that ship (the .func folder, or the Lambda folder). */
  files: number;
  bytes: number;
  /** Only for floors: the driver they are built for. */
  driver?: Driver;
  path: string;
}

export interface ShippedColdStart {
  label: string;
  kind: ShippedTarget["kind"];
  driver: Driver;
  runs: number;
  status: number;
  /** Medians, ms. */
  importMs: number;
  firstRequestMs: number;
  coldMs: number;
  secondRequestMs: number;
  /** All runs' import + first request, ms, in run order. */
  coldSamples: number[];
  files: number;
  bytes: number;
  error?: string;
}

export interface ShippedLoad {
  label: string;
  driver: Driver;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  serverCpuUs: number;
  postgresCpuUs: number;
  requests: number;
  /** Share of the machine used by other processes during its rounds. */
  foreign: number;
  roundRps: number[];
  problems: string[];
}

const median = (values: number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function walk(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const sub = walk(path);
      files += sub.files;
      bytes += sub.bytes;
    } else {
      files += 1;
      bytes += statSync(path).size;
    }
  }
  return { files, bytes };
}

/** Package attribution of each staged bundle's output files, by target label. */
const manifests = new Map<string, BundleManifest>();

/**
 * Stages what ships, outside the repository: the key function and every other built function,
 * the floors (built now with the same bundler and the key function's own .vc-config.json), and
 * the Lambda bundle. Needs `.vercel/output` (run `bash scripts/vercel-build.sh` first).
 */
export async function stageShipped(log: (line: string) => void): Promise<{ targets: ShippedTarget[]; stageDir: string }> {
  const functionsDir = join(repoRoot, ".vercel", "output", "functions");
  const funcDirs = findFuncDirs(functionsDir);
  if (funcDirs.length === 0) throw new Error("no .vercel/output/functions: run `bash scripts/vercel-build.sh` first");
  const stageDir = mkdtempSync(join(tmpdir(), "byok-bench-shipped-"));
  const targets: ShippedTarget[] = [];
  manifests.clear();
  const keyConfigFile = join(functionsDir, `${KEY_FUNCTION}.func`, ".vc-config.json");
  if (!existsSync(keyConfigFile)) throw new Error(`${KEY_FUNCTION}.func is missing from .vercel/output`);
  const keyConfig = JSON.parse(readFileSync(keyConfigFile, "utf8")) as Record<string, unknown>;

  const stage = (label: string, source: string, kind: ShippedTarget["kind"], path: string, driver?: Driver) => {
    const config = JSON.parse(readFileSync(join(source, ".vc-config.json"), "utf8")) as { handler: string };
    const dest = join(stageDir, label.replace(/[^\w.-]+/g, "_"));
    cpSync(source, dest, { recursive: true });
    const size = walk(source);
    targets.push({
      label,
      kind,
      module: join(dest, config.handler),
      files: size.files - 1,
      bytes: size.bytes,
      path,
      ...(driver ? { driver } : {}),
    });
  };

  for (const dir of funcDirs) {
    const name = relative(functionsDir, dir).split("\\").join("/");
    const manifestFile = join(repoRoot, ".vercel", "bundles", `${name.replace(/\.func$/, "").replace(/\//g, "__")}.json`);
    if (existsSync(manifestFile)) manifests.set(name, JSON.parse(readFileSync(manifestFile, "utf8")) as BundleManifest);
    stage(name, dir, "function", "/" + name.replace(/\.func$/, ""));
  }
  const floorsDir = join(buildDir, "shipped");
  rmSync(floorsDir, { recursive: true, force: true });
  for (const [driver, entry] of [
    ["pg", "bench/floor-function.ts"],
    ["neon-http", "bench/floor-neon-http.ts"],
  ] as const) {
    const funcDir = join(floorsDir, `floor-${driver}.func`);
    manifests.set(`floor (${driver}).func`, await bundleFunction({ entry, funcDir, config: keyConfig }));
    stage(`floor (${driver}).func`, funcDir, "floor", "/floor", driver);
  }
  // The app pipeline without the key path: it runs on whichever driver the configuration names.
  const appFloorDir = join(floorsDir, "floor-app.func");
  manifests.set(APP_FLOOR, await bundleFunction({ entry: "bench/floor-app-function.ts", funcDir: appFloorDir, config: keyConfig }));
  stage(APP_FLOOR, appFloorDir, "floor", "/floor");
  const lambda = await buildLambda({ outdir: join(floorsDir, "lambda"), sourcemap: true });
  const lambdaSize = walk(join(floorsDir, "lambda"));
  const lambdaDest = join(stageDir, "lambda");
  cpSync(join(floorsDir, "lambda"), lambdaDest, { recursive: true });
  targets.push({
    label: "Lambda bundle",
    kind: "lambda",
    module: join(lambdaDest, "index.mjs"),
    files: lambdaSize.files,
    bytes: lambdaSize.bytes,
    path: KEY_PATH,
  });
  log(`  staged ${targets.length} targets in ${stageDir} (Lambda index.mjs ${(lambda.bytes / 1024).toFixed(0)} KiB)`);
  return { targets, stageDir };
}

interface ChildOutput {
  importMs?: number;
  first?: { status: number; ms: number };
  second?: { status: number; ms: number };
  error?: string;
}

function runChild(childScript: string, spec: object, workDir: string, env: Record<string, string>, id: string): Promise<ChildOutput> {
  const specFile = join(workDir, `${id}.spec.json`);
  const resultFile = join(workDir, `${id}.result.json`);
  writeFileSync(specFile, JSON.stringify(spec));
  writeFileSync(resultFile, "{}");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, specFile, resultFile], { env, stdio: ["ignore", "ignore", "ignore"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      const out = JSON.parse(readFileSync(resultFile, "utf8")) as ChildOutput;
      if (code !== 0 && !out.error) out.error = `child exited with code ${code}`;
      resolve(out);
    });
  });
}

/** Environment of a target's process for one driver. */
export type DriverEnv = (driver: Driver) => Record<string, string>;

/**
 * Cold starts of `targets` (functions filtered by `functions`, all floors, the Lambda bundle),
 * each through every driver, `runs` recorded runs each after one unrecorded warm-up of the file
 * cache, interleaved.
 */
export async function measureShippedColdStarts(options: {
  childScript: string;
  targets: ShippedTarget[];
  env: DriverEnv;
  token: string;
  runs: number;
  /** Which functions to start (labels); default every one. Floors and Lambda always run. */
  functions?: (label: string) => boolean;
  /** The local stand-in for Neon's /sql endpoint. */
  endpoint: NeonHttpEndpoint;
  log: (line: string) => void;
}): Promise<ShippedColdStart[]> {
  const { endpoint } = options;
  const workDir = join(buildDir, "shipped-coldstart");
  mkdirSync(workDir, { recursive: true });
  const chosen = options.targets.filter((t) => t.kind !== "function" || (options.functions ?? (() => true))(t.label));
  const jobs = chosen.flatMap((target) =>
    drivers.filter((d) => target.driver === undefined || target.driver === d).map((driver) => ({ target, driver })),
  );
  const samples = new Map<string, ChildOutput[]>();
  const key = (j: { target: ShippedTarget; driver: Driver }) => `${j.target.label}|${j.driver}`;
  try {
    for (let run = 0; run <= options.runs; run++) {
      for (const job of jobs) {
        const headers: Record<string, string> = { authorization: `Bearer ${options.token}` };
        const spec = {
          module: job.target.module,
          method: "GET",
          url: `https://byok-functions.vercel.app${job.target.path}`,
          headers: { ...headers, host: "byok-functions.vercel.app" },
          ...(job.driver === "neon-http" ? { neonFetchEndpoint: endpoint.fetchEndpoint } : {}),
          ...(job.target.kind === "lambda" ? { lambda: true } : {}),
        };
        const out = await runChild(options.childScript, spec, workDir, options.env(job.driver), `${jobs.indexOf(job)}`);
        if (run === 0) {
          if (out.error) options.log(`  ${job.target.label} (${job.driver}): FAILED: ${out.error}`);
          continue; // the unrecorded run: file cache, like a platform's
        }
        const list = samples.get(key(job)) ?? [];
        list.push(out);
        samples.set(key(job), list);
      }
      if (run > 0) options.log(`  cold-start run ${run}/${options.runs} done`);
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  return jobs.map((job) => {
    const list = samples.get(key(job)) ?? [];
    const good = list.filter((s) => !s.error && s.first);
    const error = list.find((s) => s.error)?.error;
    const cold = good.map((s) => s.importMs! + s.first!.ms);
    return {
      label: job.target.label,
      kind: job.target.kind,
      driver: job.driver,
      runs: good.length,
      status: good.at(-1)?.first?.status ?? 0,
      importMs: median(good.map((s) => s.importMs!)),
      firstRequestMs: median(good.map((s) => s.first!.ms)),
      coldMs: median(cold),
      secondRequestMs: median(good.map((s) => s.second!.ms)),
      coldSamples: cold,
      files: job.target.files,
      bytes: job.target.bytes,
      ...(error ? { error } : {}),
    };
  });
}

/** Bundles bench/func-server.ts for plain node. */
export async function buildFuncServer(): Promise<string> {
  const outfile = join(buildDir, "func-server.mjs");
  await build({
    entryPoints: [join(repoRoot, "bench", "func-server.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "error",
  });
  return outfile;
}

/**
 * The key function's and the floor's shipped handlers, each served by its own long-lived
 * process, loaded in alternating rounds with the same tokens (the floor ignores them).
 */
export async function measureShippedLoad(options: {
  serverScript: string;
  /** Served and loaded in this order, alternating rounds (reversed every other round). */
  targets: ShippedTarget[];
  driver: Driver;
  env: Record<string, string>;
  endpoint: NeonHttpEndpoint;
  database: string;
  tokens: string[];
  connections: number[];
  duration: number;
  rounds: number;
  warmup: number;
  log: (line: string) => void;
}): Promise<ShippedLoad[]> {
  const servers = await Promise.all(
    options.targets.map((t) =>
      startServer({
        entry: options.serverScript,
        env: {
          ...options.env,
          BENCH_FUNC_MODULE: t.module,
          ...(options.driver === "neon-http" ? { BENCH_NEON_FETCH_ENDPOINT: options.endpoint.fetchEndpoint } : {}),
        },
        pool: 10,
      }),
    ),
  );
  const results: ShippedLoad[] = [];
  try {
    const pairs = options.targets.map((target, i) => ({ target, server: servers[i]! }));
    for (const connections of options.connections) {
      const runs = new Map<string, { r: LoadResult; cpu: [number, number]; foreign: number }[]>();
      for (const { target, server } of pairs) {
        if (options.warmup > 0)
          await runLoad({ baseUrl: server.baseUrl, path: target.path, connections, duration: options.warmup, tokens: options.tokens });
      }
      for (let round = 1; round <= options.rounds; round++) {
        const line: string[] = [];
        for (const { target, server } of round % 2 ? pairs : [...pairs].reverse()) {
          const before = cpuSnapshot(server.pid, options.database);
          const r = await runLoad({
            baseUrl: server.baseUrl,
            path: target.path,
            connections,
            duration: options.duration,
            tokens: options.tokens,
          });
          const after = cpuSnapshot(server.pid, options.database);
          const cpu = cpuPerRequest(before, after, r.requests + r.non2xx);
          const list = runs.get(target.label) ?? [];
          list.push({ r, cpu: [cpu.serverUs, cpu.postgresUs], foreign: foreignShare(before, after) });
          runs.set(target.label, list);
          line.push(`${target.label} ${Math.round(r.rps)}/s ${cpu.serverUs.toFixed(0)} µs`);
        }
        options.log(`  shipped load (${options.driver}) c=${connections} round ${round}/${options.rounds}: ${line.join(" | ")}`);
      }
      for (const { target } of pairs) {
        const list = runs.get(target.label) ?? [];
        const all = Float64Array.from(list.flatMap((x) => [...x.r.samples])).sort();
        const requests = list.reduce((n, x) => n + x.r.requests, 0);
        const seconds = list.reduce((n, x) => n + x.r.seconds, 0);
        const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
        results.push({
          label: target.label,
          driver: options.driver,
          connections,
          rps: requests / seconds,
          p50: quantile(all, 0.5),
          p99: quantile(all, 0.99),
          serverCpuUs: mean(list.map((x) => x.cpu[0])),
          postgresCpuUs: mean(list.map((x) => x.cpu[1])),
          requests,
          foreign: mean(list.map((x) => x.foreign)),
          roundRps: list.map((x) => x.r.rps),
          problems: list.flatMap((x) =>
            x.r.non2xx || x.r.errors ? [`${x.r.non2xx} non-2xx (${JSON.stringify(x.r.badStatuses)}), ${x.r.errors} errors`] : [],
          ),
        });
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
  return results;
}

// ---- report ---------------------------------------------------------------------------------

export interface ShippedReport {
  coldStarts: ShippedColdStart[];
  load: ShippedLoad[];
  /** Load average when the section started and ended. */
  loadAverage: { start: string; end: string };
  /** One profiled cold start per target (pg). */
  profiles?: ColdProfile[];
}

const keyLabel = `${KEY_FUNCTION}.func`;
const floorLabel = (driver: Driver) => `floor (${driver}).func`;

/** The issue-22 targets on the shipped artefacts, per driver. */
export function shippedChecks(report: ShippedReport): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const driver of drivers) {
    const key = report.coldStarts.find((r) => r.label === keyLabel && r.driver === driver);
    const floor = report.coldStarts.find((r) => r.label === floorLabel(driver) && r.driver === driver);
    if (key && floor && !key.error && !floor.error) {
      checks.push({
        name: `shipped \`${keyLabel}\` (${driver}): cold start, import + first request`,
        target: `≤ 1.3 × the shipped driver-only floor (${driver})`,
        measured: `${key.coldMs.toFixed(1)} vs ${floor.coldMs.toFixed(1)} ms (${(key.coldMs / floor.coldMs).toFixed(2)} ×)`,
        pass: key.coldMs / floor.coldMs <= 1.3,
      });
    }
  }
  for (const driver of drivers) {
    const key = report.coldStarts.find((r) => r.label === keyLabel && r.driver === driver);
    const floor = report.coldStarts.find((r) => r.label === APP_FLOOR && r.driver === driver);
    if (key && floor && !key.error && !floor.error) {
      checks.push({
        name: `shipped \`${keyLabel}\` (${driver}): cold start vs the app-pipeline floor`,
        target: "≤ 1.3 × (what the key path adds to the app's own start)",
        measured: `${key.coldMs.toFixed(1)} vs ${floor.coldMs.toFixed(1)} ms (${(key.coldMs / floor.coldMs).toFixed(2)} ×)`,
        pass: key.coldMs / floor.coldMs <= 1.3,
      });
    }
  }
  for (const driver of drivers) {
    const levels = [...new Set(report.load.filter((l) => l.driver === driver).map((l) => l.connections))];
    const c = levels.includes(32) ? 32 : Math.max(0, ...levels);
    const key = report.load.find((r) => r.label === keyLabel && r.driver === driver && r.connections === c);
    const floor = report.load.find((r) => r.label === floorLabel(driver) && r.driver === driver && r.connections === c);
    if (!key || !floor) continue;
    checks.push({
      name: `shipped \`${keyLabel}\` (${driver}): server CPU per request at ${c} connections`,
      target: "≤ 1.4 × floor",
      measured: `${key.serverCpuUs.toFixed(0)} vs ${floor.serverCpuUs.toFixed(0)} µs (${(key.serverCpuUs / floor.serverCpuUs).toFixed(2)} ×)`,
      pass: key.serverCpuUs / floor.serverCpuUs <= 1.4,
    });
    checks.push({
      name: `shipped \`${keyLabel}\` (${driver}): throughput at ${c} connections`,
      target: "≥ 70% of floor",
      measured: `${Math.round(key.rps)} vs ${Math.round(floor.rps)} req/s (${((100 * key.rps) / floor.rps).toFixed(0)}%)`,
      pass: key.rps / floor.rps >= 0.7,
    });
    const app = report.load.find((r) => r.label === APP_FLOOR && r.driver === driver && r.connections === c);
    if (app) {
      checks.push({
        name: `shipped \`${keyLabel}\` (${driver}): server CPU per request vs the app-pipeline floor at ${c} connections`,
        target: "≤ 1.4 × app floor",
        measured: `${key.serverCpuUs.toFixed(0)} vs ${app.serverCpuUs.toFixed(0)} µs (${(key.serverCpuUs / app.serverCpuUs).toFixed(2)} ×)`,
        pass: key.serverCpuUs / app.serverCpuUs <= 1.4,
      });
      checks.push({
        name: `shipped \`${keyLabel}\` (${driver}): throughput vs the app-pipeline floor at ${c} connections`,
        target: "≥ 70% of app floor",
        measured: `${Math.round(key.rps)} vs ${Math.round(app.rps)} req/s (${((100 * key.rps) / app.rps).toFixed(0)}%)`,
        pass: key.rps / app.rps >= 0.7,
      });
    }
  }
  return checks;
}

const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "n/a");

function table(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(" | ")} |`, `| ${headers.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join(
    "\n",
  );
}

export function renderShipped(report: ShippedReport): string[] {
  const lines: string[] = [];
  lines.push("## What ships (`.vercel/output`, the Lambda bundle)");
  lines.push("");
  lines.push("`bash scripts/vercel-build.sh` output as `vercel deploy --prebuilt` uploads it (vercel build, then");
  lines.push("scripts/bundle-functions.ts: one minified ESM bundle per function, lazy chunks, source maps), copied out of the");
  lines.push("repository; the floors are driver-only functions (`SELECT 1`) built by the same bundler into the same layout.");
  lines.push("Each run is a fresh `node`: import the handler module, one request, a second one; runs interleaved target by");
  lines.push(`target and driver by driver. neon-http goes through the local stand-in for Neon's /sql endpoint. Load average`);
  lines.push(`${report.loadAverage.start} at the start of this section, ${report.loadAverage.end} at its end.`);
  lines.push("");
  const floorCold = (driver: Driver) => report.coldStarts.find((r) => r.label === floorLabel(driver) && r.driver === driver);
  lines.push(
    table(
      [
        "target",
        "driver",
        "files",
        "KiB",
        "import ms",
        "first request ms",
        "import + first ms",
        "× floor",
        "second request ms",
        "status",
        "runs (import + first, ms)",
      ],
      report.coldStarts.map((r) => {
        const floor = floorCold(r.driver);
        return [
          r.kind === "function" ? `\`${r.label}\`` : r.label,
          r.driver,
          String(r.files),
          (r.bytes / 1024).toFixed(0),
          f1(r.importMs),
          f1(r.firstRequestMs),
          `**${f1(r.coldMs)}**`,
          floor && r.kind !== "floor" ? (r.coldMs / floor.coldMs).toFixed(2) : "—",
          f1(r.secondRequestMs),
          r.error ? `failed: ${r.error}` : String(r.status),
          r.coldSamples.map((v) => v.toFixed(0)).join(", "),
        ];
      }),
    ),
  );
  lines.push("");
  if (report.load.length) {
    lines.push("Load on the shipped handlers: each served by one long-lived process (bench/func-server.ts), alternating rounds,");
    lines.push("the key function cycling through the users' tokens. CPU per request from `/proc` (server process; PostgreSQL backends).");
    lines.push("");
    lines.push(
      table(
        [
          "target",
          "driver",
          "conns",
          "req/s",
          "vs floor",
          "p50 ms",
          "p99 ms",
          "server CPU µs/req",
          "× floor",
          "PostgreSQL CPU µs/req",
          "other jobs' CPU",
          "round req/s",
        ],
        report.load.map((r) => {
          const floor = report.load.find(
            (f) => f.label === floorLabel(r.driver) && f.driver === r.driver && f.connections === r.connections,
          );
          const isFloor = r.label === floorLabel(r.driver);
          return [
            isFloor ? r.label : `\`${r.label}\``,
            r.driver,
            String(r.connections),
            Math.round(r.rps).toLocaleString("en-US"),
            floor && !isFloor ? `${((100 * r.rps) / floor.rps).toFixed(0)}%` : "—",
            r.p50.toFixed(2),
            r.p99.toFixed(2),
            r.serverCpuUs.toFixed(0),
            floor && !isFloor ? (r.serverCpuUs / floor.serverCpuUs).toFixed(2) : "—",
            r.postgresCpuUs.toFixed(0),
            `${(100 * r.foreign).toFixed(0)}%`,
            r.roundRps.map((v) => Math.round(v)).join(", ") + (r.problems.length ? ` (${r.problems.join("; ")})` : ""),
          ];
        }),
      ),
    );
    lines.push("");
  }
  if (report.profiles?.length) {
    lines.push("Where a cold start's CPU goes: one more run of each with `--cpu-prof` (100 µs sampling; boot, import and both");
    lines.push("requests; self time). A bundle file is named by the largest packages in it (`.vercel/bundles` manifests).");
    lines.push("");
    for (const p of report.profiles) {
      const top = p.owners.slice(0, 10).map((o) => `${o.owner} ${o.ms.toFixed(1)}`);
      lines.push(`- **${p.label}** (${p.driver}), ${p.busyMs.toFixed(0)} ms busy: ${top.join("; ")} (ms)`);
    }
    lines.push("");
  }
  return lines;
}

// ---- where a cold start's CPU goes ----------------------------------------------------------

export interface ColdProfile {
  label: string;
  driver: Driver;
  /** Sampled CPU of the whole process (boot, import, two requests), ms. */
  busyMs: number;
  /** Self time by owner: a bundle file named by the packages it holds, Node internals, GC... */
  owners: { owner: string; ms: number }[];
}

/** The packages an output file holds, largest first, as a short label. */
function fileLabel(manifest: BundleManifest | undefined, file: string): string {
  const output = manifest?.outputs[file];
  if (!output) return file;
  const parts = Object.entries(output.packages)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 2)
    .map(([pkg]) => (pkg === "(ours)" ? "our code" : pkg));
  return `${file.replace(/^chunks\//, "").replace(/\.mjs$/, "")} (${parts.join(", ") || "glue"})`;
}

/**
 * One more cold start of each target with `--cpu-prof`: where the time goes (the targets of
 * this issue that are missed are explained from this).
 */
export async function profileShippedColdStarts(options: {
  childScript: string;
  targets: ShippedTarget[];
  driver: Driver;
  env: DriverEnv;
  token: string;
  endpoint: NeonHttpEndpoint;
}): Promise<ColdProfile[]> {
  const dir = join(buildDir, "shipped-profiles");
  const out: ColdProfile[] = [];
  for (const target of options.targets) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const specFile = join(dir, "spec.json");
    const resultFile = join(dir, "result.json");
    writeFileSync(
      specFile,
      JSON.stringify({
        module: target.module,
        method: "GET",
        url: `https://byok-functions.vercel.app${target.path}`,
        headers: { authorization: `Bearer ${options.token}`, host: "byok-functions.vercel.app" },
        ...(options.driver === "neon-http" ? { neonFetchEndpoint: options.endpoint.fetchEndpoint } : {}),
      }),
    );
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval=100", options.childScript, specFile, resultFile],
        { env: options.env(options.driver), stdio: ["ignore", "ignore", "ignore"] },
      );
      child.once("error", reject);
      child.once("exit", () => resolve());
    });
    const profile = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (!profile) continue;
    const summary = summarizeProfile(join(dir, profile));
    const stagedRoot = dirname(target.module);
    const manifest = manifests.get(target.label);
    const owners = new Map<string, number>();
    // Node's own share, by its busiest functions (module compile, resolution, crypto set-up...).
    for (const fn of summary.functions.filter((f) => f.owner === "node internals" || f.owner === "(native)").slice(0, 6)) {
      owners.set(`${fn.owner === "(native)" ? "native" : "node"}: ${fn.name}`, fn.ms);
    }
    for (const { owner, ms } of summary.owners) {
      const at = owner.indexOf(stagedRoot);
      const name =
        at >= 0
          ? fileLabel(manifest, owner.slice(at + stagedRoot.length + 1))
          : owner.includes("coldstart-child")
            ? "(the bench's child)"
            : owner;
      owners.set(name, (owners.get(name) ?? 0) + ms);
    }
    out.push({
      label: target.label,
      driver: options.driver,
      busyMs: summary.busyMs,
      owners: [...owners.entries()].map(([owner, ms]) => ({ owner, ms })).sort((a, b) => b.ms - a.ms),
    });
  }
  rmSync(dir, { recursive: true, force: true });
  return out;
}
