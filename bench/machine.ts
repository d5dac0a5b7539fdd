/**
 * How busy the machine was with work that is not the benchmark's. The benchmark's processes
 * are this one (load generator), the server child and the PostgreSQL backends connected to
 * the bench database; everything else that used CPU meanwhile (other jobs on a shared
 * machine) makes the numbers noisier, so each round records its share.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux we run on

export interface CpuSnapshot {
  at: number;
  /** Machine-wide busy time, s (all cores). */
  machineBusy: number;
  /** CPU time of our processes, s: the sum of the three below. */
  ours: number;
  /** This process (the load generator), s. */
  loadGenerator: number;
  /** The server child, all its threads, s. */
  server: number;
  /** PostgreSQL backends connected to the bench database, s. */
  postgres: number;
  /** CPU seconds per PostgreSQL backend pid (backends come and go with the pool). */
  backends: Map<number, number>;
}

function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

function processSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[11], fields[12] are utime, stime (14th and 15th of the full line)
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** PostgreSQL backends serving `database` (their process title names it). */
function postgresBackendPids(database: string): number[] {
  const pids: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.startsWith("postgres:") && cmdline.includes(` ${database} `)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export function cpuSnapshot(serverPid: number | undefined, database: string | undefined): CpuSnapshot {
  const self = process.cpuUsage();
  const loadGenerator = (self.user + self.system) / 1e6;
  const server = serverPid ? processSeconds(serverPid) : 0;
  const backends = new Map<number, number>();
  if (database) for (const pid of postgresBackendPids(database)) backends.set(pid, processSeconds(pid));
  const postgres = [...backends.values()].reduce((a, b) => a + b, 0);
  return {
    at: performance.now(),
    machineBusy: machineBusySeconds(),
    ours: loadGenerator + server + postgres,
    loadGenerator,
    server,
    postgres,
    backends,
  };
}

/**
 * PostgreSQL CPU between two snapshots: backends present in both count their difference, new
 * ones all of theirs; a backend that exited meanwhile is lost (its counters are gone).
 */
function postgresDelta(before: CpuSnapshot, after: CpuSnapshot): number {
  let total = 0;
  for (const [pid, seconds] of after.backends) total += seconds - (before.backends.get(pid) ?? 0);
  return total;
}

/** CPU time per request of the server and of PostgreSQL between two snapshots, µs. */
export function cpuPerRequest(before: CpuSnapshot, after: CpuSnapshot, requests: number): { serverUs: number; postgresUs: number } {
  if (!(requests > 0)) return { serverUs: NaN, postgresUs: NaN };
  return {
    serverUs: ((after.server - before.server) * 1e6) / requests,
    postgresUs: (postgresDelta(before, after) * 1e6) / requests,
  };
}

/**
 * Share of the machine's capacity (0..1) used by other processes between two snapshots.
 * Approximate: a backend that exits between the snapshots loses its time to "other".
 */
export function foreignShare(before: CpuSnapshot, after: CpuSnapshot): number {
  const seconds = (after.at - before.at) / 1000;
  const capacity = seconds * cpus().length;
  if (!(capacity > 0)) return NaN;
  const ours = after.loadGenerator - before.loadGenerator + (after.server - before.server) + postgresDelta(before, after);
  const foreign = after.machineBusy - before.machineBusy - ours;
  return Math.min(1, Math.max(0, foreign / capacity));
}

export function loadAverage(): string {
  return loadavg()
    .map((v) => v.toFixed(2))
    .join(" / ");
}
