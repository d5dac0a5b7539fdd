/**
 * Bad-input battery (property-based, fast-check): for every endpoint of the route table that
 * takes a body (specs in tests/helpers/battery.ts, schemas from lib/<feature>/schemas.ts) and for
 * every endpoint's query string, in development and production mode, through createApp and
 * the api/ exports:
 * - every answer is 2xx or a 4xx RFC 9457 problem, never a 5xx (streams end in `done` or a
 *   4xx `error` event);
 * - every rejected request leaves the database (row counts and a checksum of the state
 *   tables) and the `.env` files byte for byte as they were.
 * The fake upstreams run, so a valid generation body may succeed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { routes } from "../../lib/routes.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, testSigner, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { testSeed } from "../helpers/seed.js";
import {
  takesBody,
  bodySpecs,
  databaseFingerprint,
  describeExchange,
  endpointRequest,
  endpoints,
  fileFingerprint,
  parseSse,
  problemViolation,
  querySpecs,
  readResponse,
  send,
  transports,
  type Endpoint,
  type Exchange,
  type Transport,
} from "../helpers/battery.js";

const allEndpoints = await endpoints();
const bodyEndpoints = allEndpoints.filter(takesBody);
const modes = ["development", "production"] as const;
type Mode = (typeof modes)[number];

/**
 * One seed for every property of this file, logged, so a failure is reproduced with
 * `FC_SEED=<seed> npx vitest run tests/batteries/input.error.test.ts` (fast-check also prints it
 * with the counterexample).
 */
const SEED = testSeed("input battery");

/**
 * Most characters of JSON a generated body may reach: four times the body limit, so "too large"
 * stays covered, while edits that copy a value into an array or repeat a string can no longer
 * compound into hundreds of megabytes (RangeError: Invalid string length, now and then).
 */
const MAX_GENERATED_CHARS = 64 * 1024;
/** JSON length of `value`, stopping at MAX_GENERATED_CHARS + 1 (never builds a huge string). */
function boundedSize(value: unknown): number {
  let size = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0 && size <= MAX_GENERATED_CHARS) {
    const v = pending.pop();
    if (typeof v === "string") size += v.length + 2;
    else if (v !== null && typeof v === "object") {
      const entries = Object.entries(v);
      size += 2 + entries.length;
      for (const [k, member] of entries) {
        size += k.length + 3;
        pending.push(member);
      }
    } else size += String(v).length;
  }
  return size;
}

/** Runs per property; the totals are reported at the end of each backend. */
const RUNS = { json: 60, text: 50, mutated: 120, contentType: 40, query: 30, paths: 120 } as const;
const counts: Record<string, { runs: number; accepted: number; rejected: number }> = {};

// ---- arbitraries --------------------------------------------------------------------------

const headerSafe = (s: string) => !/[\r\n\0]/.test(s);
const oddStrings = fc.constantFrom(
  "",
  " ",
  "\u0000",
  "\u007f",
  "\u0085",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\u200b",
  "\ud800",
  "\udfff",
  "😀",
  "e\u0301",
  "'; drop table api_keys; --",
  "${process.env}",
  "$(id)",
  "../../../.env",
  "KEY=value",
  "# comment",
  '"quoted"',
  "\\",
  "null",
  "NaN",
  "-0",
);
const hugeString = fc.integer({ min: 1_000, max: 40_000 }).map((n) => "x".repeat(n));
const deepNest = fc
  .integer({ min: 2, max: 4_000 })
  .chain((n) =>
    fc.constantFrom(
      JSON.parse("[".repeat(n) + "]".repeat(n)) as unknown,
      JSON.parse('{"a":'.repeat(Math.min(n, 2_000)) + "1" + "}".repeat(Math.min(n, 2_000))) as unknown,
    ),
  );
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  oddStrings,
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.double(),
  fc.integer(),
  fc.bigInt().map((n) => Number(n)),
  fc.constantFrom(null, true, false, [], {}, 1e308, -1, 0, -0, 2 ** 53 + 1, 3.5, 1e-300, 5e-324, 1e-45, 99.99999999, "1", ["gemini"]),
  hugeString,
  deepNest,
);

/** Edits of a string value: control characters, unicode, whitespace, quotes, size. */
const stringTweak: fc.Arbitrary<(s: string) => string> = fc.oneof(
  fc
    .tuple(
      fc.nat(),
      fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
    )
    .map(
      ([at, ch]) =>
        (s: string) =>
          s.slice(0, at % (s.length + 1)) + ch + s.slice(at % (s.length + 1)),
    ),
  fc.tuple(fc.nat(), oddStrings).map(
    ([at, odd]) =>
      (s: string) =>
        s.slice(0, at % (s.length + 1)) + odd + s.slice(at % (s.length + 1)),
  ),
  fc.constantFrom(" ", "\t", "\n", "\u00a0", "\u3000").map((ws) => (s: string) => ws + s + ws),
  fc.string({ unit: "grapheme", maxLength: 40 }).map((u) => (s: string) => s + u),
  fc.nat().map((n) => (s: string) => s.slice(0, n % (s.length + 1))),
  fc
    .integer({ min: 2, max: 600 })
    .map((n) => (s: string) => s.repeat(Math.max(1, Math.min(n, Math.floor(MAX_GENERATED_CHARS / Math.max(1, s.length)))))),
  fc.constant((s: string) => s.toUpperCase()),
  fc.constant((s: string) => `"${s}"`),
  fc.constant((s: string) => `KEY=${s}`),
);

type Edit = (body: Record<string, unknown>) => void;

function setOwn(body: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(body, key, { value, enumerable: true, configurable: true, writable: true });
}

/** A valid body with one to four edits: drop, rename, retype, unknown field, string tweak. */
function mutatedBody(spec: (typeof bodySpecs)[string]): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(spec.valid(1));
  const pick = fc.constantFrom(...keys);
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    pick.map(
      (k): Edit =>
        (b) =>
          void delete b[k],
    ),
    fc
      .tuple(
        pick,
        fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("GEMINI", "Gemini", "gemini ", "topic\u0000", "current_step", "__proto__")),
      )
      .map(
        ([k, name]): Edit =>
          (b) => {
            if (!(k in b)) return;
            const value = b[k];
            delete b[k];
            setOwn(b, name, value);
          },
      ),
    fc.tuple(pick, junk).map(
      ([k, v]): Edit =>
        (b) =>
          setOwn(b, k, v),
    ),
    fc
      .tuple(
        fc.oneof(fc.string({ maxLength: 16 }), fc.constantFrom("__proto__", "constructor", "prototype", "validate", "userId", "user_id")),
        junk,
      )
      .map(
        ([k, v]): Edit =>
          (b) =>
            setOwn(b, k, v),
      ),
    fc.tuple(pick, stringTweak, fc.nat()).map(
      ([k, tweak, i]): Edit =>
        (b) => {
          const value = b[k];
          if (typeof value === "string") b[k] = tweak(value);
          else if (Array.isArray(value) && value.length > 0 && typeof value[i % value.length] === "string") {
            const copy = [...value];
            copy[i % copy.length] = tweak(copy[i % copy.length] as string);
            b[k] = copy;
          }
        },
    ),
    fc.tuple(pick, fc.integer({ min: 2, max: 40 })).map(
      ([k, n]): Edit =>
        (b) => {
          // Copies of a large value compound over several edits: only while the body stays bounded.
          if (boundedSize(b[k]) * n + boundedSize(b) > MAX_GENERATED_CHARS) return;
          b[k] = Array.from({ length: n }, () => b[k]);
        },
    ),
  );
  return fc.tuple(fc.integer({ min: 1, max: 1_000_000 }), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([seed, edits]) => {
    const body = spec.valid(seed);
    for (const e of edits) e(body);
    return body;
  });
}

/** Known keys with arbitrary values: gets past "unknown field" into each field's checks. */
function knownKeysObject(spec: (typeof bodySpecs)[string]): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(spec.valid(1));
  return fc.dictionary(fc.constantFrom(...keys), junk, { maxKeys: keys.length });
}

const contentTypes = fc.oneof(
  fc.constantFrom(
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/jsonx",
    "json",
    "text/json",
    "application/json-seq",
    "*/*",
    "application/javascript",
    "APPLICATION/JSON",
    "application/json; charset=utf-16",
    "application/json;;;",
    "application/problem+json",
    "application/vnd.api+json",
    "application/octet-stream",
  ),
  fc.string({ unit: "grapheme-ascii", maxLength: 40 }).filter(headerSafe),
);
const accepts = fc.constantFrom(
  undefined,
  "application/json",
  "text/event-stream",
  "*/*",
  "text/html",
  "application/json, text/event-stream",
);

const knownParams = fc.constantFrom("provider", "from", "to", "__session", "token", "validate", "userId", "provider[]");
const knownValues = fc.constantFrom(
  "gemini",
  "exa",
  "copilotkit",
  "GEMINI",
  "openai",
  "2024-01-01",
  "2024-02-30",
  "2024-01-01T00:00:00Z",
  "2024-01-01T25:00:00Z",
  "2024-01-01T00:00:00+99:00",
  "9999-12-31",
  "0000-01-01",
  "275760-09-13",
  "1970-01-01",
  "-1",
  "1e309",
  "",
  "%",
  "%zz",
  "%00",
);
const queryStrings: fc.Arbitrary<string> = fc.oneof(
  fc
    .array(
      fc.tuple(
        fc.oneof(knownParams, fc.string({ unit: "grapheme", maxLength: 10 })),
        fc.oneof(knownValues, fc.string({ unit: "grapheme", maxLength: 30 })),
      ),
      {
        maxLength: 6,
      },
    )
    .map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&")),
  fc.array(fc.tuple(knownParams, knownValues), { maxLength: 4 }).map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join("&")),
  fc.string({ unit: "grapheme-ascii", maxLength: 60 }).map((s) => s.replace(/#/g, "%23")),
  fc.uint8Array({ maxLength: 30 }).map((bytes) => `provider=${[...bytes].map((b) => "%" + b.toString(16).padStart(2, "0")).join("")}`),
);

const pathArb = fc.oneof(
  fc.constantFrom(...routes.map((r) => r.path)),
  fc
    .tuple(
      fc.constantFrom(...routes.map((r) => r.path)),
      fc.constantFrom("/", "//", "/x", "/../health", "/%2e%2e/health", ".json", "/..;/", "%00", "%2F"),
    )
    .map(([p, s]) => p + s),
  fc.string({ unit: "grapheme", maxLength: 30 }).map((s) => `/api/${encodeURIComponent(s)}`),
  fc.webPath(),
);
const anyMethod = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "get", "post");

// ---- the battery ----------------------------------------------------------------------------

describe("input battery: coverage", () => {
  it("every endpoint with a body has a body spec whose sample its schema accepts", () => {
    expect(bodyEndpoints.length).toBeGreaterThanOrEqual(3);
    for (const endpoint of bodyEndpoints) {
      const spec = bodySpecs[endpoint.label];
      expect(spec, `add a body spec for ${endpoint.label} to tests/helpers/battery.ts`).toBeDefined();
      for (const seed of [1, 2, 99, 123_456]) expect(spec!.schema.safeParse(spec!.valid(seed)).success, endpoint.label).toBe(true);
    }
    expect(Object.keys(bodySpecs).sort()).toEqual(bodyEndpoints.map((e) => e.label).sort());
  });

  it("generated bodies stay bounded: no edit compounds past a few times MAX_GENERATED_CHARS (the RangeError flake)", () => {
    for (const endpoint of bodyEndpoints) {
      const spec = bodySpecs[endpoint.label]!;
      for (const body of fc.sample(mutatedBody(spec), { numRuns: 400, seed: SEED })) {
        let text = "";
        try {
          text = JSON.stringify(body);
        } catch (error) {
          throw new Error(`${endpoint.label}: a generated body cannot be serialised (seed ${SEED}): ${String(error)}`);
        }
        expect(text.length, `${endpoint.label}, seed ${SEED}`).toBeLessThanOrEqual(6 * MAX_GENERATED_CHARS);
      }
    }
  });

  it("every query spec names an endpoint and its sample is valid", () => {
    for (const [label, spec] of Object.entries(querySpecs)) {
      expect(allEndpoints.map((e) => e.label)).toContain(label);
      expect(spec.schema.safeParse(Object.fromEntries(new URLSearchParams(spec.valid))).success, label).toBe(true);
    }
  });
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`input battery ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const { gemini, exa } = useFakeUpstreams();
    let frontendDir: string;
    const rts = {} as Record<Mode, TestRuntime>;
    const token = () => testSigner().sign({ sub: "user_battery_input", exp: Math.floor(Date.now() / 1000) + 3_600 });
    let prodToken = "";
    /** The database fingerprint after the last request, while nothing else wrote. */
    let knownFingerprint: string | undefined;
    const tally = (counts[backend.name] = { runs: 0, accepted: 0, rejected: 0 });

    beforeAll(async () => {
      database = await backend.open();
      frontendDir = mkdtempSync(join(tmpdir(), "byok-battery-frontend-"));
      const common = {
        GEMINI_BASE_URL: gemini.url,
        EXA_BASE_URL: exa.url,
        RATE_LIMIT_GENERATE_PER_MINUTE: "0",
        RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
        LOG_LEVEL: "warn",
      };
      rts.development = makeRuntime({
        database,
        mode: "development",
        env: { ...common, FRONTEND_ENV_FILE: join(frontendDir, ".env.local") },
      });
      rts.production = makeRuntime({ database, mode: "production", env: common });
      writeFileSync(rts.development.envFile, "# developer's file\nexport OTHER=keep me\nGEMINI_API_KEY=\n\n# trailing comment");
      writeFileSync(join(frontendDir, ".env.local"), "REACT_APP_OTHER=1\n");
      prodToken = token();
    });
    afterAll(async () => {
      for (const rt of Object.values(rts)) rt.cleanup();
      rmSync(frontendDir, { recursive: true, force: true });
      await database?.destroy();
      console.info(`input battery ${backend.name}: ${tally.runs} requests (${tally.accepted} accepted, ${tally.rejected} rejected)`);
    });

    /** Saves keys for the caller so generation can succeed (a DELETE run may have removed them). */
    async function prime(mode: Mode): Promise<void> {
      const save = allEndpoints.find((e) => e.label === "POST /api/onboarding/api-keys")!;
      const request = endpointRequest(save, { token: mode === "production" ? prodToken : undefined, seed: 77 });
      await expectStatus(await send(rts[mode].runtime, "function", save, request), 200);
      knownFingerprint = undefined;
    }

    /** Sends one request and checks the battery's invariants; throws with the whole exchange. */
    async function exercise(
      mode: Mode,
      transport: Transport,
      endpoint: Endpoint | undefined,
      request: Request,
      input: string,
    ): Promise<Exchange> {
      const rt = rts[mode];
      const files = [rt.envFile, join(frontendDir, ".env.local")];
      const dbBefore = knownFingerprint ?? (await databaseFingerprint(database));
      const filesBefore = files.map(fileFingerprint);
      const label = `${mode} ${transport} ${request.method} ${request.url}`;
      const response =
        endpoint === undefined || transport === "app"
          ? await send(rt.runtime, "app", endpoint ?? allEndpoints[0]!, request)
          : await send(rt.runtime, "function", endpoint, request);
      const ex = await readResponse(response);
      tally.runs++;
      const fail = (why: string) => new Error(`${why}\ninput: ${input.slice(0, 600)}\n${describeExchange(label, ex)}`);
      if (!ex.headers.get("x-request-id")) throw fail("no x-request-id");
      if (ex.status >= 500 || ex.status < 200 || (ex.status >= 300 && ex.status < 400)) throw fail(`status ${ex.status}`);
      if (ex.status >= 400) {
        tally.rejected++;
        // A HEAD answer has the headers of the GET answer and no body (RFC 9110 §9.3.2).
        if (request.method === "HEAD" && ex.text !== "") throw fail("a HEAD answer with a body");
        const violation = request.method === "HEAD" ? undefined : problemViolation(ex);
        if (violation) throw fail(violation);
        const dbAfter = await databaseFingerprint(database);
        if (dbAfter !== dbBefore) throw fail(`a rejected request changed the database:\n${dbBefore}\n${dbAfter}`);
        const filesAfter = files.map(fileFingerprint);
        if (filesAfter.join() !== filesBefore.join()) throw fail("a rejected request changed a .env file");
        knownFingerprint = dbAfter;
      } else {
        tally.accepted++;
        knownFingerprint = undefined;
        if ((ex.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
          const events = parseSse(ex.text);
          const last = events.at(-1);
          const problemStatus = (last?.data as { problem?: { status?: number } } | undefined)?.problem?.status ?? 0;
          if (!(last?.event === "done" || (last?.event === "error" && problemStatus >= 400 && problemStatus < 500))) {
            throw fail(`stream ended with ${last?.event ?? "nothing"}`);
          }
        }
      }
      return ex;
    }

    const headersFor = (mode: Mode, extra: Record<string, string | undefined> = {}): Record<string, string> => {
      const headers: Record<string, string> = {};
      if (mode === "production") headers.authorization = `Bearer ${prodToken}`;
      for (const [k, v] of Object.entries(extra)) if (v !== undefined) headers[k] = v;
      return headers;
    };

    const property = <T>(arb: fc.Arbitrary<T>, runs: number, fn: (value: T) => Promise<void>) =>
      fc.assert(fc.asyncProperty(arb, fn), { numRuns: runs, endOnFailure: true, seed: SEED });

    for (const mode of modes) {
      for (const endpoint of bodyEndpoints) {
        const spec = bodySpecs[endpoint.label]!;
        const bodyRequest = (transportHeaders: Record<string, string>, body: string | Uint8Array, query?: string) =>
          endpointRequest(endpoint, { headers: transportHeaders, body: { raw: body }, query });

        it(`${endpoint.label} ${mode}: arbitrary JSON values`, async () => {
          await prime(mode);
          await property(
            fc.tuple(fc.constantFrom(...transports), fc.oneof(fc.jsonValue({ maxDepth: 4 }), knownKeysObject(spec)), accepts),
            RUNS.json,
            async ([transport, value, accept]) => {
              const text = JSON.stringify(value) ?? "null";
              await exercise(
                mode,
                transport,
                endpoint,
                bodyRequest(headersFor(mode, { "content-type": "application/json", accept }), text),
                text,
              );
            },
          );
        });

        it(`${endpoint.label} ${mode}: arbitrary text and bytes as the body`, async () => {
          await prime(mode);
          const truncatedJson = fc.json({ maxDepth: 4 }).chain((s) => fc.nat({ max: s.length }).map((n) => s.slice(0, n)));
          const body: fc.Arbitrary<string | Uint8Array> = fc.oneof(
            fc.string({ unit: "binary", maxLength: 200 }),
            fc.string({ unit: "grapheme", maxLength: 200 }),
            truncatedJson,
            fc.uint8Array({ maxLength: 300 }),
            fc.constantFrom(
              "",
              " ",
              "\n",
              "{",
              "}",
              "[]",
              "null",
              "{}",
              '{"a":1,}',
              "\ufeff{}",
              '{"gemini":"AIza\u0000"}',
              '{"__proto__":{"validate":true}}',
            ),
            fc.integer({ min: 16_000, max: 20_000 }).map((n) => `{"topic":"${"y".repeat(n)}"}`),
          );
          await property(fc.tuple(fc.constantFrom(...transports), body), RUNS.text, async ([transport, raw]) => {
            const input = typeof raw === "string" ? raw : `bytes:${Buffer.from(raw).toString("hex")}`;
            await exercise(mode, transport, endpoint, bodyRequest(headersFor(mode, { "content-type": "application/json" }), raw), input);
          });
        });

        it(`${endpoint.label} ${mode}: mutated valid bodies (drop, rename, retype, unknown fields, huge, unicode, control characters, nesting)`, async () => {
          await prime(mode);
          await property(
            fc.tuple(fc.constantFrom(...transports), mutatedBody(spec), accepts),
            RUNS.mutated,
            async ([transport, body, accept]) => {
              const text = JSON.stringify(body);
              await exercise(
                mode,
                transport,
                endpoint,
                bodyRequest(headersFor(mode, { "content-type": "application/json", accept }), text),
                text,
              );
            },
          );
        });

        it(`${endpoint.label} ${mode}: wrong or odd content types`, async () => {
          await prime(mode);
          await property(
            fc.tuple(
              fc.constantFrom(...transports),
              fc.option(contentTypes, { nil: undefined }),
              fc.boolean(),
              fc.integer({ min: 1, max: 9_999 }),
            ),
            RUNS.contentType,
            async ([transport, type, validBody, seed]) => {
              const text = validBody ? JSON.stringify(spec.valid(seed)) : "gemini=AIza&exa=1";
              const headers = headersFor(mode, { "content-type": type, accept: "application/json" });
              // Without a content-type, a string body gets text/plain from the Request constructor; bytes get none.
              const raw = type === undefined && seed % 2 === 0 ? new TextEncoder().encode(text) : text;
              let request: Request;
              try {
                request = bodyRequest(headers, raw);
              } catch {
                return; // not a header value a client could send
              }
              if (type === undefined && !headers["content-type"]) request.headers.delete("content-type");
              await exercise(mode, transport, endpoint, request, `content-type ${JSON.stringify(type)}: ${text}`);
            },
          );
        });
      }

      for (const endpoint of allEndpoints) {
        it(`${endpoint.label} ${mode}: arbitrary query strings`, async () => {
          await prime(mode);
          await property(fc.tuple(fc.constantFrom(...transports), queryStrings), RUNS.query, async ([transport, query]) => {
            let request: Request;
            try {
              request = endpointRequest(endpoint, { headers: headersFor(mode, { accept: "application/json" }), query });
            } catch {
              return;
            }
            await exercise(mode, transport, endpoint, request, `?${query}`);
          });
        });
      }

      it(`${mode}: arbitrary paths and methods through createApp`, async () => {
        await prime(mode);
        await property(fc.tuple(anyMethod, pathArb, junk), RUNS.paths, async ([method, path, body]) => {
          let request: Request;
          try {
            const hasBody = !/^(GET|HEAD)$/i.test(method);
            request = new Request(`http://localhost${path.startsWith("/") ? path : `/${path}`}`, {
              method,
              headers: headersFor(mode, { "content-type": "application/json", accept: "application/json" }),
              body: hasBody ? (JSON.stringify(body) ?? "null") : undefined,
            });
          } catch {
            return; // not a request a client could send
          }
          await exercise(mode, "app", undefined, request, `${method} ${path}`);
        });
      });
    }
  });
}
