/**
 * Start order (scripts/start.ts): a second `npm start` on a port already in use fails fast,
 * before it opens (and migrates) the embedded database or rebuilds the web app in public/.
 * It used to run the `prestart` build, then open and migrate PGlite, and only then say the port
 * was taken.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(join(tmpdir(), "byok-start-order-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `npm start` exactly as a user types it, in the repository root; its exit code and output. */
function npmStart(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn("npm", ["start", "--silent"], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((done) => child.on("exit", (code) => done({ code, output })));
}

describe("a second npm start on a busy port", () => {
  it("says the port is taken before opening the embedded database or building public/", { timeout: 120_000 }, async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const { port } = holder.address() as { port: number };
    const built = join(root, "public", "index.html");
    const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
    const pglite = join(dir, "pglite");
    try {
      const { code, output } = await npmStart({ PORT: String(port), PGLITE_DIR: pglite, ENV_FILE: join(dir, ".env") });
      expect(code, output).not.toBe(0);
      expect(output).toContain(`port ${port} is already in use`);
      expect(existsSync(pglite), output).toBe(false); // the database was never opened
      expect(existsSync(built) ? statSync(built).mtimeMs : 0, output).toBe(builtAt); // nor the web app rebuilt
      expect(output).not.toMatch(/web: built|database migrated|setting up the embedded database/);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });
});
