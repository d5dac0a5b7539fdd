/**
 * `npm run check-config [-- --production]`: what an operator runs before deploying. Reads the
 * environment as a deployment would: the mode rules of lib/platform/env.ts, and the `.env` file in
 * development only (as `npm start` does; never in production, and a `.env` that would switch
 * to production is itself a problem). `--production` checks the environment as production
 * whatever it says, for a machine that lacks the platform's variables (e.g. before
 * `vercel deploy`, with the values you are about to set in the dashboard).
 *
 * Prints one line per problem (lib/platform/config-check.ts; names and rules, never a value) and
 * exits 1 when any is an error, else prints `configuration OK (mode …)` and exits 0.
 * Exit 2: a usage error.
 */
import { ConfigError, loadConfig, type Config } from "../lib/platform/env.js";
import { loadDevelopmentEnv } from "../lib/platform/dev/dotenv.js";
import { configProblems, formatConfigProblem } from "../lib/platform/config-check.js";

const usage = "usage: npm run check-config [-- --production]";

function main(argv: readonly string[]): number {
  let assumeProduction = false;
  for (const arg of argv) {
    if (arg === "--production") assumeProduction = true;
    else if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${usage}\n`);
      return 0;
    } else {
      process.stderr.write(`check-config: unknown argument ${JSON.stringify(arg.slice(0, 40))}; ${usage}\n`);
      return 2;
    }
  }

  let config: Readonly<Config>;
  try {
    config = assumeProduction ? loadConfig(undefined, { assumeProduction }) : loadDevelopmentEnv();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Issues name the variable and the rule, never the value.
    for (const issue of error.issues) process.stderr.write(`check-config: error ${issue}\n`);
    return 1;
  }

  const problems = configProblems(config);
  for (const problem of problems) process.stderr.write(`check-config: ${formatConfigProblem(problem)}\n`);
  const errors = problems.filter((p) => p.severity === "error").length;
  const mode = `mode ${config.mode}: ${config.modeReason}`;
  if (errors > 0) {
    process.stderr.write(`check-config: ${errors} error(s), ${problems.length - errors} warning(s) (${mode})\n`);
    return 1;
  }
  const hint = config.mode === "development" ? "; add --production to check a deployment's configuration" : "";
  process.stdout.write(`configuration OK (${mode})${hint}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
