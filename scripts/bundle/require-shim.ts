/**
 * Injected into every function bundle (scripts/bundle-functions.ts, esbuild `inject`): the
 * bundled CommonJS packages (pg, ws) call `require()` for Node built-ins, which an ES module does
 * not have. esbuild replaces each free `require` with this export, so the one `createRequire`
 * runs once per function, in the chunk that first needs it (a banner would run it in every chunk).
 */
import { createRequire } from "node:module";

export const require = createRequire(import.meta.url);
