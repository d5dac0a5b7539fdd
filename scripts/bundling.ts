/**
 * What the two bundlers (scripts/bundle-functions.ts for Vercel, scripts/build-lambda.ts for
 * Lambda) share: the `require` every ESM output file needs, and the PGlite stand-in for a
 * deployment without the embedded database.
 */
import type { Plugin } from "esbuild";

/**
 * CommonJS packages (pg, ws, dotenv…) call require() for Node built-ins, through esbuild's
 * `__require` helper, which looks for a free `require`: an ES module has none, so every output
 * file gets one. `createRequire` runs once per process (the first file evaluated), not once per chunk.
 */
export const requireBanner =
  'import { createRequire as __byokCreateRequire } from "node:module"; const require = (globalThis.__byokRequire ??= __byokCreateRequire(import.meta.url));';

/** Replaces PGlite and Drizzle's PGlite driver with a module that throws `message` when (and only when) loaded. */
export function pgliteStub(message: string): Plugin {
  return {
    name: "pglite-stub",
    setup(b) {
      b.onResolve({ filter: /^(@electric-sql\/pglite|drizzle-orm\/pglite)(\/.*)?$/ }, (args) => ({
        path: args.path,
        namespace: "pglite-stub",
      }));
      b.onLoad({ filter: /.*/, namespace: "pglite-stub" }, () => ({
        contents: `throw new Error(${JSON.stringify(message)});`,
        loader: "js",
      }));
    },
  };
}
