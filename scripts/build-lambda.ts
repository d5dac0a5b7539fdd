/**
 * Bundles the AWS Lambda adapter (lib/server/lambda.ts) with esbuild into `dist/lambda/`: the
 * entry `index.mjs` and, beside it, lazy chunks (`*-HASH.mjs`) for what a request may not need
 * (each route module the table imports on first use, the database drivers, the generation SDKs,
 * the OpenAPI builder), as the Vercel functions ship (scripts/bundle-functions.ts). Zip the
 * output folder and deploy it with handler `index.handler` (buffered) or `index.streamingHandler`
 * (RESPONSE_STREAM Function URL); see lib/server/lambda.ts.
 *
 *   tsx scripts/build-lambda.ts [--outdir dir] [--with-pglite] [--no-minify] [--sourcemap]
 *
 * Only `pg-native` stays external (node-postgres loads it only when asked to; it is a native
 * addon). Embedded PGlite is left out by default: on Lambda it would keep data on one
 * instance only, and its WASM and data files (about 15 MB) cannot live inside a JavaScript
 * bundle. Without it, choosing the PGlite driver fails with an error that says to set
 * DATABASE_URL. `--with-pglite` bundles it and copies `pglite.wasm`, `initdb.wasm` and
 * `pglite.data` next to `index.mjs`, where PGlite looks for them (`new URL(..., import.meta.url)`);
 * then set PGLITE_DIR to a writable path such as /tmp/pglite or memory://.
 */
import { copyFile, mkdir, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build, type Metafile } from "esbuild";
import { pgliteStub, requireBanner } from "./bundling.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface BuildLambdaOptions {
  /** Output folder (default `dist/lambda`); emptied first. */
  outdir?: string;
  /** Bundle embedded PGlite and copy its WASM/data files (default false). */
  withPglite?: boolean;
  /** Minify (default true): a smaller file loads faster at cold start. */
  minify?: boolean;
  /** Write `index.mjs.map` (run with NODE_OPTIONS=--enable-source-maps to use it). */
  sourcemap?: boolean;
}

export interface BuildLambdaResult {
  outfile: string;
  /** Size of index.mjs in bytes. */
  bytes: number;
  /** Every JavaScript file written (index.mjs and its chunks), relative to the output folder, with its size. */
  files: { file: string; bytes: number }[];
  /** Copied asset files (PGlite only) and their sizes. */
  assets: { file: string; bytes: number }[];
  metafile: Metafile;
}

export const PGLITE_ASSETS = ["pglite.wasm", "initdb.wasm", "pglite.data"] as const;

const withoutPgliteMessage =
  "this Lambda bundle was built without embedded PGlite: set DATABASE_URL to a PostgreSQL or Neon database " +
  "(or rebuild with scripts/build-lambda.ts --with-pglite)";

export async function buildLambda(options: BuildLambdaOptions = {}): Promise<BuildLambdaResult> {
  const outdir = resolve(root, options.outdir ?? "dist/lambda");
  const outfile = join(outdir, "index.mjs");
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });

  const result = await build({
    absWorkingDir: root,
    entryPoints: { index: join(root, "lib/server/lambda.ts") },
    outdir,
    outExtension: { ".js": ".mjs" },
    // Beside index.mjs, not in a subfolder: PGlite (--with-pglite) finds its WASM next to the
    // module that loads it (`new URL(..., import.meta.url)`).
    chunkNames: "[name]-[hash]",
    splitting: true,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    minify: options.minify ?? true,
    sourcemap: options.sourcemap ? "linked" : false,
    external: ["pg-native"],
    plugins: options.withPglite ? [] : [pgliteStub(withoutPgliteMessage)],
    banner: { js: requireBanner },
    metafile: true,
    logLevel: "warning",
  });

  const assets: BuildLambdaResult["assets"] = [];
  if (options.withPglite) {
    // The package's exports map hides dist/, so locate it from the main entry.
    const pgliteMain = createRequire(join(root, "package.json")).resolve("@electric-sql/pglite");
    for (const file of PGLITE_ASSETS) {
      const target = join(outdir, file);
      await copyFile(join(dirname(pgliteMain), file), target);
      assets.push({ file, bytes: (await stat(target)).size });
    }
  }
  const files: BuildLambdaResult["files"] = [];
  for (const [file, output] of Object.entries(result.metafile.outputs)) {
    if (file.endsWith(".mjs")) files.push({ file: relative(outdir, resolve(root, file)), bytes: output.bytes });
  }
  files.sort((a, b) => (a.file === "index.mjs" ? -1 : b.file === "index.mjs" ? 1 : a.file.localeCompare(b.file)));
  return { outfile, bytes: (await stat(outfile)).size, files, assets, metafile: result.metafile };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

async function main(argv: string[]) {
  const known = new Set(["--outdir", "--with-pglite", "--no-minify", "--sourcemap"]);
  const options: BuildLambdaOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!known.has(arg)) throw new Error(`unknown argument ${arg}; use --outdir <dir>, --with-pglite, --no-minify, --sourcemap`);
    if (arg === "--outdir") {
      const dir = argv[++i];
      if (!dir) throw new Error("--outdir needs a folder");
      options.outdir = dir;
    } else if (arg === "--with-pglite") options.withPglite = true;
    else if (arg === "--no-minify") options.minify = false;
    else if (arg === "--sourcemap") options.sourcemap = true;
  }
  const built = await buildLambda(options);
  process.stdout.write(`${built.outfile}: ${kib(built.bytes)}, + ${built.files.length - 1} lazy chunk(s)\n`);
  for (const asset of built.assets) process.stdout.write(`  + ${asset.file}: ${kib(asset.bytes)}\n`);
  process.stdout.write(`handlers: index.handler (buffered), index.streamingHandler (RESPONSE_STREAM Function URL)\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`build-lambda: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
