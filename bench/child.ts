/**
 * The server child process: started with `fork` (IPC only to learn the port and to stop it),
 * its stdout (the app's info logs) discarded like a log shipper would take it, its stderr
 * (warnings and errors) kept for the report, and its memory read from /proc.
 */
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";

export interface ServerChild {
  pid: number;
  /** `performance.now()` of this process when the child was forked. */
  forkedAt: number;
  baseUrl: string;
  port: number;
  pool: number;
  /** Peak resident set size so far (VmHWM), MiB. */
  peakRssMiB(): number;
  /** Current resident set size (VmRSS), MiB. */
  rssMiB(): number;
  /** stderr lines so far (warnings and errors; never key material, the app redacts). */
  stderrLines(): string[];
  stop(): Promise<number | null>;
}

export interface StartOptions {
  entry: string;
  env: Record<string, string>;
  pool: number;
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir=..."]. */
  execArgv?: string[];
}

export function procStatusKiB(pid: number, field: "VmHWM" | "VmRSS"): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status);
    return match ? Number(match[1]) : NaN;
  } catch {
    return NaN;
  }
}

export async function startServer(options: StartOptions): Promise<ServerChild> {
  const forkedAt = performance.now();
  const child: ChildProcess = fork(options.entry, ["--pool", String(options.pool)], {
    env: options.env,
    execArgv: options.execArgv ?? [],
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  const stderr: string[] = [];
  let pending = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (stderr.length < 1_000) stderr.push(line);
  });

  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("bench server did not start within 20 s")), 20_000);
    child.on("message", (message: { type?: string; port?: number }) => {
      if (message?.type === "listening" && typeof message.port === "number") {
        clearTimeout(timer);
        resolve(message.port);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bench server exited with code ${code} before listening: ${[...stderr, pending].join("\n").slice(-2_000)}`));
    });
  });

  const pid = child.pid!;
  return {
    pid,
    forkedAt,
    port,
    pool: options.pool,
    baseUrl: `http://127.0.0.1:${port}`,
    peakRssMiB: () => procStatusKiB(pid, "VmHWM") / 1024,
    rssMiB: () => procStatusKiB(pid, "VmRSS") / 1024,
    stderrLines: () => [...stderr],
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.send({ type: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 8_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
