/**
 * Setup file of the unit tier (vitest.config.ts): a unit test opens no database and starts no
 * child process. Either one throws here, naming the fix, instead of quietly making
 * `npm run test:unit` slow. Everything else of both modules is the real thing.
 */
import { vi } from "vitest";

const misfiled = (what: string) => () => {
  throw new Error(`${what} in the unit tier: list this test file under integration, not unit (vitest.config.ts)`);
};

vi.mock(import("../../db/client.js"), async (importOriginal) => ({
  ...(await importOriginal()),
  openDatabase: misfiled("openDatabase"),
}));

vi.mock(import("node:child_process"), async (importOriginal) => {
  const original = await importOriginal();
  const refused = Object.fromEntries(
    (["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"] as const).map((name) => [
      name,
      misfiled(`child_process.${name}`),
    ]),
  );
  return { ...original, ...refused, default: { ...original, ...refused } };
});
