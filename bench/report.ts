/**
 * The results as Markdown tables (BENCHMARKS.md) and as the same tables on the console.
 */
import type { RttReport } from "./rtt.js";
import type { ColdStartResult } from "./coldstart.js";
import { heavyPackages } from "./coldstart.js";
import type { GenerationSummary } from "./generation.js";
import type { StepCost } from "./breakdown.js";

export type TargetId = "floor" | "listKeys" | "userKeys";

export const targetLabels: Record<TargetId, string> = {
  floor: "floor: `SELECT 1`, no auth",
  listKeys: "`GET /api/onboarding/api-keys`",
  userKeys: "`userApiKeys()` (generation key path)",
};

export interface Stat {
  target: TargetId;
  connections: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  rps: number;
  requests: number;
  seconds: number;
  roundP50: number[];
  roundRps: number[];
  /** Share of the machine's CPU used by other processes during each round (0..1). */
  roundForeign: number[];
  /** CPU per request of the server process (all threads) and of the PostgreSQL backends, µs. */
  serverCpuUs: number;
  postgresCpuUs: number;
  /** Non-2xx, errors: a run with any is not a valid measurement. */
  problems: string[];
}

export interface PhaseResult {
  name: string;
  users: number;
  keys: number;
  stats: Stat[];
}

export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  pass: boolean;
}

export interface ProfileReport {
  /** Per-request self time by owner, µs, for each profiled target. */
  owners: { owner: string; perRequestUs: Partial<Record<TargetId, number>> }[];
  /** Top functions of the key path by self time per request. */
  topFunctions: { target: TargetId; owner: string; name: string; perRequestUs: number }[];
  requests: Partial<Record<TargetId, number>>;
  busyShare: Partial<Record<TargetId, number>>;
}

export interface MemoryReport {
  label: string;
  baselineMiB: number;
  sampledMaxMiB: number;
  peakMiB: number;
}

import type { ShippedReport } from "./shipped.js";

export interface BenchReport {
  date: string;
  machine: { cores: number; cpuModel: string; memGiB: number; node: string; postgres: string; pglite: string; platform: string };
  settings: Record<string, string | number>;
  checks: TargetCheck[];
  small?: PhaseResult;
  large?: PhaseResult;
  pglite?: PhaseResult;
  coldStarts?: ColdStartResult[];
  /** What ships (issue 22): the .vercel/output functions, the floors built the same way, the Lambda bundle. */
  shipped?: ShippedReport;
  /** Database round trips under injected latency, and connection set-up per driver. */
  rtt?: RttReport;
  /** The serverless-cost goals, met or missed. */
  costGoals?: TargetCheck[];
  /** Bytes of each built Vercel function (.vercel/output), when a build is there. */
  vercelFunctions?: { name: string; bytes: number; pglite: boolean }[];
  generation?: GenerationSummary[];
  generationUsedCallerKeys?: boolean;
  /** Median time of one fetch of the floor route by the same client, ms. */
  generationClientMs?: number;
  memory: MemoryReport[];
  profile?: ProfileReport;
  breakdown?: StepCost[];
  /** Load average (1/5/15 min) at the start and the end of the run. */
  load: { start: string; end: string };
  seeding: string[];
  anomalies: string[];
  durationSeconds: number;
  chartFile?: string;
}

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(value < 10 ? 2 : 1) : "n/a");
const signed = (value: number, digits = 2) => (Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(digits)}` : "n/a");
const int = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a");
const pct = (value: number) => (Number.isFinite(value) ? `${(value * 100).toFixed(0)}%` : "n/a");

function table(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(" | ")} |`, `| ${headers.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join(
    "\n",
  );
}

export function findStat(phase: PhaseResult | undefined, target: TargetId, connections: number): Stat | undefined {
  return phase?.stats.find((s) => s.target === target && s.connections === connections);
}

/** Floor vs key path at each concurrency: latency, throughput and the differences. */
export function floorTable(phase: PhaseResult): string {
  const rows: string[][] = [];
  const connections = [...new Set(phase.stats.map((s) => s.connections))];
  for (const c of connections) {
    const floor = findStat(phase, "floor", c);
    for (const target of ["floor", "listKeys", "userKeys"] as TargetId[]) {
      const s = findStat(phase, target, c);
      if (!s) continue;
      const isFloor = target === "floor";
      rows.push([
        String(c),
        targetLabels[target],
        ms(s.p50),
        ms(s.p99),
        int(s.rps),
        isFloor || !floor ? "—" : signed(s.p50 - floor.p50),
        isFloor || !floor ? "—" : signed(s.p99 - floor.p99),
        isFloor || !floor ? "100%" : pct(s.rps / floor.rps),
        `${ms(Math.min(...s.roundP50))}–${ms(Math.max(...s.roundP50))}`,
        pct(s.roundForeign.reduce((a, b) => a + b, 0) / Math.max(1, s.roundForeign.length)),
        s.problems.length ? `⚠ ${s.problems.join("; ")}` : int(s.requests),
      ]);
    }
  }
  return table(
    [
      "conns",
      "route",
      "p50 ms",
      "p99 ms",
      "req/s",
      "Δp50 ms",
      "Δp99 ms",
      "throughput vs floor",
      "round p50s",
      "other jobs' CPU",
      "requests",
    ],
    rows,
  );
}

export function scaleTable(small: PhaseResult, large: PhaseResult): string {
  const rows: string[][] = [];
  const connections = [...new Set(small.stats.map((s) => s.connections))];
  for (const c of connections) {
    for (const target of ["floor", "listKeys", "userKeys"] as TargetId[]) {
      const a = findStat(small, target, c);
      const b = findStat(large, target, c);
      if (!a || !b) continue;
      const fa = findStat(small, "floor", c);
      const fb = findStat(large, "floor", c);
      const normalized = target !== "floor" && fa && fb ? b.p50 / fb.p50 / (a.p50 / fa.p50) : NaN;
      rows.push([
        String(c),
        targetLabels[target],
        ms(a.p50),
        ms(b.p50),
        Number.isFinite(b.p50 / a.p50) ? (b.p50 / a.p50).toFixed(3) : "n/a",
        Number.isFinite(normalized) ? normalized.toFixed(3) : "—",
        int(a.rps),
        int(b.rps),
      ]);
    }
  }
  return table(
    [
      "conns",
      "route",
      `p50 ms, ${int(small.users)} users`,
      `p50 ms, ${int(large.users)} users`,
      "ratio",
      "ratio / floor's ratio",
      `req/s, ${int(small.users)}`,
      `req/s, ${int(large.users)}`,
    ],
    rows,
  );
}

const stateLabel: Record<string, string> = { import: "**at import**", request: "on request", lazy: "lazy, not loaded", absent: "—" };

export function rttTable(report: RttReport): string {
  const rows = report.rows.map((r) => [
    String(r.rttMs),
    ms(r.floorP50),
    ms(r.listP50),
    signed(r.listP50 - r.floorP50),
    ms(r.generateFirstByteP50),
    signed(r.generateFirstByteP50 - r.floorP50),
    String(r.floorRoundTrips),
    String(r.listRoundTrips),
    String(r.generateRoundTrips),
    r.saveRoundTrips === undefined ? "—" : String(r.saveRoundTrips),
  ]);
  return table(
    [
      "RTT ms",
      "floor p50 ms",
      "GET api-keys p50 ms",
      "Δ ms",
      "generate first byte p50 ms",
      "Δ ms",
      "round trips: floor",
      "GET api-keys",
      "generation (whole)",
      "POST api-keys (save)",
    ],
    rows,
  );
}

export function coldConnectTable(report: RttReport): string {
  return table(
    ["driver", "set-up round trips (measured here)", "first query, set-up included", "on Vercel with Neon"],
    report.cold.map((c) => [c.driver, String(c.setupRoundTrips ?? "n/a"), String(c.firstQueryRoundTrips ?? "n/a"), c.note]),
  );
}

export function coldStartTable(results: ColdStartResult[]): string {
  const rows = results.map((r) => [
    `\`${r.file}\``,
    `${r.method} ${r.path}`,
    r.error ? `⚠ ${r.error}` : String(r.status),
    ms(r.bootMs),
    ms(r.importMs),
    ms(r.firstRequestMs),
    ms(r.secondRequestMs),
    ms(r.processMs),
    `${int(r.loadedKiB)} / ${int(r.bundleKiB)}`,
    ms(r.rssMiB),
  ]);
  return table(
    [
      "function",
      "request",
      "status",
      "node boot ms",
      "import ms",
      "first request ms",
      "second request ms",
      "process spawn→exit ms",
      "KiB evaluated / bundled",
      "RSS MiB",
    ],
    rows,
  );
}

export function heavyTable(results: ColdStartResult[]): string {
  const rows = results.map((r) => [
    `\`${r.file}\``,
    ...heavyPackages.map((p) => stateLabel[r.heavy[p]] ?? r.heavy[p]),
    r.violations.length ? `**VIOLATION**: ${r.violations.join("; ")}` : "ok",
  ]);
  return table(["function", ...heavyPackages.map((p) => `\`${p}\``), "Gemini/Exa rule"], rows);
}

export function generationTable(summaries: GenerationSummary[]): string {
  const rows = summaries.map((g) => [
    g.research ? `research on (${g.searches} searches)` : "research off",
    String(g.runs),
    ms(g.firstDeltaMs),
    ms(g.upstreamToFirstDelta),
    `${signed(g.overheadFirstDeltaMs, 1)} (max ${signed(g.overheadFirstDeltaMaxMs, 1)})`,
    ms(g.doneMs),
    ms(g.upstreamToDone),
    `${signed(g.overheadDoneMs, 1)} (max ${signed(g.overheadDoneMaxMs, 1)})`,
    g.researchWallMs !== undefined ? `${ms(g.researchWallMs)} vs ${ms(g.researchSumMs ?? NaN)} summed` : "—",
    `${ms(g.firstEventMs)} + ${g.researchOverheadMs !== undefined ? ms(g.researchOverheadMs) : "—"} + ${ms(g.writingOverheadMs)}`,
  ]);
  return table(
    [
      "variant",
      "runs",
      "first delta ms",
      "upstream latency before it",
      "our overhead ms",
      "done ms",
      "upstream latency before it",
      "our overhead ms",
      "research wall ms",
      "overhead to first delta: before first event + in research + research→first delta",
    ],
    rows,
  );
}

export function memoryTable(memory: MemoryReport[]): string {
  return table(
    ["server", "RSS after start MiB", "max sampled RSS MiB", "peak RSS MiB"],
    memory.map((m) => [m.label, ms(m.baselineMiB), ms(m.sampledMaxMiB), `**${ms(m.peakMiB)}**`]),
  );
}

export function checksTable(checks: TargetCheck[]): string {
  return table(
    ["target", "goal", "measured", "result"],
    checks.map((c) => [c.name, c.target, c.measured, c.pass ? "✅ met" : "❌ **missed**"]),
  );
}

export function profileTables(profile: ProfileReport): string {
  const targets = (["floor", "listKeys", "userKeys"] as TargetId[]).filter((t) => profile.requests[t] !== undefined);
  const ownerRows = profile.owners.map((o) => {
    const floor = o.perRequestUs.floor ?? 0;
    return [
      o.owner,
      ...targets.map((t) => (o.perRequestUs[t] !== undefined ? o.perRequestUs[t]!.toFixed(1) : "0.0")),
      ...targets.filter((t) => t !== "floor").map((t) => signed((o.perRequestUs[t] ?? 0) - floor, 1)),
    ];
  });
  const total = (t: TargetId) => profile.owners.reduce((sum, o) => sum + (o.perRequestUs[t] ?? 0), 0);
  ownerRows.push([
    "**total (server main thread)**",
    ...targets.map((t) => `**${total(t).toFixed(1)}**`),
    ...targets.filter((t) => t !== "floor").map((t) => `**${signed(total(t) - total("floor"), 1)}**`),
  ]);
  const owners = table(
    ["owner", ...targets.map((t) => `${t} µs/req`), ...targets.filter((t) => t !== "floor").map((t) => `${t} − floor`)],
    ownerRows,
  );
  const functions = table(
    ["route", "owner", "function", "self µs/req"],
    profile.topFunctions.map((f) => [f.target, f.owner, `\`${f.name}\``, f.perRequestUs.toFixed(1)]),
  );
  return `${owners}\n\nTop self-time functions of the key paths (per request):\n\n${functions}`;
}

export function breakdownTable(steps: StepCost[]): string {
  return table(
    ["", "step", "Node CPU µs/call", "PostgreSQL CPU µs/call", "total CPU µs/call", "wall µs/call (sequential)"],
    steps.map((s) => [
      s.kind === "path" ? "route step" : s.kind === "part" ? "part" : "alternative",
      s.step,
      s.nodeUs.toFixed(1),
      s.postgresUs ? s.postgresUs.toFixed(1) : "—",
      (s.nodeUs + s.postgresUs).toFixed(1),
      s.wallUs.toFixed(1),
    ]),
  );
}

/** CPU per request: the robust view of cost (latency and req/s move with other jobs; this barely does). */
export function cpuTable(phase: PhaseResult): string {
  const rows: string[][] = [];
  const connections = [...new Set(phase.stats.map((s) => s.connections))];
  for (const c of connections) {
    const floor = findStat(phase, "floor", c);
    for (const target of ["floor", "listKeys", "userKeys"] as TargetId[]) {
      const s = findStat(phase, target, c);
      if (!s) continue;
      const isFloor = target === "floor" || !floor;
      rows.push([
        String(c),
        targetLabels[target],
        s.serverCpuUs.toFixed(0),
        s.postgresCpuUs.toFixed(0),
        isFloor ? "—" : signed(s.serverCpuUs - floor!.serverCpuUs, 0),
        isFloor ? "—" : signed(s.postgresCpuUs - floor!.postgresCpuUs, 0),
        isFloor ? "100%" : pct(floor!.serverCpuUs / s.serverCpuUs),
      ]);
    }
  }
  return table(
    [
      "conns",
      "route",
      "server CPU µs/req",
      "PostgreSQL CPU µs/req",
      "Δ server µs",
      "Δ PostgreSQL µs",
      "throughput vs floor when the server's CPU is the limit",
    ],
    rows,
  );
}
