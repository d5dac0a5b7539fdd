/**
 * GET /api/openapi.json: an OpenAPI 3.1 document generated from the handlers' own zod
 * schemas. Checks it against the route table and the api/ files in both directions, its
 * problem responses against the error-code map, its examples against the handlers' schemas
 * and the handlers themselves, and that the generator stays out of every other endpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { build } from "esbuild";
import * as openapiEndpoint from "../api/openapi.js";
import { buildOpenApiDocument, openApiDocument, operations, type OpenApiDocument } from "../lib/openapi.js";
import { routes } from "../lib/server/routes.js";
import { errorCodes, type ErrorCode } from "../lib/http/errors.js";
import { PROBLEM_TYPE_BASE } from "../lib/http/problem.js";
import { deleteKeyQuery, generateBody, problemSchema, saveKeysBody, sessionBody, usageQuery } from "../lib/schemas.js";
import * as schemas from "../lib/schemas.js";
import { VERSION } from "../lib/version.js";
import { backends, type TestDatabase } from "./helpers/db.js";
import { expectStatus, makeRuntime, request, type TestRuntime } from "./helpers/runtime.js";

const HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"] as const;
type AnyObject = Record<string, any>;

let doc: OpenApiDocument;
let served: AnyObject;
let database: TestDatabase;
let prod: TestRuntime;

beforeAll(async () => {
  database = await backends[0]!.open();
  prod = makeRuntime({ database, mode: "production", env: { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0", RATE_LIMIT_GENERATE_PER_MINUTE: "0" } });
  const response = await prod.call(openapiEndpoint.GET, request("GET", "/api/openapi.json"));
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  expect(response.headers.get("x-request-id")).toMatch(/^req_/);
  expect(response.headers.get("cache-control")).toMatch(/public/);
  served = await expectStatus(response, 200);
  doc = openApiDocument();
});
afterAll(async () => {
  prod.cleanup();
  await database.destroy();
});

/** Every `{$ref}` in the document, with where it was found. */
function refs(node: unknown, at = "#"): { ref: string; at: string }[] {
  if (Array.isArray(node)) return node.flatMap((n, i) => refs(n, `${at}/${i}`));
  if (node && typeof node === "object") {
    const found: { ref: string; at: string }[] = [];
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") found.push({ ref: value, at });
      else found.push(...refs(value, `${at}/${key}`));
    }
    return found;
  }
  return [];
}

function resolve(document: AnyObject, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  let node: any = document;
  for (const part of ref.slice(2).split("/")) node = node?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  return node;
}

function operationsOf(path: string): [string, AnyObject][] {
  return Object.entries(((doc.paths as AnyObject)[path] ?? {}) as AnyObject).filter(([m]) => HTTP_METHODS.includes(m.toUpperCase() as never));
}

describe("the document", () => {
  it("is served as JSON, identical to the cached document, built once per instance", () => {
    expect(served).toEqual(JSON.parse(JSON.stringify(doc)));
    expect(openApiDocument()).toBe(doc);
  });

  it("declares OpenAPI 3.1 with this service's title and version", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info).toMatchObject({ title: "byok-functions", version: VERSION });
  });

  it("validates against the OpenAPI 3.1 schema", async (ctx) => {
    // @seriousme/openapi-schema-validator is not a dependency yet; the structural checks below run regardless.
    const name = "@seriousme/openapi-schema-validator";
    let Validator: (new () => { validate(spec: unknown): Promise<{ valid: boolean; errors?: unknown }>; version: string }) | undefined;
    try {
      ({ Validator } = await import(/* @vite-ignore */ name));
    } catch {
      ctx.skip(`${name} is not installed`);
    }
    const validator = new Validator!();
    const result = await validator.validate(JSON.parse(JSON.stringify(doc)));
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("every $ref points at something in the document", () => {
    const all = refs(doc);
    expect(all.length).toBeGreaterThan(20);
    for (const { ref, at } of all) expect(resolve(doc, ref), `${ref} at ${at}`).toBeTruthy();
  });

  it("is well-formed where the schema validator cannot tell: operations, responses, parameters, components", () => {
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as AnyObject)) {
      expect(path.startsWith("/api/")).toBe(true);
      for (const [method, op] of Object.entries(item as AnyObject)) {
        expect(HTTP_METHODS.map((m) => m.toLowerCase())).toContain(method);
        expect(op.operationId, `${method} ${path}`).toMatch(/^[a-zA-Z][a-zA-Z0-9]*$/);
        expect(ids.has(op.operationId), `duplicate operationId ${op.operationId}`).toBe(false);
        ids.add(op.operationId);
        expect(op.summary).toBeTruthy();
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(op.responses as AnyObject)) {
          expect(status).toMatch(/^[1-5]\d\d$/);
          expect(response.description, `${method} ${path} ${status}`).toBeTruthy();
          expect(response.headers?.["x-request-id"], `${method} ${path} ${status} documents x-request-id`).toEqual({ $ref: "#/components/headers/RequestId" });
          if (status === "204") expect(response.content).toBeUndefined();
          else if (method !== "options") expect(Object.keys(response.content ?? {}).length).toBeGreaterThan(0);
        }
        for (const parameter of op.parameters ?? []) {
          expect(parameter.in).toBe("query");
          expect(parameter.schema).toBeTruthy();
        }
        if (op.requestBody) {
          expect(["post", "put"]).toContain(method);
          expect(Object.keys(op.requestBody.content)).toEqual(["application/json"]);
        }
      }
    }
    const components = doc.components as AnyObject;
    for (const [name, schema] of Object.entries(components.schemas as AnyObject)) {
      expect(name).toMatch(/^[A-Za-z0-9_]+$/);
      expect(schema.type ?? schema.oneOf ?? schema.anyOf ?? schema.enum ?? schema.$ref, name).toBeTruthy();
      // zod-to-openapi's 3.0-isms must not leak into a 3.1 document.
      expect(JSON.stringify(schema)).not.toMatch(/"nullable"|"exclusiveMinimum":true|"exclusiveMaximum":true/);
    }
  });
});

describe("the document agrees with the route table and the api/ files", () => {
  it("documents exactly the paths of the route table", () => {
    expect(Object.keys(doc.paths as AnyObject).sort()).toEqual(routes.map((r) => r.path).sort());
    expect(Object.keys(operations).sort()).toEqual(routes.map((r) => r.path).sort());
  });

  it("every method an endpoint file exports is documented, and nothing else", async () => {
    for (const route of routes) {
      const module = (await route.load()) as AnyObject;
      const exported = HTTP_METHODS.filter((m) => typeof module[m] === "function");
      const documented = operationsOf(route.path).map(([m]) => m.toUpperCase());
      expect(documented.sort(), route.file).toEqual([...exported].sort());
    }
  });

  it("protected routes require the Clerk bearer token or the __session cookie; public ones require nothing", () => {
    const components = doc.components as AnyObject;
    expect(components.securitySchemes.clerkBearer).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(components.securitySchemes.clerkSessionCookie).toMatchObject({ type: "apiKey", in: "cookie", name: "__session" });
    for (const route of routes) {
      for (const [method, op] of operationsOf(route.path)) {
        const expected = route.protected && method !== "options" ? [{ clerkBearer: [] }, { clerkSessionCookie: [] }] : [];
        expect(op.security, `${method} ${route.path}`).toEqual(expected);
        if (route.protected && method !== "options") expect(Object.keys(op.responses), `${method} ${route.path}`).toContain("401");
      }
    }
  });

  it("every problem response is problem+json with one valid example per code, at the code's status", () => {
    let problems = 0;
    for (const route of routes) {
      for (const [method, op] of operationsOf(route.path)) {
        if (method !== "options") expect(Object.keys(op.responses), `${method} ${route.path} documents 500`).toContain("500");
        for (const [status, response] of Object.entries(op.responses as AnyObject)) {
          const media = response.content?.["application/problem+json"];
          if (!media) {
            // Only successes are answered without a problem (and the health check's own 503 body).
            const documentedNonProblem = Number(status) < 300 || (route.path === "/api/health" && status === "503");
            expect(documentedNonProblem, `${method} ${route.path} ${status} is an error without a problem`).toBe(true);
            continue;
          }
          expect(media.schema).toEqual({ $ref: "#/components/schemas/Problem" });
          const examples = Object.entries(media.examples as AnyObject);
          expect(examples.length).toBeGreaterThan(0);
          for (const [code, example] of examples) {
            problems++;
            expect(code in errorCodes, `${code} is an error code`).toBe(true);
            expect(errorCodes[code as ErrorCode], `${code} under ${status}`).toBe(Number(status));
            expect(response.description).toContain(`\`${code}\``);
            const value = problemSchema.parse(example.value);
            expect(value).toMatchObject({ code, status: Number(status), type: PROBLEM_TYPE_BASE + code });
          }
        }
      }
    }
    expect(problems).toBeGreaterThan(30);
  });

  it("body errors are documented wherever a body is read, with the 413 and 415 the reader answers", () => {
    for (const route of routes) {
      for (const [method, op] of operationsOf(route.path)) {
        if (!op.requestBody) continue;
        for (const status of ["400", "413", "415"]) expect(Object.keys(op.responses), `${method} ${route.path}`).toContain(status);
      }
    }
  });
});

describe("the document uses the handlers' own schemas", () => {
  it("operations reference the very schema instances the endpoints validate with", () => {
    expect(operations["/api/onboarding/api-keys"]?.POST?.body?.schema).toBe(saveKeysBody);
    expect(operations["/api/onboarding/api-keys"]?.DELETE?.query).toBe(deleteKeyQuery);
    expect(operations["/api/onboarding/session"]?.PUT?.body?.schema).toBe(sessionBody);
    expect(operations["/api/blog/generate"]?.POST?.body?.schema).toBe(generateBody);
    expect(operations["/api/usage"]?.GET?.query).toBe(usageQuery);
  });

  it("each request body component lists exactly the fields its zod schema has, strict where the schema is", () => {
    for (const route of routes) {
      for (const [method, op] of operationsOf(route.path)) {
        if (!op.requestBody) continue;
        const spec = operations[route.path]![method.toUpperCase() as "POST"]!;
        const component = resolve(doc, op.requestBody.content["application/json"].schema.$ref) as AnyObject;
        const shape = (spec.body!.schema as unknown as { shape: Record<string, unknown> }).shape;
        expect(Object.keys(component.properties).sort(), `${method} ${route.path}`).toEqual(Object.keys(shape).sort());
        expect(component.additionalProperties, `${method} ${route.path} refuses unknown fields`).toBe(false);
      }
    }
  });

  it("every example body and query parses with the handler's schema; a broken one does not", () => {
    let checked = 0;
    for (const route of routes) {
      for (const [method, op] of operationsOf(route.path)) {
        const spec = operations[route.path]![method.toUpperCase() as "GET"];
        if (op.requestBody) {
          const example = op.requestBody.content["application/json"].example;
          expect(example, `${method} ${route.path} has an example body`).toBeDefined();
          const parsed = spec!.body!.schema.safeParse(example);
          expect(parsed.success, `${method} ${route.path}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
          expect(spec!.body!.schema.safeParse({ ...example, unexpected: true }).success).toBe(false);
          checked++;
        }
        if (op.parameters?.length) {
          expect(spec!.queryExample, `${method} ${route.path} has an example query`).toBeDefined();
          expect(spec!.query!.safeParse(spec!.queryExample).success).toBe(true);
          expect(Object.keys(spec!.queryExample!).every((k) => op.parameters.some((p: AnyObject) => p.name === k))).toBe(true);
          for (const parameter of op.parameters) if (parameter.required) expect(spec!.queryExample).toHaveProperty(parameter.name);
          checked++;
        }
      }
    }
    expect(checked).toBe(5);
  });

  it("the handlers accept the examples and answer what the document says", async () => {
    const call = async (method: string, path: string, body?: unknown, token = prod.token("user_openapi_examples")) => {
      const route = routes.find((r) => r.path === path.split("?")[0])!;
      const module = (await route.load()) as AnyObject;
      return prod.call(module[method], request(method, path, { token, ...(body === undefined ? {} : { body }) }));
    };
    const example = (path: string, method: "POST" | "PUT") => operations[path]![method]!.body!.example;

    const saved = await expectStatus(await call("POST", "/api/onboarding/api-keys", example("/api/onboarding/api-keys", "POST")), 200);
    expect(schemas.saveKeysResponse.parse(saved).saved).toEqual(["gemini", "exa"]);
    expect(schemas.sessionResponse.parse(await expectStatus(await call("PUT", "/api/onboarding/session", example("/api/onboarding/session", "PUT")), 200))).toMatchObject({
      currentStep: 3,
    });
    const deleteQuery = new URLSearchParams(operations["/api/onboarding/api-keys"]!.DELETE!.queryExample).toString();
    expect((await call("DELETE", `/api/onboarding/api-keys?${deleteQuery}`)).status).toBe(204);
    const usageQueryString = new URLSearchParams(operations["/api/usage"]!.GET!.queryExample).toString();
    schemas.usageResponse.parse(await expectStatus(await call("GET", `/api/usage?${usageQueryString}`), 200));
    // A user without keys: the body passes validation and the answer is about the missing key
    // (409 comes after validation), without calling any upstream.
    const generated = await call("POST", "/api/blog/generate", example("/api/blog/generate", "POST"), prod.token("user_openapi_no_keys"));
    expect(await expectStatus(generated, 409)).toMatchObject({ code: "missing-provider-key" });
  });
});

describe("the generator stays out of every other endpoint", () => {
  it("bundling each api/ file on its own (as Vercel does) pulls zod-to-openapi into api/openapi.ts only", async () => {
    for (const route of routes) {
      const result = await build({
        entryPoints: [join(process.cwd(), route.file)],
        bundle: true,
        write: false,
        metafile: true,
        platform: "node",
        format: "esm",
        target: "node20",
        external: ["pg-native"],
        logLevel: "silent",
      });
      const inputs = Object.keys(result.metafile.inputs);
      const hasGenerator = inputs.some((f) => f.includes("node_modules/@asteasolutions/zod-to-openapi/"));
      expect(hasGenerator, route.file).toBe(route.file === "api/openapi.ts");
    }
  });

  it("a route missing from lib/openapi.ts fails the build of the document, loudly", () => {
    expect(() => buildOpenApiDocument([...routes, { path: "/api/undocumented", file: "api/undocumented.ts", protected: true, load: async () => ({}) as never }])).toThrow(
      /\/api\/undocumented/,
    );
  });
});
