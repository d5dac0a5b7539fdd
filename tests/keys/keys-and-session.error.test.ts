/**
 * Bad input on the write endpoints: every malformed request answers a 4xx problem+json
 * naming the field, changes nothing (rows, audit, `.env`), and never echoes the submitted
 * key, in production and in development.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";

type Method = "POST" | "PUT" | "DELETE";

interface BadCase {
  name: string;
  method: Method;
  /** Path with query string. */
  path: string;
  /** A string, or a factory for a streamed body (streams can be read once; cases run twice). */
  body?: string | (() => ReadableStream<Uint8Array>);
  headers?: Record<string, string>;
  status: number;
  code: string;
  /** Pointers that `errors` must name (exactly this set); `undefined`: no `errors` expected. */
  pointers?: string[];
  /** Submitted values that must never come back in a body or a log line. */
  secrets?: string[];
}

const KEYS = "/api/onboarding/api-keys";
const SESSION = "/api/onboarding/session";
const MAX = 16 * 1024;

/**
 * A per-case marker inside every submitted key, so a leak is found even when the key is
 * partly echoed, and not hidden by the logger's redaction of key-shaped strings.
 */
let markerSeq = 0;
const marker = () => `Qz${(markerSeq++).toString().padStart(3, "0")}Lk`;
const gemini = (m: string, tail = "") => `AQ.Ab${m}${"g".repeat(41)}${tail}`;
const copilot = (m: string, tail = "") => `ck_pub_${m}${"c".repeat(16)}${tail}`;
const valid = sampleKeys(77);

function json(value: unknown): string {
  return JSON.stringify(value);
}

/** A body streamed in chunks, so the request carries no content-length. */
const stream = (text: string) => () => bytesStream(new TextEncoder().encode(text));

function bytesStream(bytes: Uint8Array, chunk = 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + chunk));
      offset += chunk;
    },
  });
}

function keyCases(): BadCase[] {
  const cases: BadCase[] = [];
  const post = (c: Omit<BadCase, "method" | "path">) => cases.push({ method: "POST", path: KEYS, ...c });

  // Not JSON at all, or not an object.
  const m0 = marker();
  post({ name: "malformed JSON", body: `{"gemini": "${gemini(m0)}"`, status: 400, code: "invalid-json", pointers: ["/"], secrets: [m0] });
  const m1 = marker();
  post({
    name: "JSON with a trailing comma",
    body: `{"gemini": "${gemini(m1)}",}`,
    status: 400,
    code: "invalid-json",
    pointers: ["/"],
    secrets: [m1],
  });
  post({ name: "empty body", body: "", status: 400, code: "invalid-json", pointers: ["/"] });
  post({ name: "blank body", body: " \n\t ", status: 400, code: "invalid-json", pointers: ["/"] });
  post({ name: "{}", body: "{}", status: 400, code: "invalid-request", pointers: ["/"] });
  post({ name: "only validate", body: json({ validate: true }), status: 400, code: "invalid-request", pointers: ["/"] });
  for (const [label, body] of [
    ["null", "null"],
    ["an array", json([gemini("Qz")])],
    ["a string", json("AIza")],
    ["a number", "42"],
    ["true", "true"],
  ]) {
    post({ name: `JSON ${label}`, body, status: 400, code: "invalid-request", pointers: ["/"] });
  }
  const m2 = marker();
  const notUtf8 = new Uint8Array([...new TextEncoder().encode(`{"gemini":"${gemini(m2)}`), 0xff, 0xfe, 0x22, 0x7d]);
  post({ name: "body not UTF-8", body: () => bytesStream(notUtf8), status: 400, code: "invalid-json", pointers: ["/"], secrets: [m2] });

  // Wrong types.
  post({ name: "gemini a number", body: json({ gemini: 123 }), status: 400, code: "invalid-key-format", pointers: ["/gemini"] });
  post({ name: "exa null", body: json({ exa: null }), status: 400, code: "invalid-key-format", pointers: ["/exa"] });
  const m3 = marker();
  post({
    name: "copilotkit an array",
    body: json({ copilotkit: [copilot(m3)] }),
    status: 400,
    code: "invalid-key-format",
    pointers: ["/copilotkit"],
    secrets: [m3],
  });
  const m4 = marker();
  post({
    name: "gemini an object",
    body: json({ gemini: { key: gemini(m4) } }),
    status: 400,
    code: "invalid-key-format",
    pointers: ["/gemini"],
    secrets: [m4],
  });
  const m5 = marker();
  post({
    name: "validate a string",
    body: json({ gemini: gemini(m5), validate: "yes" }),
    status: 400,
    code: "invalid-request",
    pointers: ["/validate"],
    secrets: [m5],
  });
  post({ name: "gemini a boolean", body: json({ gemini: true }), status: 400, code: "invalid-key-format", pointers: ["/gemini"] });

  // Unknown fields and unknown providers (even next to a valid key: nothing is saved).
  const m6 = marker();
  post({
    name: "unknown provider openai",
    body: json({ openai: `sk-${m6}abcdefabcdef` }),
    status: 400,
    code: "invalid-request",
    pointers: ["/openai", "/"],
    secrets: [m6],
  });
  const m7 = marker();
  post({
    name: "unknown field next to a valid key",
    body: json({ gemini: valid.gemini, userId: "user_someone_else", note: m7 }),
    status: 400,
    code: "invalid-request",
    pointers: ["/userId", "/note"],
    secrets: [m7, valid.gemini],
  });
  post({
    name: "provider name in upper case",
    body: json({ GEMINI: valid.gemini }),
    status: 400,
    code: "invalid-request",
    pointers: ["/GEMINI", "/"],
    secrets: [valid.gemini],
  });
  post({
    name: "env-style name",
    body: json({ GEMINI_API_KEY: valid.gemini }),
    status: 400,
    code: "invalid-request",
    pointers: ["/GEMINI_API_KEY", "/"],
    secrets: [valid.gemini],
  });
  post({
    name: "__proto__ field",
    body: `{"__proto__": {"gemini": "${valid.gemini}"}, "exa": "${valid.exa}"}`,
    status: 400,
    code: "invalid-request",
    pointers: ["/__proto__"],
    secrets: [valid.gemini, valid.exa],
  });

  // Too large: declared, streamed without content-length, and understated.
  const m8 = marker();
  const big = json({ gemini: gemini(m8), padding: "x".repeat(MAX) });
  post({ name: "body over 16 KiB with content-length", body: big, status: 413, code: "payload-too-large", secrets: [m8] });
  const m9 = marker();
  post({
    name: "body over 16 KiB streamed, no content-length",
    body: stream(json({ gemini: gemini(m9), padding: "x".repeat(MAX) })),
    status: 413,
    code: "payload-too-large",
    secrets: [m9],
  });
  const m10 = marker();
  post({
    name: "body over 16 KiB, content-length understated",
    body: stream(json({ gemini: gemini(m10), padding: "y".repeat(MAX * 2) })),
    headers: { "content-length": "10" },
    status: 413,
    code: "payload-too-large",
    secrets: [m10],
  });
  const m11 = marker();
  post({
    name: "a single 17 KiB key",
    body: json({ gemini: gemini(m11, "a".repeat(MAX + 1024)) }),
    status: 413,
    code: "payload-too-large",
    secrets: [m11],
  });

  // Wrong content types.
  const m12 = marker();
  post({
    name: "text/plain",
    body: json({ gemini: gemini(m12) }),
    headers: { "content-type": "text/plain" },
    status: 415,
    code: "unsupported-media-type",
    secrets: [m12],
  });
  const m13 = marker();
  post({
    name: "form-urlencoded",
    body: `gemini=${gemini(m13)}`,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    status: 415,
    code: "unsupported-media-type",
    secrets: [m13],
  });
  const m14 = marker();
  post({
    name: "multipart",
    body: `--b\r\ncontent-disposition: form-data; name="gemini"\r\n\r\n${gemini(m14)}\r\n--b--\r\n`,
    headers: { "content-type": "multipart/form-data; boundary=b" },
    status: 415,
    code: "unsupported-media-type",
    secrets: [m14],
  });
  const m15 = marker();
  post({
    name: "no content-type",
    body: json({ gemini: gemini(m15) }),
    headers: { "content-type": "" },
    status: 415,
    code: "unsupported-media-type",
    secrets: [m15],
  });
  const m16 = marker();
  post({
    name: "content-type application/jsonx",
    body: json({ gemini: gemini(m16) }),
    headers: { "content-type": "application/jsonx" },
    status: 415,
    code: "unsupported-media-type",
    secrets: [m16],
  });

  // Keys that could break out of a .env line, or are not just the key.
  const breakers: [string, (m: string) => string][] = [
    ["a newline and another assignment", (m) => gemini(m, "\nDEPLOY_ENV=local")],
    ["a carriage return", (m) => gemini(m, "\rX")],
    ["a line separator U+2028", (m) => gemini(m, "\u2028X")],
    ["a double quote", (m) => gemini(m, '"')],
    ["a single quote", (m) => `'${gemini(m)}`],
    ["a backtick", (m) => gemini(m, "`x`")],
    ["=", (m) => gemini(m, "=")],
    ["a KEY=value line", (m) => `GEMINI_API_KEY=${gemini(m)}`],
    ["#", (m) => gemini(m, "#comment")],
    ["a NUL", (m) => gemini(m, "\u0000x")],
    ["an escape character", (m) => gemini(m, "\u001b[2J")],
    ["DEL", (m) => gemini(m, "\u007f")],
    ["a tab inside", (m) => gemini(m, "\tX")],
    ["a space inside", (m) => gemini(m, " X")],
    ["a no-break space", (m) => gemini(m, "\u00a0X")],
    ["$ interpolation", (m) => gemini(m, "${HOME}")],
    ["a backslash", (m) => gemini(m, "\\n")],
    ["a non-ASCII letter", (m) => gemini(m, "é")],
  ];
  for (const [label, make] of breakers) {
    const m = marker();
    post({
      name: `gemini key with ${label}`,
      body: json({ gemini: make(m) }),
      status: 400,
      code: "invalid-key-format",
      pointers: ["/gemini"],
      secrets: [m],
    });
  }
  const mc = marker();
  post({
    name: "copilotkit key with a newline",
    body: json({ copilotkit: copilot(mc, "\nREACT_APP_X=1") }),
    status: 400,
    code: "invalid-key-format",
    pointers: ["/copilotkit"],
    secrets: [mc],
  });
  post({
    name: "exa key in quotes",
    body: json({ exa: `"${valid.exa}"` }),
    status: 400,
    code: "invalid-key-format",
    pointers: ["/exa"],
    secrets: [valid.exa],
  });

  // Wrong format per provider.
  const formats: [string, string, (m: string) => string][] = [
    ["gemini", "an OpenAI key", (m) => `sk-proj-${m}abcdefghijklmnopqrstuvwxyz`],
    ["gemini", "too short", (m) => `AQ.${m}${"g".repeat(10)}`],
    ["gemini", "too long", (m) => `AQ.${m}${"g".repeat(120)}`],
    ["gemini", "a standard key cut short", (m) => `AIza${m}${"g".repeat(20)}`],
    ["gemini", "a standard key too long", (m) => `AIza${m}${"g".repeat(100)}`],
    ["gemini", "wrong prefix case", (m) => `aiza${m}${"g".repeat(28)}`],
    ["gemini", "an exa key", () => valid.exa],
    ["gemini", "a copilotkit key", (m) => copilot(m)],
    ["exa", "not a UUID", (m) => `exa_${m}_0123456789`],
    ["exa", "a UUID without dashes", () => valid.exa.replaceAll("-", "")],
    ["exa", "a UUID in braces", () => `{${valid.exa}}`],
    ["exa", "a gemini key", (m) => gemini(m)],
    ["copilotkit", "a secret key", (m) => `ck_live_${m}${"c".repeat(20)}`],
    ["copilotkit", "too short", () => "ck_pub_short"],
    ["copilotkit", "without prefix", (m) => `${m}${"c".repeat(30)}`],
    ["copilotkit", "empty", () => ""],
    ["copilotkit", "only blanks", () => "   "],
  ];
  for (const [provider, label, make] of formats) {
    const m = marker();
    const value = make(m);
    post({
      name: `${provider} ${label}`,
      body: json({ [provider]: value }),
      status: 400,
      code: "invalid-key-format",
      pointers: [`/${provider}`],
      secrets: value.trim() === "" ? [] : [value.includes(m) ? m : value],
    });
  }
  // One good key and one bad one: nothing is saved.
  const mg = marker();
  post({
    name: "a valid key next to an invalid one",
    body: json({ gemini: valid.gemini, exa: valid.exa, copilotkit: copilot(mg, "\nX") }),
    status: 400,
    code: "invalid-key-format",
    pointers: ["/copilotkit"],
    secrets: [mg, valid.gemini, valid.exa],
  });
  post({
    name: "every key invalid",
    body: json({ gemini: "x", exa: "y", copilotkit: "z" }),
    status: 400,
    code: "invalid-key-format",
    pointers: ["/gemini", "/exa", "/copilotkit"],
  });
  return cases;
}

function sessionCases(): BadCase[] {
  const cases: BadCase[] = [];
  const put = (c: Omit<BadCase, "method" | "path">) => cases.push({ method: "PUT", path: SESSION, ...c });
  put({ name: "malformed JSON", body: `{"currentStep": 2,`, status: 400, code: "invalid-json", pointers: ["/"] });
  put({ name: "empty body", body: "", status: 400, code: "invalid-json", pointers: ["/"] });
  put({ name: "{}", body: "{}", status: 400, code: "invalid-request", pointers: ["/currentStep", "/progress"] });
  put({ name: "JSON array", body: "[1, 50]", status: 400, code: "invalid-request", pointers: ["/"] });
  put({ name: "null", body: "null", status: 400, code: "invalid-request", pointers: ["/"] });
  for (const [label, step] of [
    ["0", 0],
    ["7", 7],
    ["2.5", 2.5],
    ["-1", -1],
    ['"3"', "3"],
    ["null", null],
    ["true", true],
    ["1e3", 1e3],
  ] as const) {
    put({
      name: `currentStep ${label}`,
      body: json({ currentStep: step, progress: 10 }),
      status: 400,
      code: "invalid-request",
      pointers: ["/currentStep"],
    });
  }
  for (const [label, progress] of [
    ["-1", -1],
    ["101", 101],
    ['"50"', "50"],
    ["null", null],
    ["an object", { value: 5 }],
  ] as const) {
    put({
      name: `progress ${label}`,
      body: json({ currentStep: 2, progress }),
      status: 400,
      code: "invalid-request",
      pointers: ["/progress"],
    });
  }
  put({ name: "progress NaN (not JSON)", body: `{"currentStep": 2, "progress": NaN}`, status: 400, code: "invalid-json", pointers: ["/"] });
  put({
    name: "progress Infinity (1e400)",
    body: `{"currentStep": 2, "progress": 1e400}`,
    status: 400,
    code: "invalid-request",
    pointers: ["/progress"],
  });
  put({
    name: "unknown field userId",
    body: json({ currentStep: 2, progress: 10, userId: "user_someone_else" }),
    status: 400,
    code: "invalid-request",
    pointers: ["/userId"],
  });
  const m = marker();
  put({
    name: "a key smuggled into the session",
    body: json({ currentStep: 2, progress: 10, gemini: gemini(m) }),
    status: 400,
    code: "invalid-request",
    pointers: ["/gemini"],
    secrets: [m],
  });
  put({
    name: "body over 16 KiB with content-length",
    body: json({ currentStep: 2, progress: 10, pad: "x".repeat(MAX) }),
    status: 413,
    code: "payload-too-large",
  });
  put({
    name: "body over 16 KiB streamed",
    body: stream(json({ currentStep: 2, progress: 10, pad: "x".repeat(MAX) })),
    status: 413,
    code: "payload-too-large",
  });
  put({
    name: "text/plain",
    body: json({ currentStep: 2, progress: 10 }),
    headers: { "content-type": "text/plain" },
    status: 415,
    code: "unsupported-media-type",
  });
  put({
    name: "form-urlencoded",
    body: "currentStep=2&progress=10",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    status: 415,
    code: "unsupported-media-type",
  });
  return cases;
}

function deleteCases(): BadCase[] {
  const cases: BadCase[] = [];
  const del = (name: string, query: string, pointers: string[]) =>
    cases.push({ name, method: "DELETE", path: `${KEYS}${query}`, status: 400, code: "invalid-request", pointers });
  del("no provider", "", ["/provider"]);
  del("empty provider", "?provider=", ["/provider"]);
  del("unknown provider", "?provider=openai", ["/provider"]);
  del("provider in upper case", "?provider=GEMINI", ["/provider"]);
  del("provider with blanks", "?provider=%20gemini", ["/provider"]);
  del("provider repeated", "?provider=gemini&provider=exa", ["/provider"]);
  del("provider repeated, same value", "?provider=gemini&provider=gemini", ["/provider"]);
  del("provider as an array", "?provider[]=gemini", ["/provider[]", "/provider"]);
  del("unknown parameter", "?provider=gemini&userId=user_someone_else", ["/userId"]);
  const m = marker();
  cases.push({
    name: "a key in the query",
    method: "DELETE",
    path: `${KEYS}?provider=gemini&key=${gemini(m)}`,
    status: 400,
    code: "invalid-request",
    pointers: ["/key"],
    secrets: [m],
  });
  return cases;
}

const allCases = [...keyCases(), ...sessionCases(), ...deleteCases()];

async function rowCounts(database: Database) {
  const [row] = await database.rows<Record<string, number | string>>(sql`
    select (select count(*) from api_keys) as keys, (select count(*) from onboarding_sessions) as sessions,
           (select count(*) from key_events) as events,
           (select coalesce(sum(current_step), 0) from onboarding_sessions) as steps,
           (select coalesce(sum(progress), 0) from onboarding_sessions) as progress
  `);
  return Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, Number(v)]));
}

/** As a client sends it: JSON content-type and, for a body sent whole, its content-length. */
function buildRequest(c: BadCase, token: string | undefined): Request {
  const headers = new Headers({ "content-type": "application/json" });
  if (typeof c.body === "string") headers.set("content-length", String(Buffer.byteLength(c.body)));
  for (const [name, value] of Object.entries(c.headers ?? {})) {
    if (value === "") headers.delete(name);
    else headers.set(name, value);
  }
  if (token) headers.set("authorization", `Bearer ${token}`);
  if (c.method === "DELETE") headers.delete("content-type");
  const init: RequestInit & { duplex?: "half" } = { method: c.method, headers };
  if (typeof c.body === "string") init.body = c.body;
  else if (c.body) {
    init.body = c.body();
    init.duplex = "half";
  }
  return new Request(`http://localhost${c.path}`, init);
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`bad input ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let prod: TestRuntime;
    let dev: TestRuntime;
    const prodUser = "user_bad_input";
    const envText = "# developer settings\nDEBUG=true\nGEMINI_API_KEY=AIzaExistingDevKey000000000000000000\n";

    beforeAll(async () => {
      database = await backend.open();
      const KEY_ENCRYPTION_KEYS = makeRuntime({ database, mode: "production" }).runtime.config.keyEncryptionKeys;
      prod = makeRuntime({ database, mode: "production", env: { KEY_ENCRYPTION_KEYS } });
      dev = makeRuntime({ database, mode: "development", env: { KEY_ENCRYPTION_KEYS, DEV_USER_ID: "user_bad_input_dev" } });
      // Both users already have keys and a session, so a wrongly accepted request would show.
      await expectStatus(await prod.fetch(request("POST", KEYS, { token: prod.token(prodUser), body: sampleKeys(1) })), 200);
      await expectStatus(
        await prod.fetch(request("PUT", SESSION, { token: prod.token(prodUser), body: { currentStep: 3, progress: 40 } })),
        200,
      );
      writeFileSync(dev.envFile, envText);
      await expectStatus(await dev.fetch(request("POST", KEYS, { body: { exa: sampleKeys(2).exa } })), 200);
    });
    afterAll(async () => {
      prod.cleanup();
      dev.cleanup();
      await database.destroy();
    });

    for (const mode of ["production", "development"] as const) {
      describe(mode, () => {
        for (const c of allCases) {
          it(`${c.method} ${c.path.replace(/\?.*/, "")}: ${c.name} → ${c.status} ${c.code}`, async () => {
            const rt = mode === "production" ? prod : dev;
            const envBefore = existsSync(rt.envFile) ? readFileSync(rt.envFile) : undefined;
            const countsBefore = await rowCounts(database);
            const logStart = rt.logs.length;

            const req = buildRequest(c, mode === "production" ? prod.token(prodUser) : undefined);
            const response = await rt.fetch(req);
            const text = await response.text();
            expect(response.status, text).toBe(c.status);
            expect(response.headers.get("content-type")).toBe("application/problem+json");
            const body = JSON.parse(text);
            expect(body).toMatchObject({ status: c.status, code: c.code });
            expect(body.requestId).toMatch(/\S{8,}/);
            expect(response.headers.get("x-request-id")).toBe(body.requestId);
            expect(typeof body.detail).toBe("string");
            if (c.pointers) {
              expect(Array.isArray(body.errors), text).toBe(true);
              const pointers = new Set<string>(body.errors.map((e: { pointer: string }) => e.pointer));
              for (const pointer of c.pointers.filter((p) => p !== "/")) expect(pointers.has(pointer), `${pointer} in ${text}`).toBe(true);
              // Only the named fields (the root may be named too when a refinement fails).
              for (const pointer of pointers) expect(c.pointers.includes(pointer), `unexpected ${pointer} in ${text}`).toBe(true);
              for (const e of body.errors) expect(typeof e.message).toBe("string");
            }

            // Nothing changed.
            expect(await rowCounts(database)).toEqual(countsBefore);
            if (envBefore === undefined) expect(existsSync(rt.envFile)).toBe(false);
            else expect(readFileSync(rt.envFile).equals(envBefore)).toBe(true);

            // Nothing echoed or logged.
            const lines = rt.logs.slice(logStart);
            for (const secret of c.secrets ?? []) {
              expect(text.includes(secret), `response echoes the submitted key: ${text}`).toBe(false);
              for (const line of lines) expect(line.includes(secret), `log echoes the submitted key: ${line}`).toBe(false);
            }
            for (const line of lines) expect(line).not.toContain("[redacted]");
          });
        }
      });
    }

    it("the state is what the setup left (every bad request above changed nothing)", async () => {
      const listed = await expectStatus(await prod.fetch(request("GET", KEYS, { token: prod.token(prodUser) })), 200);
      expect(listed.keys.map((k: { hint: string }) => k.hint)).toEqual(Object.values(sampleKeys(1)).map((v) => "…" + v.slice(-4)));
      const state = await expectStatus(await prod.fetch(request("GET", SESSION, { token: prod.token(prodUser) })), 200);
      expect(state).toMatchObject({ currentStep: 3, progress: 40 });
      expect(readFileSync(dev.envFile, "utf8")).toBe(envText + `EXA_API_KEY=${sampleKeys(2).exa}\n`);
    });
  });
}
