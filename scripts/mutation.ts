/**
 * `npm run test:mutation [-- module ...]`: StrykerJS over the security-critical modules, one run
 * per module (stryker.config.mjs lists them; docs/mutation-testing.md has the scores). Slow: not
 * part of `npm test`. Prints each module's time; exits non-zero if a run fails.
 */
import { spawnSync } from "node:child_process";
import { mutationModules } from "../stryker.config.mjs";

const all = Object.keys(mutationModules);
const asked = process.argv.slice(2);
const unknown = asked.filter((name) => !all.includes(name));
if (unknown.length > 0) {
  process.stderr.write(`unknown module(s): ${unknown.join(", ")}; choose from ${all.join(", ")}\n`);
  process.exit(2);
}
let failed = false;
for (const name of asked.length > 0 ? asked : all) {
  const started = Date.now();
  process.stdout.write(`\n== mutation testing: ${name} ==\n`);
  const run = spawnSync("npx", ["stryker", "run"], { stdio: "inherit", env: { ...process.env, MUTATION_MODULE: name } });
  const seconds = Math.round((Date.now() - started) / 1000);
  process.stdout.write(`== ${name}: ${run.status === 0 ? "done" : "FAILED"} in ${seconds} s ==\n`);
  if (run.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
