/**
 * The three dotenv readers our `.env` writer must agree with: the `dotenv` package, Node's
 * own `--env-file`, and python-dotenv (Debian's python3-dotenv; CI installs it).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import dotenv from "dotenv";

export const python = "/usr/bin/python3";

/** Why the python-dotenv checks are skipped, or undefined when they run. */
export const pythonDotenvMissing =
  spawnSync(python, ["-c", "import dotenv"], { stdio: "ignore" }).status !== 0
    ? `skipped: ${python} cannot import dotenv; install it with \`apt-get update && apt-get install -y python3-dotenv\``
    : undefined;

export function parseWithDotenv(path: string): Record<string, string> {
  return dotenv.parse(readFileSync(path));
}

export function parseWithNode(path: string): Record<string, string> {
  // A bare environment, so everything printed comes from the file.
  const out = execFileSync(process.execPath, [`--env-file=${path}`, "-e", "process.stdout.write(JSON.stringify(process.env))"], {
    env: {},
    encoding: "utf8",
  });
  return JSON.parse(out) as Record<string, string>;
}

export function parseWithPython(path: string): Record<string, string | null> {
  const out = execFileSync(
    python,
    ["-c", "import json,sys; from dotenv import dotenv_values; print(json.dumps(dotenv_values(sys.argv[1])))", path],
    { encoding: "utf8" },
  );
  return JSON.parse(out) as Record<string, string | null>;
}
