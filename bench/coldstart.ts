/**
 * Cold starts: each function in api/ built like a serverless bundle (bench/build.ts), then,
 * in a fresh Node process per run, imported and asked one request (and a second, warm one).
 * Reports boot, import and first-request times, and which heavy packages each function
 * loads: statically at import, only when the request runs (a dynamic import), or never
 * (bundled but lazy). Key endpoints must never load the Gemini or Exa SDKs.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Metafile } from "esbuild";
import { buildDir, buildFunction, listTsFiles, repoRoot, type FunctionBuild } from "./build.js";

export const heavyPackages = [
  "@google/generative-ai",
  "exa-js",
  "@electric-sql/pglite",
  "@asteasolutions/zod-to-openapi",
  "@neondatabase/serverless",
  "pg",
] as const;

/** Packages a key endpoint (anything but generation) must never load. */
const forbiddenForKeyEndpoints = new Set(["@google/generative-ai", "exa-js"]);

export type LoadState = "import" | "request" | "lazy" | "absent";

export interface ColdStartResult {
  file: string;
  method: string;
  path: string;
  status: number;
  runs: number;
  /** Medians, ms. */
  bootMs: number;
  importMs: number;
  firstRequestMs: number;
  secondRequestMs: number;
  /** Spawn to exit as the parent saw it (includes the pool shutdown), ms. */
  processMs: number;
  rssMiB: number;
  entryKiB: number;
  loadedKiB: number;
  bundleKiB: number;
  heavy: Record<(typeof heavyPackages)[number], LoadState>;
  /** Packages evaluated at import, largest first. */
  importPackages: string[];
  /** Packages added by the first request. */
  requestPackages: string[];
  violations: string[];
  error?: string;
}

interface ChildResult {
  bootMs: number;
  importMs: number;
  first: { status: number; ms: number; bytes: number };
  second: { status: number; ms: number; bytes: number };
  chunksAfterImport: string[];
  chunksAfterRequest: string[];
  rssMiB: number;
  error?: string;
}

export function packageOf(inputPath: string): string | null {
  const at = inputPath.lastIndexOf("node_modules/");
  if (at < 0) return null;
  const parts = inputPath.slice(at + "node_modules/".length).split("/");
  return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? null);
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Bytes per package in the given output files (absolute paths). */
function packagesIn(metafile: Metafile, outputs: Iterable<string>): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const out of outputs) {
    const entry = metafile.outputs[relative(repoRoot, out)];
    if (!entry) continue;
    for (const [input, info] of Object.entries(entry.inputs)) {
      const pkg = packageOf(input) ?? "(ours)";
      sizes.set(pkg, (sizes.get(pkg) ?? 0) + info.bytesInOutput);
    }
  }
  return sizes;
}

/** Output files reachable from the entry through static imports only. */
function staticClosure(metafile: Metafile, entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [resolve(entry)];
  while (pending.length > 0) {
    const current = pending.pop()!;
    if (seen.has(current)) continue;
    seen.add(current);
    const output = metafile.outputs[relative(repoRoot, current)];
    for (const imported of output?.imports ?? []) {
      if (imported.kind === "import-statement" && !imported.external) pending.push(resolve(repoRoot, imported.path));
    }
  }
  return seen;
}

function requestFor(
  file: string,
  baseUrl: string,
  token: string,
): { method: string; path: string; url: string; headers: Record<string, string>; body?: string } {
  // Where Vercel routes to the file (a rewritten path such as /api/openapi.json arrives as the file's path).
  const path = "/" + file.replace(/\.ts$/, "").replace(/\/index$/, "");
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (path === "/api/blog/generate") {
    headers["content-type"] = "application/json";
    headers.accept = "application/json";
    const body = JSON.stringify({ topic: "Cold start of a BYOK function", keywords: ["serverless", "latency", "bundles"], research: true });
    return { method: "POST", path, url: `${baseUrl}${path}`, headers, body };
  }
  return { method: "GET", path, url: `${baseUrl}${path}`, headers };
}

function runChild(
  childScript: string,
  specFile: string,
  resultFile: string,
  env: Record<string, string>,
): Promise<{ code: number | null; ms: number }> {
  return new Promise((resolvePromise, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [childScript, specFile, resultFile], { env, stdio: ["ignore", "ignore", "ignore"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, ms: performance.now() - start });
    });
  });
}

export async function measureColdStarts(options: {
  childScript: string;
  env: Record<string, string>;
  token: string;
  runs: number;
  log: (line: string) => void;
  /** Repository-relative entry files; default: every .ts file under api/. */
  files?: string[];
}): Promise<ColdStartResult[]> {
  const files = options.files ?? listTsFiles(join(repoRoot, "api")).map((f) => relative(repoRoot, f).split("\\").join("/"));
  const workDir = join(buildDir, "coldstart");
  mkdirSync(workDir, { recursive: true });
  const results: ColdStartResult[] = [];

  for (const file of files) {
    let built: FunctionBuild;
    try {
      built = await buildFunction(file);
    } catch (error) {
      options.log(`  ${file}: build failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`);
      continue;
    }
    const request = requestFor(file, "http://localhost", options.token);
    const specFile = join(workDir, `${file.replace(/\W+/g, "_")}.spec.json`);
    const resultFile = join(workDir, `${file.replace(/\W+/g, "_")}.result.json`);
    writeFileSync(specFile, JSON.stringify({ module: built.entry, ...request }));

    const samples: (ChildResult & { processMs: number })[] = [];
    let error: string | undefined;
    // One unrecorded run first: it warms the file cache, as a platform's would be.
    for (let run = 0; run <= options.runs; run++) {
      writeFileSync(resultFile, "{}");
      const { code, ms } = await runChild(options.childScript, specFile, resultFile, options.env);
      const result = JSON.parse(readFileSync(resultFile, "utf8")) as Partial<ChildResult>;
      if (code !== 0 || result.error || !result.first) {
        error = result.error ?? `child exited with code ${code}`;
        break;
      }
      if (run > 0) samples.push({ ...(result as ChildResult), processMs: ms });
    }

    const metafile = built.metafile;
    const allOutputs = Object.keys(metafile.outputs)
      .filter((o) => o.endsWith(".js"))
      .map((o) => resolve(repoRoot, o));
    const staticOutputs = staticClosure(metafile, built.entry);
    const last = samples.at(-1);
    const afterImport = new Set((last?.chunksAfterImport ?? []).map((u) => fileURLToPath(u)));
    const afterRequest = new Set((last?.chunksAfterRequest ?? []).map((u) => fileURLToPath(u)));
    // What the runtime saw must agree with the static analysis (a bundling surprise otherwise).
    for (const out of staticOutputs) if (last && !afterImport.has(out)) afterImport.add(out);

    const importSizes = packagesIn(metafile, afterImport);
    const requestSizes = packagesIn(metafile, afterRequest);
    const bundleSizes = packagesIn(metafile, allOutputs);
    const heavy = {} as ColdStartResult["heavy"];
    for (const pkg of heavyPackages) {
      heavy[pkg] = importSizes.has(pkg) ? "import" : requestSizes.has(pkg) ? "request" : bundleSizes.has(pkg) ? "lazy" : "absent";
    }
    const isGeneration = file === "api/blog/generate.ts";
    const violations: string[] = [];
    for (const pkg of forbiddenForKeyEndpoints) {
      if (!isGeneration && (heavy[pkg as keyof typeof heavy] === "import" || heavy[pkg as keyof typeof heavy] === "request")) {
        violations.push(`${file} loads ${pkg} (${heavy[pkg as keyof typeof heavy] === "import" ? "at import" : "while answering"})`);
      }
      if (isGeneration && heavy[pkg as keyof typeof heavy] === "import") {
        violations.push(`${file} loads ${pkg} at import (it should wait for a generation request)`);
      }
    }
    const sizeOf = (outs: Iterable<string>) =>
      [...outs].reduce((sum, o) => sum + (metafile.outputs[relative(repoRoot, o)]?.bytes ?? 0), 0) / 1024;
    const byBytes = (sizes: Map<string, number>, exclude?: Map<string, number>) =>
      [...sizes.entries()]
        .filter(([pkg]) => pkg !== "(ours)" && !exclude?.has(pkg))
        .sort((a, b) => b[1] - a[1])
        .map(([pkg, bytes]) => `${pkg} (${Math.round(bytes / 1024)} KiB)`);

    const result: ColdStartResult = {
      file,
      method: request.method,
      path: request.path,
      status: last?.first.status ?? 0,
      runs: samples.length,
      bootMs: median(samples.map((s) => s.bootMs)),
      importMs: median(samples.map((s) => s.importMs)),
      firstRequestMs: median(samples.map((s) => s.first.ms)),
      secondRequestMs: median(samples.map((s) => s.second.ms)),
      processMs: median(samples.map((s) => s.processMs)),
      rssMiB: median(samples.map((s) => s.rssMiB)),
      entryKiB: (metafile.outputs[relative(repoRoot, built.entry)]?.bytes ?? 0) / 1024,
      loadedKiB: sizeOf(afterRequest.size > 0 ? afterRequest : staticOutputs),
      bundleKiB: sizeOf(allOutputs),
      heavy,
      importPackages: byBytes(importSizes),
      requestPackages: byBytes(requestSizes, importSizes),
      violations,
      ...(error ? { error } : {}),
    };
    results.push(result);
    options.log(
      error
        ? `  ${file}: FAILED (${error})`
        : `  ${file}: import ${result.importMs.toFixed(1)} ms, first request ${result.firstRequestMs.toFixed(1)} ms (status ${result.status})`,
    );
  }
  return results;
}
