/**
 * GET /api/openapi.json: an OpenAPI 3.1 document generated from the route definitions
 * (lib/<feature>/routes/). Checks it against the app's route list in both directions, its
 * problem responses against the error-code map, its examples against the handlers' schemas
 * and the handlers themselves, and that the generator stays out of every other endpoint.
 */
import { openApiPath } from "../../lib/http/route.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { build } from "esbuild";
import { buildOpenApiDocument, openApiDocument, type OpenApiDocument } from "../../lib/openapi.js";
import { defineRoute, json, type AnyRoute } from "../../lib/http/route.js";
import { readdirSync } from "node:fs";
import { routes } from "../../lib/routes.js";
import { errorCodes, type ErrorCode } from "../../lib/http/errors.js";
import { PROBLEM_TYPE_BASE } from "../../lib/http/problem.js";
import { clerkWebhookEvent } from "../../lib/account/schemas.js";
import { budgetBody, generateBody, usageQuery } from "../../lib/generation/schemas.js";
import { problemSchema } from "../../lib/http/schemas.js";
import { deleteKeyQuery, oneKeyBody, saveKeysBody, saveKeysRequest } from "../../lib/keys/schemas.js";
import { sessionBody } from "../../lib/onboarding/schemas.js";
import * as generationSchemas from "../../lib/generation/schemas.js";
import * as keySchemas from "../../lib/keys/schemas.js";
import * as onboardingSchemas from "../../lib/onboarding/schemas.js";
import { VERSION } from "../../lib/platform/version.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, type TestRuntime } from "../helpers/runtime.js";

const HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"] as const;
type AnyObject = Record<string, any>;

let doc: OpenApiDocument;
let served: AnyObject;
let database: TestDatabase;
let prod: TestRuntime;

beforeAll(async () => {
  database = await backends[0]!.open();
  prod = makeRuntime({ database, mode: "production", env: { RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0", RATE_LIMIT_GENERATE_PER_MINUTE: "0" } });
  const response = await prod.fetch(request("GET", "/api/openapi.json"));
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  expect(response.headers.get("x-request-id")).toMatch(/^req_/);
  expect(response.headers.get("cache-control")).toMatch(/public/);
  served = await expectStatus(response, 200);
  doc = openApiDocument(routes);
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

/** The route definition of one documented operation. */
function routeOf(path: string, method: string): AnyRoute {
  const route = routes.find((r) => openApiPath(r.path) === path && r.method === method.toUpperCase());
  if (!route) throw new Error(`no route for ${method} ${path}`);
  return route;
}
const byId = (operationId: string) => routes.find((r) => r.operationId === operationId)!;
/** A zod object that refuses unknown keys (`z.strictObject`). */
const objectIsStrict = (schema: unknown) =>
  (schema as { _zod?: { def?: { catchall?: { _zod?: { def?: { type?: string } } } } } })._zod?.def?.catchall?._zod?.def?.type === "never";
/** A body's forms: a union's options (POST /api/onboarding/api-keys has two), or the one object. */
const formsOf = (schema: unknown): unknown[] =>
  (schema as { _zod?: { def?: { type?: string; options?: unknown[] } } })._zod?.def?.type === "union"
    ? (schema as { _zod: { def: { options: unknown[] } } })._zod.def.options
    : [schema];
const isStrict = (schema: unknown) => formsOf(schema).every(objectIsStrict);
// Bodies defined by someone else: Clerk's webhook events, and the providers' own requests the gateway passes on.
const foreignBodies = new Set([
  "receiveClerkWebhook",
  "gatewayGeminiModel",
  "gatewayExaSearch",
  "gatewayExaFindSimilar",
  "gatewayExaContents",
  "gatewayExaAnswer",
]);
const alwrityRootPaths = new Set(["/health", "/onboarding/business-info", "/gsc/status", "/gsc/clear-incomplete", "/wp/status"]);
const paths = [...new Set(routes.map((r) => openApiPath(r.path)))];

function operationsOf(path: string): [string, AnyObject][] {
  return Object.entries(((doc.paths as AnyObject)[path] ?? {}) as AnyObject).filter(([m]) =>
    HTTP_METHODS.includes(m.toUpperCase() as never),
  );
}

describe("the document", () => {
  it("is served as JSON, identical to the cached document, built once per instance", () => {
    expect(served).toEqual(JSON.parse(JSON.stringify(doc)));
    expect(openApiDocument(routes)).toBe(doc);
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
      // ALwrity's frontend calls a few paths without the prefix (lib/compat/alwrity; vercel.json rewrites them).
      expect(path.startsWith("/api/") || alwrityRootPaths.has(path), path).toBe(true);
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
          expect(response.headers?.["x-request-id"], `${method} ${path} ${status} documents x-request-id`).toEqual({
            $ref: "#/components/headers/RequestId",
          });
          if (status === "204") expect(response.content).toBeUndefined();
          else if (method !== "options") expect(Object.keys(response.content ?? {}).length).toBeGreaterThan(0);
        }
        for (const parameter of op.parameters ?? []) {
          expect(["query", "path"]).toContain(parameter.in);
          // A path parameter is always required, and named in the path.
          if (parameter.in === "path")
            expect(parameter.required && path.includes(`{${parameter.name}}`), `${method} ${path} ${parameter.name}`).toBe(true);
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

describe("the document agrees with the app's route list", () => {
  it("documents exactly the paths of the route list", () => {
    expect(Object.keys(doc.paths as AnyObject).sort()).toEqual([...paths].sort());
  });

  it("every route is documented under its method, plus the preflight, and nothing else", () => {
    for (const path of paths) {
      const served = routes.filter((r) => openApiPath(r.path) === path).map((r) => r.method);
      const documented = operationsOf(path).map(([m]) => m.toUpperCase());
      expect(documented.sort(), path).toEqual([...served, "OPTIONS"].sort());
      for (const [method, op] of operationsOf(path))
        if (method !== "options") expect(op.operationId).toBe(routeOf(path, method).operationId);
    }
  });

  it("protected routes require the Clerk bearer token or the __session cookie (the gateway's also a service credential with x-byok-user); public ones require nothing", () => {
    const components = doc.components as AnyObject;
    expect(components.securitySchemes.clerkBearer).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(components.securitySchemes.clerkSessionCookie).toMatchObject({ type: "apiKey", in: "cookie", name: "__session" });
    expect(components.securitySchemes.gatewayServiceCredential).toMatchObject({ type: "http", scheme: "bearer" });
    expect(components.securitySchemes.gatewayActsFor).toMatchObject({ type: "apiKey", in: "header", name: "x-byok-user" });
    const gateway = routes.filter((route) => route.path.startsWith("/api/gateway/"));
    expect(gateway.length).toBeGreaterThan(0);
    for (const route of routes) {
      const op = (doc.paths as AnyObject)[openApiPath(route.path)][route.method.toLowerCase()];
      const clerk = [{ clerkBearer: [] }, { clerkSessionCookie: [] }];
      // Exactly the routes that take a service credential (lib/gateway/caller.ts) say so.
      const expected = !route.auth
        ? []
        : gateway.includes(route)
          ? [...clerk, { gatewayServiceCredential: [], gatewayActsFor: [] }]
          : clerk;
      expect(op.security, `${route.method} ${route.path}`).toEqual(expected);
      if (route.auth) expect(Object.keys(op.responses), `${route.method} ${route.path}`).toContain("401");
      expect((doc.paths as AnyObject)[openApiPath(route.path)].options.security).toEqual([]);
    }
  });

  it("every problem response is problem+json with one valid example per code, at the code's status", () => {
    let problems = 0;
    for (const route of routes.filter((r, i) => routes.findIndex((o) => o.path === r.path) === i)) {
      for (const [method, op] of operationsOf(openApiPath(route.path))) {
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
    for (const path of paths) {
      for (const [method, op] of operationsOf(path)) {
        if (!op.requestBody) continue;
        for (const status of ["400", "413", "415"]) expect(Object.keys(op.responses), `${method} ${path}`).toContain(status);
      }
    }
  });
});

describe("the document uses the handlers' own schemas", () => {
  it("routes validate with the contract's schema instances", () => {
    for (const route of routes)
      if (route.body && !foreignBodies.has(route.operationId)) expect(isStrict(route.body.schema), route.operationId).toBe(true);
    expect(byId("saveApiKeys").body?.schema).toBe(saveKeysRequest);
    expect(formsOf(saveKeysRequest)).toEqual([saveKeysBody, oneKeyBody]);
    expect(byId("deleteApiKey").query?.schema).toBe(deleteKeyQuery);
    expect(byId("updateOnboardingSession").body?.schema).toBe(sessionBody);
    expect(byId("generateBlogPost").body?.schema).toBe(generateBody);
    expect(byId("getUsage").query?.schema).toBe(usageQuery);
    expect(byId("setBudget").body?.schema).toBe(budgetBody);
    expect(byId("receiveClerkWebhook").body?.schema).toBe(clerkWebhookEvent);
  });

  it("each request body component lists exactly the fields its zod schema has, strict where the schema is", () => {
    for (const path of paths) {
      for (const [method, op] of operationsOf(path)) {
        if (!op.requestBody) continue;
        const route = routeOf(path, method);
        const spec = route;
        const documented = op.requestBody.content["application/json"].schema as AnyObject;
        const union = documented.$ref ? (resolve(doc, documented.$ref) as AnyObject) : documented;
        // Several forms are documented as anyOf/oneOf, one component (or inline object) per form.
        const components = ((union.anyOf ?? union.oneOf) as AnyObject[] | undefined)?.map((c) =>
          c.$ref ? (resolve(doc, c.$ref) as AnyObject) : c,
        ) ?? [union];
        const forms = formsOf(spec.body!.schema);
        expect(components.length, `${method} ${path}: one documented schema per form`).toBe(forms.length);
        forms.forEach((form, i) => {
          const component = components[i]!;
          const shape = (form as { shape: Record<string, unknown> }).shape;
          expect(Object.keys(component.properties).sort(), `${method} ${path}`).toEqual(Object.keys(shape).sort());
          // Our own bodies refuse unknown fields. A body someone else defines (Clerk's webhook
          // events) must not: a field Clerk adds would make signed deliveries fail.
          if (objectIsStrict(form)) expect(component.additionalProperties, `${method} ${path} refuses unknown fields`).toBe(false);
          else expect(component.additionalProperties, `${method} ${path} accepts unknown fields`).not.toBe(false);
        });
      }
    }
  });

  it("every example body and query parses with the handler's schema; a broken one does not", () => {
    let checked = 0;
    for (const route of routes) {
      const method = route.method.toLowerCase();
      const op = (doc.paths as AnyObject)[openApiPath(route.path)][method];
      {
        const spec = route;
        if (op.requestBody) {
          const example = op.requestBody.content["application/json"].example;
          expect(example, `${method} ${route.path} has an example body`).toBeDefined();
          const parsed = spec!.body!.schema.safeParse(example);
          expect(parsed.success, `${method} ${route.path}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
          expect(spec!.body!.schema.safeParse({ ...example, unexpected: true }).success).toBe(!isStrict(spec!.body!.schema));
          checked++;
        }
        const queryParameters = (op.parameters ?? []).filter((p: AnyObject) => p.in === "query");
        if (queryParameters.length) {
          const queryExample = spec.query!.example;
          expect(queryExample, `${method} ${route.path} has an example query`).toBeDefined();
          expect(spec.query!.schema.safeParse(queryExample).success).toBe(true);
          expect(Object.keys(queryExample).every((k) => queryParameters.some((p: AnyObject) => p.name === k))).toBe(true);
          for (const parameter of queryParameters) if (parameter.required) expect(queryExample).toHaveProperty(parameter.name);
          checked++;
        }
        const pathParameters = (op.parameters ?? []).filter((p: AnyObject) => p.in === "path");
        if (pathParameters.length) {
          const example = spec.params!.example;
          expect(spec.params!.schema.safeParse(example).success, `${method} ${route.path} params example`).toBe(true);
          expect(pathParameters.map((p: AnyObject) => p.name).sort()).toEqual(Object.keys(example).sort());
          expect(spec.params!.schema.safeParse(Object.fromEntries(Object.keys(example).map((k) => [k, "0"]))).success).toBe(false);
          checked++;
        }
      }
    }
    expect(checked).toBe(
      routes.filter((r) => r.body).length + routes.filter((r) => r.query).length + routes.filter((r) => r.params).length,
    );
  });

  it("the handlers accept the examples and answer what the document says", async () => {
    const call = async (method: string, path: string, body?: unknown, token = prod.token("user_openapi_examples")) =>
      prod.fetch(request(method, path, { token, ...(body === undefined ? {} : { body }) }));
    const example = (path: string, method: "POST" | "PUT") => routeOf(path, method).body!.example;

    const saved = await expectStatus(await call("POST", "/api/onboarding/api-keys", example("/api/onboarding/api-keys", "POST")), 200);
    expect(keySchemas.saveKeysResponse.parse(saved).saved).toEqual(["gemini", "exa"]);
    expect(
      onboardingSchemas.sessionResponse.parse(
        await expectStatus(await call("PUT", "/api/onboarding/session", example("/api/onboarding/session", "PUT")), 200),
      ),
    ).toMatchObject({
      currentStep: 3,
    });
    const deleteQuery = new URLSearchParams(byId("deleteApiKey").query!.example).toString();
    expect((await call("DELETE", `/api/onboarding/api-keys?${deleteQuery}`)).status).toBe(204);
    const usageQueryString = new URLSearchParams(byId("getUsage").query!.example).toString();
    generationSchemas.usageResponse.parse(await expectStatus(await call("GET", `/api/usage?${usageQueryString}`), 200));
    expect(
      generationSchemas.budgetResponse.parse(
        await expectStatus(await call("PUT", "/api/usage/budget", example("/api/usage/budget", "PUT")), 200),
      ),
    ).toMatchObject({
      monthlyUsd: 5,
    });
    // A user without keys: the body passes validation and the answer is about the missing key
    // (409 comes after validation), without calling any upstream.
    const generated = await call("POST", "/api/blog/generate", example("/api/blog/generate", "POST"), prod.token("user_openapi_no_keys"));
    expect(await expectStatus(generated, 409)).toMatchObject({ code: "missing-provider-key" });
  });
});

describe("the generator stays out of every other endpoint", () => {
  const apiFiles = (dir = "api"): string[] =>
    readdirSync(join(process.cwd(), dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? apiFiles(`${dir}/${e.name}`) : e.name.endsWith(".ts") ? [`${dir}/${e.name}`] : [],
    );

  it("bundling each api/ file on its own (as Vercel does) pulls zod-to-openapi into api/openapi.ts only", {
    timeout: 180_000,
  }, async () => {
    const files = apiFiles();
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) {
      const result = await build({
        entryPoints: [join(process.cwd(), file)],
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
      expect(hasGenerator, file).toBe(file === "api/openapi.ts");
    }
  });

  it("a new route definition is documented with no other edit", () => {
    const extra = defineRoute({
      method: "GET",
      path: "/api/undocumented",
      operationId: "getUndocumented",
      summary: "A route added in a test",
      tags: ["service"],
      auth: true,
      rateLimit: "generate",
      responses: { 200: { description: "Fine.", headers: ["Cache-Control"] } },
      problems: [],
      handler: async () => json({}),
    });
    const built = buildOpenApiDocument([...routes, extra]) as AnyObject;
    const op = built.paths["/api/undocumented"].get;
    expect(op.operationId).toBe("getUndocumented");
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["200", "401", "429", "500"]));
    expect(Object.keys(op.responses["200"].headers).sort()).toEqual(["cache-control", "ratelimit", "ratelimit-policy", "x-request-id"]);
    expect(built.paths["/api/undocumented"].options).toBeDefined();
  });
});
