/**
 * The route table (lib/server/routes.ts) and the api/ folder agree: Vercel serves the files,
 * the local server and the Lambda adapter serve the table, so a file missing from the table
 * (or a table entry pointing at the wrong file) is an endpoint that exists on one platform only.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { routes } from "../lib/server/routes.js";
import { createApp } from "../lib/server/app.js";
import { backends, type TestDatabase } from "./helpers/db.js";
import { makeRuntime, type TestRuntime } from "./helpers/runtime.js";

const root = join(import.meta.dirname, "..");
const HANDLER_NAMES = ["GET", "POST", "PUT", "DELETE", "OPTIONS"];

function apiFiles(dir = join(root, "api")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) return apiFiles(full);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [relative(root, full).split("\\").join("/")] : [];
  });
}

/** Vercel's file-system route for api/x/y.ts, and the rewrites vercel.json adds in front of it. */
function vercelPath(file: string): string {
  return "/" + file.replace(/\.ts$/, "");
}
function vercelRewrites(): Map<string, string> {
  const config = JSON.parse(readFileSync(join(root, "vercel.json"), "utf8")) as { rewrites?: { source: string; destination: string }[] };
  return new Map((config.rewrites ?? []).map((r) => [r.source, r.destination]));
}

describe("route table and api/ folder", () => {
  it("every api/**/*.ts file is in the table, and every table entry names an existing file", () => {
    const files = apiFiles().sort();
    expect(files.length).toBeGreaterThan(0);
    expect(routes.map((r) => r.file).sort()).toEqual(files);
    for (const route of routes) expect(existsSync(join(root, route.file)), route.file).toBe(true);
  });

  it("paths and files are unique", () => {
    expect(new Set(routes.map((r) => r.path)).size).toBe(routes.length);
    expect(new Set(routes.map((r) => r.file)).size).toBe(routes.length);
  });

  it("each path is where Vercel serves the file (directly or through a vercel.json rewrite)", () => {
    const rewrites = vercelRewrites();
    for (const route of routes) {
      const served = vercelPath(route.file);
      if (route.path === served) continue;
      expect(rewrites.get(route.path), `${route.path} needs a rewrite to ${served} in vercel.json`).toBe(served);
    }
  });

  it("each entry's loader imports its own file", async () => {
    for (const route of routes) {
      const viaTable = await route.load();
      const direct = await import(pathToFileURL(join(root, route.file)).href);
      expect(viaTable, `${route.path}: load() does not import ${route.file}`).toBe(direct);
    }
  });

  it("each module exports only handlers, each a function, always with OPTIONS and at least one method", async () => {
    for (const route of routes) {
      const module = (await route.load()) as Record<string, unknown>;
      const names = Object.keys(module);
      for (const name of names) {
        expect(HANDLER_NAMES, `${route.file} exports ${name}, which is not a handler`).toContain(name);
        expect(typeof module[name], `${route.file}: ${name}`).toBe("function");
      }
      expect(names, route.file).toContain("OPTIONS");
      expect(names.filter((n) => n !== "OPTIONS").length, route.file).toBeGreaterThan(0);
    }
  });

  it("streaming routes are the ones that answer text/event-stream", async () => {
    for (const route of routes) {
      const source = readFileSync(join(root, route.file), "utf8");
      expect(Boolean(route.streaming), route.file).toBe(/sseResponse|text\/event-stream/.test(source));
    }
  });
});

describe("the table's protected flag matches what the endpoints do", () => {
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

  it("in production, every method of a protected route answers 401 without a token; public routes never do", async () => {
    const app = createApp(prod.runtime);
    for (const route of routes) {
      const module = (await route.load()) as Record<string, unknown>;
      for (const method of HANDLER_NAMES.filter((m) => m !== "OPTIONS" && typeof module[m] === "function")) {
        const hasBody = method === "POST" || method === "PUT";
        const response = await app.fetch(
          new Request(`http://localhost${route.path}`, {
            method,
            ...(hasBody ? { headers: { "content-type": "application/json" }, body: "{}" } : {}),
          }),
        );
        const text = await response.text();
        if (route.protected) expect(response.status, `${method} ${route.path}: ${text}`).toBe(401);
        else expect(response.status, `${method} ${route.path}: ${text}`).not.toBe(401);
      }
    }
  });
});
