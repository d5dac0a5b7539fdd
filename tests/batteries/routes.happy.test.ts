/**
 * The app's route list (lib/routes.ts) and the api/ folder agree: Vercel serves the
 * files, the local server and Lambda serve the list, so a route no api/ file serves (or an
 * api/ file serving a path Vercel never routes to it) exists on one platform only. Also the
 * layout rules: nothing under lib/ imports api/, and scripts/ and bench/ never import tests/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { routes } from "../../lib/routes.js";
import { examplePath } from "../../lib/http/route.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { makeRuntime, type TestRuntime } from "../helpers/runtime.js";

const root = join(import.meta.dirname, "../..");

function filesUnder(dir: string, ext = ".ts"): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const full = join(root, dir, entry.name);
    if (entry.isDirectory()) return filesUnder(relative(root, full), ext);
    return entry.name.endsWith(ext) && !entry.name.endsWith(".d.ts") ? [relative(root, full).split("\\").join("/")] : [];
  });
}

/** Vercel's file-system route for api/x/y.ts; a dynamic segment `[name]` is the route's `:name`. */
const vercelPath = (file: string) => "/" + file.replace(/\.ts$/, "").replace(/\[(\w+)\]/g, ":$1");
function vercelRewrites(): Map<string, string> {
  const config = JSON.parse(readFileSync(join(root, "vercel.json"), "utf8")) as { rewrites?: { source: string; destination: string }[] };
  const exact = new Map((config.rewrites ?? []).map((r) => [r.source, r.destination]));
  // A prefix rewrite (`/api/gateway/:path*`) sends every path under its prefix to one function
  // (outside Next.js, Vercel has no catch-all file names); the function sees the public path.
  const prefixes = [...exact]
    .filter(([source]) => source.endsWith("/:path*"))
    .map(([source, destination]) => [source.slice(0, -"/:path*".length) + "/", destination] as const);
  return {
    get: (path: string) => exact.get(path) ?? prefixes.find(([prefix]) => path.startsWith(prefix))?.[1],
  } as Map<string, string>;
}

/** The prefix a file serves through a prefix rewrite (`/api/gateway/` for api/gateway.ts), if any. */
function rewritePrefixOf(file: string): string | undefined {
  const config = JSON.parse(readFileSync(join(root, "vercel.json"), "utf8")) as { rewrites?: { source: string; destination: string }[] };
  const rewrite = (config.rewrites ?? []).find((r) => r.source.endsWith("/:path*") && r.destination === vercelPath(file));
  return rewrite ? rewrite.source.slice(0, -"/:path*".length) + "/" : undefined;
}

type WebHandler = (request: Request) => Promise<Response>;

/** The methods an api/ file's app serves at `path`, from its preflight's Allow header (no database needed). */
async function allowedAt(module: Record<string, WebHandler>, path: string): Promise<string[] | undefined> {
  const response = await module.OPTIONS!(new Request(`http://localhost${path}`, { method: "OPTIONS" }));
  if (response.status === 404) return undefined;
  expect(response.status, `${path}: ${await response.clone().text()}`).toBe(204);
  return (response.headers.get("allow") ?? "")
    .split(", ")
    .filter((m) => m !== "OPTIONS")
    .sort();
}

describe("route list and api/ folder", () => {
  const files = filesUnder("api");
  const rewrites = vercelRewrites();

  it("every route is served by exactly one api/ file, at the path Vercel routes to that file", async () => {
    const paths = [...new Set(routes.map((r) => r.path))];
    for (const path of paths) {
      const expected = routes
        .filter((r) => r.path === path)
        .map((r) => r.method)
        .sort();
      const servedBy: string[] = [];
      for (const file of files) {
        const module = (await import(pathToFileURL(join(root, file)).href)) as Record<string, WebHandler>;
        // Vercel hands the function either the public path or (behind a rewrite) its own path;
        // behind a prefix rewrite, the public path (it is the only one that tells the routes apart).
        const vercelSees = rewrites.get(path) === vercelPath(file) && !rewritePrefixOf(file) ? vercelPath(file) : path;
        const allow = await allowedAt(module, vercelSees);
        if (allow === undefined) continue;
        expect(allow, `${file} at ${vercelSees}`).toEqual(expected);
        servedBy.push(file);
      }
      expect(servedBy, `${path} must be served by one api/ file`).toHaveLength(1);
      const file = servedBy[0]!;
      expect(
        [path, rewrites.get(path)],
        `${path} is served by ${file}: Vercel must route it there (file path or vercel.json rewrite)`,
      ).toContain(vercelPath(file));
    }
  });

  it("each api/ file is a one-liner over the app: it exports only Web handlers and serves only its own routes", async () => {
    for (const file of files) {
      const module = (await import(pathToFileURL(join(root, file)).href)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(module)) {
        expect(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], `${file} exports ${name}`).toContain(name);
        expect(typeof value, `${file}: ${name}`).toBe("function");
      }
      const source = readFileSync(join(root, file), "utf8");
      expect(source, file).toMatch(/vercelFunction\(/);
      expect(source.split("\n").filter((l) => l.trim() && !l.startsWith("import")).length, `${file} has more than its export line`).toBe(1);
      const served: string[] = [];
      for (const path of new Set(routes.map((r) => r.path))) {
        if ((await allowedAt(module as Record<string, WebHandler>, path)) !== undefined) served.push(path);
      }
      const prefix = rewritePrefixOf(file);
      if (prefix)
        for (const path of served) expect(path.startsWith(prefix), `${file} serves ${path}, outside its rewrite ${prefix}`).toBe(true);
      else expect(served.length, `${file} serves ${served.join(", ")}`).toBeLessThanOrEqual(1);
    }
  });

  it("operation ids are unique and every route has a summary, tags and at least one response", () => {
    expect(new Set(routes.map((r) => r.operationId)).size).toBe(routes.length);
    for (const route of routes) {
      expect(route.summary, route.operationId).toBeTruthy();
      expect(route.tags.length, route.operationId).toBeGreaterThan(0);
      expect(Object.keys(route.responses).length, route.operationId).toBeGreaterThan(0);
    }
  });
});

describe("layout", () => {
  const importsOf = (file: string) =>
    [...readFileSync(join(root, file), "utf8").matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!);

  it("nothing under lib/ or db/ imports api/ or tests/", () => {
    for (const file of [...filesUnder("lib"), ...filesUnder("db")]) {
      for (const spec of importsOf(file)) expect(spec, `${file} imports ${spec}`).not.toMatch(/(^|\/)(api|tests)\//);
    }
  });

  it("scripts/ and bench/ never import tests/", () => {
    for (const file of [...filesUnder("scripts"), ...filesUnder("bench")]) {
      for (const spec of importsOf(file)) expect(spec, `${file} imports ${spec}`).not.toMatch(/(^|\/)tests\//);
    }
  });
});

describe("the auth flag matches what the endpoints do", () => {
  let database: TestDatabase;
  let prod: TestRuntime;
  beforeAll(async () => {
    database = await backends[0]!.open();
    prod = makeRuntime({ database, mode: "production" });
  });
  afterAll(async () => {
    prod.cleanup();
    await database.destroy();
  });

  it("in production, every route with auth answers 401 without a token; public routes never do", async () => {
    for (const route of routes) {
      const hasBody = route.method === "POST" || route.method === "PUT";
      const response = await prod.fetch(
        new Request(`http://localhost${examplePath(route)}`, {
          method: route.method,
          ...(hasBody ? { headers: { "content-type": "application/json" }, body: "{}" } : {}),
        }),
      );
      const text = await response.text();
      // A development-only route does not exist in production: 404 before any auth.
      if (route.developmentOnly) expect(response.status, `${route.method} ${route.path}: ${text}`).toBe(404);
      else if (route.auth) expect(response.status, `${route.method} ${route.path}: ${text}`).toBe(401);
      else expect(response.status, `${route.method} ${route.path}: ${text}`).not.toBe(401);
    }
  });
});
