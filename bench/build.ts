/**
 * Builds for the benchmarks, with esbuild, into bench/.build (git-ignored by bench/.gitignore):
 *
 * - the server: every source file of api/, lib/, db/ and bench/server.ts transpiled one to one
 *   (like `tsc` emit; packages stay in node_modules), so the child runs on plain `node` with
 *   no loader thread and CPU profiles name our real files;
 * - the cold-start child (bench/coldstart-child.ts), bundled;
 * - each function in api/ bundled the way a serverless platform ships it (bundle, platform
 *   node, ESM) with code splitting, so a dynamic `import()` stays lazy as it is on Vercel, and a
 *   metafile that says which packages each output file holds.
 */
import { cpSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";

export const repoRoot = fileURLToPath(new URL("..", import.meta.url));
export const buildDir = join(repoRoot, "bench", ".build");

/** Every .ts file under dir (no declaration or test files). */
export function listTsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listTsFiles(full));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts") && !name.endsWith(".test.ts")) out.push(full);
  }
  return out.sort();
}

/** Transpiles the server sources; returns the path of the server entry to run with node. */
export async function buildServer(): Promise<string> {
  const outdir = join(buildDir, "src");
  rmSync(outdir, { recursive: true, force: true });
  const entryPoints = [...["api", "lib", "db"].flatMap((d) => listTsFiles(join(repoRoot, d))), join(repoRoot, "bench", "server.ts")];
  await build({
    entryPoints,
    outdir,
    outbase: repoRoot,
    bundle: false,
    format: "esm",
    platform: "node",
    target: "node20",
    // Keep `with { type: "json" }` (Node 20.10+ has it; esbuild's node20 target would drop it).
    supported: { "import-attributes": true },
    logLevel: "error",
  });
  // lib/platform/version.ts imports ../package.json (a JSON module the transpiled files still import).
  cpSync(join(repoRoot, "package.json"), join(outdir, "package.json"));
  return join(outdir, "bench", "server.js");
}

/** Bundles the cold-start child. */
export async function buildColdstartChild(): Promise<string> {
  const outfile = join(buildDir, "coldstart-child.mjs");
  await build({
    entryPoints: [join(repoRoot, "bench", "coldstart-child.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "error",
  });
  return outfile;
}

/**
 * Every chunk registers itself when evaluated (`globalThis.__benchLoadedChunks`), so the
 * cold-start child knows exactly which output files a request pulled in. The `require` shim
 * lets bundled CommonJS packages (pg) require Node built-ins from an ES module.
 */
const functionBanner = [
  'import { createRequire as __benchCreateRequire } from "node:module";',
  "const require = __benchCreateRequire(import.meta.url);",
  "(globalThis.__benchLoadedChunks ??= []).push(import.meta.url);",
].join(" ");

export interface FunctionBuild {
  /** e.g. api/onboarding/api-keys.ts */
  file: string;
  /** Absolute path of the entry output. */
  entry: string;
  outdir: string;
  metafile: Metafile;
}

export async function buildFunction(file: string): Promise<FunctionBuild> {
  const name = relative(join(repoRoot, "api"), join(repoRoot, file)).replace(/\.ts$/, "").split(sep).join("__");
  const outdir = join(buildDir, "functions", name);
  rmSync(outdir, { recursive: true, force: true });
  const result = await build({
    entryPoints: { index: join(repoRoot, file) },
    absWorkingDir: repoRoot,
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    metafile: true,
    // As scripts/bundle-functions.ts ships them (minified); the banner below is what differs.
    minify: true,
    chunkNames: "chunks/[name]-[hash]",
    // Optional native/edge back ends of pg that Node never loads.
    external: ["pg-native", "cloudflare:sockets"],
    banner: { js: functionBanner },
    logLevel: "error",
  });
  return { file, entry: join(outdir, "index.js"), outdir, metafile: result.metafile };
}
