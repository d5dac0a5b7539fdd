/**
 * Turns each Vercel function that `vercel build` traced (the compiled entry plus every file of
 * node_modules it may load, read file by file at cold start) into one minified ESM bundle, in
 * place, in the Build Output API v3 layout:
 *
 *   .vercel/output/functions/api/X.func/
 *     .vc-config.json        vercel build's own (runtime, maxDuration, launcherType, ...), handler -> index.mjs
 *     index.mjs (+ .map)     the function: its routes, the app pipeline and the packages they import
 *     chunks/*.mjs (+ .map)  what a request may never need, loaded by `import()` on first use
 *                            (the database drivers, the generation SDKs, the OpenAPI builder)
 *
 *   tsx scripts/bundle-functions.ts [--output .vercel/output]    (scripts/vercel-build.sh runs it)
 *
 * Which source a function comes from is read from its folder name (`api/X.func` <- `api/X.ts`),
 * so every function in api/ is bundled, whatever its name; a folder with no such source is left as
 * vercel build wrote it. Everything else vercel build wrote (routes, headers, static files) stays.
 *
 * - Embedded PGlite is replaced by a module that throws when (and only when) it is loaded:
 *   deployed functions use PostgreSQL or Neon (db/client.ts says so when asked for PGlite).
 * - Source maps are kept next to each file (`shouldAddSourcemapSupport` is vercel build's).
 * - Package attribution per output file goes to `.vercel/bundles/<function>.json`, outside the
 *   deployed output: bench/coldstart.ts and tests/vercel/output.happy.test.ts read it to tell which
 *   packages a function evaluated at import and per request.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build, type Metafile } from "esbuild";
import { pgliteStub, requireBanner } from "./bundling.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** What each output file of a bundle holds: bytes per package ("(ours)" for this repository's code). */
export interface BundleManifest {
  entry: string;
  /** Output file (relative to the .func folder) -> package -> bytes in that file. */
  outputs: Record<string, { bytes: number; packages: Record<string, number>; imports: { path: string; kind: string }[] }>;
}

const withoutPgliteMessage = "embedded PGlite is not part of this deployment: set DATABASE_URL to a PostgreSQL or Neon database";

export function packageOf(inputPath: string): string | null {
  const at = inputPath.lastIndexOf("node_modules/");
  if (at < 0) return null;
  const parts = inputPath.slice(at + "node_modules/".length).split("/");
  return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? null);
}

function manifestOf(metafile: Metafile, outdir: string): BundleManifest {
  const outputs: BundleManifest["outputs"] = {};
  // entryPoints {index: ...} with the .mjs extension (dynamic-import targets are "entry points" too).
  const entry = "index.mjs";
  for (const [file, info] of Object.entries(metafile.outputs)) {
    if (!file.endsWith(".mjs")) continue;
    const name = relative(outdir, resolve(root, file)).split(sep).join("/");
    const packages: Record<string, number> = {};
    for (const [input, used] of Object.entries(info.inputs)) {
      const pkg = packageOf(input) ?? "(ours)";
      packages[pkg] = (packages[pkg] ?? 0) + used.bytesInOutput;
    }
    const imports = info.imports
      .filter((i) => !i.external)
      .map((i) => ({ path: relative(outdir, resolve(root, i.path)).split(sep).join("/"), kind: i.kind }));
    outputs[name] = { bytes: info.bytes, packages, imports };
  }
  return { entry, outputs };
}

export interface BundleOptions {
  /** The function's source, e.g. api/onboarding/api-keys.ts (absolute or relative to the repository). */
  entry: string;
  /** The `.func` folder to (re)write. */
  funcDir: string;
  /** The `.vc-config.json` to write; `handler` is set to the bundle's entry. */
  config: Record<string, unknown>;
  /** Default true. */
  minify?: boolean;
}

/** Bundles one function into `funcDir` (emptied first) and returns what each output file holds. */
export async function bundleFunction(options: BundleOptions): Promise<BundleManifest> {
  // Built beside the folder and swapped in at the end: an interrupted run leaves the old folder whole.
  const funcDir = `${options.funcDir}.bundling`;
  rmSync(funcDir, { recursive: true, force: true });
  mkdirSync(funcDir, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { index: resolve(root, options.entry) },
    outdir: funcDir,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    minify: options.minify ?? true,
    sourcemap: "linked",
    // The maps name our files and the packages' (lines and columns for stack traces); the
    // sources themselves are in the repository, not in every function.
    sourcesContent: false,
    legalComments: "none",
    // Optional back ends Node never loads here: pg's native addon, ws's native helpers,
    // the edge runtime's socket module.
    external: ["pg-native", "cloudflare:sockets", "bufferutil", "utf-8-validate"],
    plugins: [pgliteStub(withoutPgliteMessage)],
    banner: { js: requireBanner },
    metafile: true,
    logLevel: "warning",
  });
  const manifest = manifestOf(result.metafile, funcDir);
  writeFileSync(join(funcDir, ".vc-config.json"), `${JSON.stringify({ ...options.config, handler: manifest.entry }, null, 2)}\n`);
  rmSync(options.funcDir, { recursive: true, force: true });
  renameSync(funcDir, options.funcDir);
  return manifest;
}

/** Every `.func` folder under dir. */
export function findFuncDirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const path = join(dir, entry.name);
    if (entry.name.endsWith(".func")) found.push(path);
    else found.push(...findFuncDirs(path));
  }
  return found.sort();
}

/** The source file a function folder came from, if it is in api/. */
export function sourceOf(functionsDir: string, funcDir: string): string | undefined {
  const name = relative(functionsDir, funcDir)
    .split(sep)
    .join("/")
    .replace(/\.func$/, "");
  if (!name.startsWith("api/")) return undefined;
  for (const ext of [".ts", ".mts", ".js", ".mjs"]) if (existsSync(join(root, name + ext))) return name + ext;
  return undefined;
}

function sizeOf(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? sizeOf(path) : statSync(path).size;
  }
  return total;
}

/** Bundles every function of a Build Output API folder; returns the names bundled. */
export async function bundleOutput(
  outputDir = join(root, ".vercel", "output"),
  log = (line: string) => console.log(line),
): Promise<string[]> {
  const functionsDir = join(outputDir, "functions");
  const manifestsDir = join(dirname(outputDir), "bundles");
  rmSync(manifestsDir, { recursive: true, force: true });
  mkdirSync(manifestsDir, { recursive: true });
  const bundled: string[] = [];
  for (const funcDir of findFuncDirs(functionsDir)) {
    const name = relative(functionsDir, funcDir).split(sep).join("/");
    const source = sourceOf(functionsDir, funcDir);
    if (!source) {
      log(`bundle-functions: ${name}: no api/ source, left as vercel build wrote it`);
      continue;
    }
    const traced = JSON.parse(readFileSync(join(funcDir, ".vc-config.json"), "utf8")) as Record<string, unknown>;
    // The traced layout's file map (node_modules -> ...) has nothing to map in a bundle.
    const { filePathMap: _dropped, ...config } = traced;
    const manifest = await bundleFunction({ entry: source, funcDir, config });
    const manifestFile = join(manifestsDir, `${name.replace(/\.func$/, "").replace(/\//g, "__")}.json`);
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const chunks = Object.keys(manifest.outputs).length - 1;
    log(`bundle-functions: ${name} <- ${source}: ${(sizeOf(funcDir) / 1024).toFixed(0)} KiB, entry + ${chunks} lazy chunk(s)`);
    bundled.push(name);
  }
  return bundled;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const at = process.argv.indexOf("--output");
  const outputDir = at > 0 ? resolve(process.argv[at + 1] ?? "") : undefined;
  bundleOutput(outputDir).catch((error: unknown) => {
    process.stderr.write(`bundle-functions: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
