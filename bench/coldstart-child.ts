/**
 * One cold start, in a fresh Node process: import a built function, answer one request, then
 * a second (warm) one, and write the timings and the output files (chunks) the function
 * evaluated to the result file. Bundled by bench/build.ts; run by bench/coldstart.ts as
 * `node coldstart-child.mjs <spec.json> <result.json>`.
 *
 * `performance.now()` counts from the start of this process, so the first reading is the
 * time Node itself took to boot.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

interface Spec {
  module: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

type Handler = (request: Request) => Promise<Response>;

const bootMs = performance.now();
const [specFile = "", resultFile = ""] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specFile, "utf8")) as Spec;

async function call(handler: Handler): Promise<{ status: number; ms: number; bytes: number }> {
  const start = performance.now();
  const response = await handler(new Request(spec.url, { method: spec.method, headers: spec.headers, body: spec.body }));
  const text = await response.text(); // a streamed answer counts until its last byte
  return { status: response.status, ms: performance.now() - start, bytes: text.length };
}

async function main(): Promise<void> {
  const importStart = performance.now();
  const module = (await import(pathToFileURL(spec.module).href)) as Record<string, Handler | undefined>;
  const importMs = performance.now() - importStart;
  const chunksAfterImport = [...((globalThis as { __benchLoadedChunks?: string[] }).__benchLoadedChunks ?? [])];
  const handler = module[spec.method];
  if (!handler) throw new Error(`the function exports no ${spec.method} handler`);
  const first = await call(handler);
  const second = await call(handler);
  const chunksAfterRequest = [...((globalThis as { __benchLoadedChunks?: string[] }).__benchLoadedChunks ?? [])];
  writeFileSync(
    resultFile,
    JSON.stringify({ bootMs, importMs, first, second, chunksAfterImport, chunksAfterRequest, rssMiB: process.memoryUsage().rss / 2 ** 20 }),
  );
}

main()
  .then(() => process.exit(0)) // the database pool would keep the process alive
  .catch((error: unknown) => {
    writeFileSync(resultFile, JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
    process.exit(1);
  });
