/**
 * What the command-line entry points share: ending with one line on stderr, and loading the
 * configuration (development's .env included) or ending with the variables and rules that
 * are wrong, never their values.
 */
import { ConfigError, type Config } from "../lib/platform/env.js";
import { loadDevelopmentEnv } from "../lib/platform/dev/dotenv.js";

/** A command's way out: `<name>: <message>` on stderr, then exit with `code`. */
export function failer(name: string, code: number): (message: string) => never {
  return (message) => {
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(code);
  };
}

/** The configuration as `npm start` sees it (.env in development), or `fail` with why not. */
export function loadConfigOrFail(fail: (message: string) => never, load: () => Readonly<Config> = loadDevelopmentEnv): Readonly<Config> {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}
