/**
 * `npm start` as a user runs it (`tsx scripts/start.ts` in the repository root), for the
 * tests that need the real local server: its startup messages, exit codes and HTTP.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export interface LocalServer {
  child: ChildProcess;
  /** The base URL once listening; undefined when the process exited first. */
  url: string | undefined;
  exitCode: number | null;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr interleaved as they came. */
  output(): string;
}

/** Starts the local server with only PATH, HOME and `env`; resolves once it listens or exits. */
export function startLocalServer(env: Record<string, string>, timeoutMs = 90_000): Promise<LocalServer> {
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let output = "";
  const server: LocalServer = { child, url: undefined, exitCode: null, stdout: () => stdout, stderr: () => stderr, output: () => output };
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`neither listening nor exited:\n${output}`)), timeoutMs);
    const listening = () => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match && !server.url) {
        clearTimeout(timer);
        server.url = match[1];
        resolvePromise(server);
      }
    };
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      output += chunk.toString();
      listening();
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      output += chunk.toString();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      server.exitCode = code;
      resolvePromise(server);
    });
  });
}

/** Starts the local server and fails unless it listens. */
export async function startListeningServer(env: Record<string, string>): Promise<LocalServer & { url: string }> {
  const server = await startLocalServer(env);
  if (server.url === undefined) throw new Error(`server exited with ${server.exitCode}:\n${server.output()}`);
  return server as LocalServer & { url: string };
}
