/**
 * The layout's rules (docs/architecture.md "Layers"), checked on the real import graph of lib/,
 * db/, api/ and scripts/: every relative import, static or dynamic, type-only ones included.
 *
 * - base (lib/platform, lib/providers, lib/http, db/) imports only base;
 * - a feature (lib/keys, lib/generation, lib/account, lib/onboarding, lib/system) imports base
 *   and the features it is allowed to build on (`featureEdges`), never a `routes/` folder;
 * - compat (lib/compat/alwrity) is an adapter: base and features, never their routes;
 * - only the composition (lib/app.ts, lib/routes.ts, lib/openapi.ts, lib/server/, api/,
 *   scripts/) imports a `routes/` folder; nothing in lib/ imports api/ or scripts/;
 * - no file imports itself back through a circle.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");

const features = ["keys", "generation", "account", "onboarding", "system", "gateway"] as const;
type Layer = "base" | (typeof features)[number] | "compat" | "composition";

/** Which features a feature may import: the key vault under everything, the account over all. */
const featureEdges: Readonly<Record<(typeof features)[number], readonly string[]>> = {
  keys: [],
  // The session's "keys complete" is a count the key store writes (lib/keys/store.ts keyCountSql).
  onboarding: ["keys"],
  system: ["generation"], // /api/config hands the web app the generation limits
  generation: ["keys"],
  account: ["keys", "generation", "onboarding"],
  // The gateway injects the stored keys and meters with generation's budget and usage.
  gateway: ["keys", "generation"],
};

function layerOf(file: string): Layer | undefined {
  if (/^(lib\/(platform|providers|http)\/|db\/)/.test(file)) return "base";
  for (const feature of features) if (file.startsWith(`lib/${feature}/`)) return feature;
  if (file.startsWith("lib/compat/")) return "compat";
  if (/^(lib\/(app|routes|openapi)\.ts$|lib\/server\/|api\/|scripts\/)/.test(file)) return "composition";
  return undefined;
}

const isRoutes = (file: string) => /^lib\/.*\/routes\//.test(file);

/** Every relative import of `file` (static, dynamic, re-exports, `import type`), as repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const specs: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      specs.push(node.moduleSpecifier.text);
    }
    if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      specs.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specs
    .filter((s) => s.startsWith("."))
    .map((s) =>
      normalize(join(dirname(file), s))
        .split("\\")
        .join("/")
        .replace(/\.js$/, ".ts"),
    )
    .filter((target) => target.endsWith(".ts"));
}

function sourceFiles(): string[] {
  return ["lib", "db", "api", "scripts"].flatMap((dir) =>
    (readdirSync(join(root, dir), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts"))
      .map((f) =>
        relative(root, join(root, dir, f))
          .split("\\")
          .join("/"),
      ),
  );
}

/** The edges the rules forbid, as "from -> to (why)". */
function forbiddenEdges(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const a = layerOf(from);
    for (const to of targets) {
      const b = layerOf(to);
      const why = (reason: string) => found.push(`${from} -> ${to} (${reason})`);
      if (from.startsWith("lib/") && (to.startsWith("api/") || to.startsWith("scripts/"))) why("lib/ never imports an entry point");
      else if (isRoutes(to) && a !== "composition" && !(to.startsWith(dirname(from) + "/") && isRoutes(from)))
        why("only the composition imports routes");
      else if (a === "base" && b !== "base") why("base imports base only");
      else if (a !== undefined && a !== "base" && a !== "compat" && a !== "composition") {
        if (b === "compat" || b === "composition") why(`a feature imports base and features only`);
        else if (b !== "base" && b !== a && !featureEdges[a].includes(b!)) why(`${a} may not build on ${b}`);
      } else if (a === "compat" && b === "composition") why("compat imports base and features only");
      if (a === undefined) why("file outside every layer: give it a place in docs/architecture.md");
    }
  }
  return found;
}

/** Every circle of the graph, each as the files it passes through (Tarjan's strongly connected components). */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const on = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const out: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  return out;
}

describe("the import graph", () => {
  const graph = new Map(sourceFiles().map((file) => [file, importsOf(file)]));

  it("sees the whole code base (a parser that found nothing would pass everything)", () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get("lib/app.ts")!.length).toBeGreaterThan(5);
    expect(graph.get("lib/generation/generate.ts")).toContain("lib/keys/health.ts");
  });

  it("has no edge the layer rules forbid", () => {
    expect(forbiddenEdges(graph)).toEqual([]);
  });

  it("has no circle", () => {
    expect(circles(graph)).toEqual([]);
  });

  it("the checks catch what they are for: a feature importing compat, base importing a feature, a route imported by a feature, a circle", () => {
    const bad = new Map<string, string[]>([
      ["lib/keys/service.ts", ["lib/compat/alwrity/onboarding.ts", "lib/generation/usage.ts", "lib/account/routes/me.ts"]],
      ["lib/platform/env.ts", ["lib/keys/store.ts"]],
      ["lib/http/route.ts", ["api/health.ts"]],
      ["lib/a/x.ts", []],
      ["lib/platform/a.ts", ["lib/platform/b.ts"]],
      ["lib/platform/b.ts", ["lib/platform/a.ts"]],
    ]);
    const forbidden = forbiddenEdges(bad).join("\n");
    expect(forbidden).toContain("lib/keys/service.ts -> lib/compat/alwrity/onboarding.ts");
    expect(forbidden).toContain("keys may not build on generation");
    expect(forbidden).toContain("lib/keys/service.ts -> lib/account/routes/me.ts (only the composition imports routes)");
    expect(forbidden).toContain("lib/platform/env.ts -> lib/keys/store.ts (base imports base only)");
    expect(forbidden).toContain("lib/http/route.ts -> api/health.ts (lib/ never imports an entry point)");
    expect(circles(bad)).toEqual([["lib/platform/a.ts", "lib/platform/b.ts"]]);
  });
});
