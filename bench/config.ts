/**
 * Benchmark settings, from BENCH_* variables (the bench is a harness like the tests, so it
 * reads its own knobs here; the app under test still reads only lib/platform/env.ts). Defaults keep
 * `npm run bench` around 5 minutes on a 2-core machine.
 *
 *   BENCH_DATABASE_URL     admin URL of the local PostgreSQL (postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_DATABASE_NAME    database dropped and created for the run (byok_bench)
 *   BENCH_DURATION         seconds per measured round (5)
 *   BENCH_ROUNDS           alternating rounds per route and concurrency (3)
 *   BENCH_WARMUP           unrecorded seconds per route and concurrency first (2)
 *   BENCH_CONNECTIONS      concurrencies, comma-separated (1,32)
 *   BENCH_POOL             node-postgres pool size of the server (10)
 *   BENCH_SMALL_USERS / BENCH_LARGE_USERS   users in the two scale phases (100 / 100000)
 *   BENCH_TOKENS           distinct users' tokens the load cycles through (500)
 *   BENCH_PGLITE_DURATION  seconds per route in the PGlite run (3)
 *   BENCH_COLD_RUNS        recorded cold starts per function (3)
 *   BENCH_GEN_RUNS, BENCH_GEN_CHUNKS, BENCH_EXA_LATENCY_MS, BENCH_GEMINI_LATENCY_MS   generation (8, 10, 100, 20)
 *   BENCH_PROFILE          auto (CPU profiles when a target is missed) | always | never
 *   BENCH_LOG_LEVEL        the server's LOG_LEVEL (info, as in production)
 *   BENCH_RTTS             injected database round-trip times, ms, for the rtt section (0,5,20)
 *   BENCH_RTT_SAMPLES      sequential requests per route and RTT (60)
 *   BENCH_ONLY             sections: floor,scale,generation,rtt,coldstart,shipped,pglite,profile (all)
 *   BENCH_SHIPPED_RUNS     recorded cold starts per shipped target and driver (7)
 *   BENCH_SHIPPED_DRIVERS  drivers of the shipped load rounds (pg,neon-http)
 *   BENCH_OUT              the report (BENCHMARKS.md)
 *   BENCH_RENDER_ONLY      1: write the report again from the last run's bench/.build/results.json (no measuring)
 */

export interface BenchConfig {
  /** Admin connection to the local PostgreSQL; the bench database is created beside it. */
  adminUrl: string;
  databaseName: string;
  /** Seconds per measured round. */
  duration: number;
  rounds: number;
  /** Seconds of warm-up per target and concurrency, not recorded. */
  warmup: number;
  connections: number[];
  /** node-postgres pool size of the server. */
  pool: number;
  smallUsers: number;
  largeUsers: number;
  /** Distinct users (signed tokens) the load cycles through. */
  tokens: number;
  pgliteDuration: number;
  coldRuns: number;
  shippedRuns: number;
  shippedDrivers: ("pg" | "neon-http")[];
  genRuns: number;
  genChunks: number;
  exaLatencyMs: number;
  geminiLatencyMs: number;
  /** "auto": profile only when a target is missed. */
  profile: "auto" | "always" | "never";
  logLevel: "debug" | "info" | "warn" | "error";
  /** Sections to run. */
  only: Set<Section>;
  outFile: string;
  rtts: number[];
  rttSamples: number;
  renderOnly: boolean;
}

export const sections = ["floor", "scale", "generation", "rtt", "coldstart", "shipped", "pglite", "profile"] as const;
export type Section = (typeof sections)[number];

function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number`);
  return value;
}

export function loadBenchConfig(): BenchConfig {
  const env = process.env;
  const only = new Set<Section>();
  for (const part of (env.BENCH_ONLY ?? sections.join(","))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (!(sections as readonly string[]).includes(part))
      throw new Error(`BENCH_ONLY: unknown section ${part} (know ${sections.join(", ")})`);
    only.add(part as Section);
  }
  const profile = (env.BENCH_PROFILE ?? "auto").trim();
  if (profile !== "auto" && profile !== "always" && profile !== "never") throw new Error("BENCH_PROFILE must be auto, always or never");
  const logLevel = (env.BENCH_LOG_LEVEL ?? "info").trim();
  if (!["debug", "info", "warn", "error"].includes(logLevel)) throw new Error("BENCH_LOG_LEVEL must be debug, info, warn or error");
  return {
    adminUrl: env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres",
    databaseName: env.BENCH_DATABASE_NAME || "byok_bench",
    duration: num("BENCH_DURATION", 5),
    rounds: Math.max(1, Math.round(num("BENCH_ROUNDS", 3))),
    warmup: num("BENCH_WARMUP", 2),
    connections: (env.BENCH_CONNECTIONS ?? "1,32")
      .split(",")
      .map((s) => Math.max(1, Math.round(Number(s))))
      .filter(Number.isFinite),
    pool: Math.max(1, Math.round(num("BENCH_POOL", 10))),
    smallUsers: Math.max(1, Math.round(num("BENCH_SMALL_USERS", 100))),
    largeUsers: Math.max(2, Math.round(num("BENCH_LARGE_USERS", 100_000))),
    tokens: Math.max(1, Math.round(num("BENCH_TOKENS", 500))),
    pgliteDuration: num("BENCH_PGLITE_DURATION", 3),
    coldRuns: Math.max(1, Math.round(num("BENCH_COLD_RUNS", 3))),
    shippedRuns: Math.max(1, Math.round(num("BENCH_SHIPPED_RUNS", 7))),
    shippedDrivers: (env.BENCH_SHIPPED_DRIVERS ?? "pg,neon-http")
      .split(",")
      .map((d) => d.trim())
      .filter((d): d is "pg" | "neon-http" => d === "pg" || d === "neon-http"),
    genRuns: Math.max(1, Math.round(num("BENCH_GEN_RUNS", 8))),
    genChunks: Math.max(1, Math.round(num("BENCH_GEN_CHUNKS", 10))),
    exaLatencyMs: num("BENCH_EXA_LATENCY_MS", 100),
    geminiLatencyMs: num("BENCH_GEMINI_LATENCY_MS", 20),
    profile,
    logLevel: logLevel as BenchConfig["logLevel"],
    only,
    outFile: env.BENCH_OUT || "BENCHMARKS.md",
    rtts: (env.BENCH_RTTS ?? "0,5,20")
      .split(",")
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isFinite(n) && n >= 0),
    rttSamples: Math.max(4, Math.round(num("BENCH_RTT_SAMPLES", 60))),
    renderOnly: env.BENCH_RENDER_ONLY === "1",
  };
}
