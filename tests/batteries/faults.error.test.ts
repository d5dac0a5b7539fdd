/**
 * Fault battery:
 * - the database unreachable (every driver pointed at a closed port, a closed PGlite, an
 *   ended pool, an open that fails) → 503 `database-unavailable` with Retry-After on every
 *   protected endpoint of the route table, health 503 `degraded`, `.env` untouched;
 * - the connection dropped mid-request on PostgreSQL (the backend terminated while the
 *   statement waits on a lock; a TCP proxy cutting the connection before or after the save
 *   reached the server) → 503 and no partial write: a save lands whole or not at all;
 * - a crash between the `.env` temp write and the rename → 5xx problem, file unchanged, no
 *   temp file left;
 * - upstream failures and hangs (UPSTREAM_TIMEOUT_MS small) → the mapped problems, as JSON
 *   and as the stream's `error` event. Codes are asserted, never wall time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { sql } from "drizzle-orm";
import { loadConfig } from "../../lib/platform/env.js";
import { memorySink } from "../../lib/platform/log.js";
import { createRuntime, type Runtime } from "../../lib/platform/runtime.js";
import { EnvFileWriter } from "../../lib/platform/dev/env-file.js";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { migrateDatabase, openDatabase, type Database } from "../../db/client.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, operatorHealth, sampleKeys, testSigner, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { TEST_AZP, startJwksServer } from "../../testkit/clerk.js";
import type { FakeMode } from "../../testkit/fakes/gemini.js";
import {
  closedPort,
  databaseFingerprint,
  describeExchange,
  endpointRequest,
  endpoints,
  fileFingerprint,
  parseSse,
  problemCode,
  readResponse,
  send,
  startTcpProxy,
  transports,
  type Endpoint,
  type Exchange,
  type Transport,
} from "../helpers/battery.js";

const allEndpoints = await endpoints();
const protectedEndpoints = allEndpoints.filter((e) => e.route.auth);
const health = allEndpoints.find((e) => e.label === "GET /api/health")!;
const byLabel = (label: string): Endpoint => {
  const endpoint = allEndpoints.find((e) => e.label === label);
  if (!endpoint) throw new Error(`no endpoint ${label}`);
  return endpoint;
};
const saveKeys = byLabel("POST /api/onboarding/api-keys");
const deleteKey = byLabel("DELETE /api/onboarding/api-keys");
const generate = byLabel("POST /api/blog/generate");
const signer = testSigner();
const counts: Record<string, number> = {};
const count = (key: string) => void (counts[key] = (counts[key] ?? 0) + 1);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One database per backend for the whole file (opening PGlite costs seconds); dropped at the end. */
const shared = new Map<string, Promise<TestDatabase>>();
function sharedDatabase(backend: (typeof backends)[number]): Promise<TestDatabase> {
  let database = shared.get(backend.name);
  if (!database) shared.set(backend.name, (database = backend.open()));
  return database;
}
afterAll(async () => {
  for (const database of shared.values()) await (await database).destroy();
});

function expectUnavailable(label: string, ex: Exchange): void {
  expect(problemCode(label, ex), describeExchange(label, ex)).toBe("database-unavailable");
  expect(ex.status).toBe(503);
  expect(ex.headers.get("retry-after"), describeExchange(label, ex)).toMatch(/^[1-9]\d*$/);
}

// ---- database unreachable ------------------------------------------------------------------

interface Unreachable {
  name: string;
  /** The broken database the runtime gets, and how to dispose of it. */
  open(): Promise<{ database: () => Promise<Database>; close(): Promise<void> }>;
}

const connectionRefused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });

const unreachable: Unreachable[] = [
  {
    name: "pg pool pointed at a closed port",
    async open() {
      const db = await openDatabase({ driver: "pg", url: `postgres://postgres@127.0.0.1:${await closedPort()}/byok` });
      return { database: async () => db, close: () => db.close() };
    },
  },
  {
    name: "pg pool that was ended",
    async open() {
      const db = await openDatabase({ driver: "pg", url: `postgres://postgres@127.0.0.1:${await closedPort()}/byok` });
      await db.close();
      return { database: async () => db, close: async () => {} };
    },
  },
  {
    name: "PGlite closed under the runtime",
    async open() {
      const db = await openDatabase({ driver: "pglite", pgliteDir: "memory://" });
      await migrateDatabase(db);
      await db.close();
      return { database: async () => db, close: async () => {} };
    },
  },
  {
    name: "neon-http endpoint at a closed port",
    async open() {
      const port = await closedPort();
      const db = await openDatabase({
        driver: "neon-http",
        url: `postgres://u:p@db.localtest.me:${port}/byok`,
        neon: { fetchEndpoint: `http://127.0.0.1:${port}/sql` },
      });
      return { database: async () => db, close: () => db.close() };
    },
  },
  {
    name: "neon-ws proxy at a closed port",
    async open() {
      const port = await closedPort();
      const db = await openDatabase({
        driver: "neon-ws",
        url: `postgres://u:p@127.0.0.1:${port}/byok`,
        neon: { wsProxy: `127.0.0.1:${port}/v2`, useSecureWebSocket: false },
      });
      return { database: async () => db, close: () => db.close() };
    },
  },
  {
    name: "opening the database fails",
    async open() {
      return { database: () => Promise.reject(connectionRefused()), close: async () => {} };
    },
  },
];

describe("fault battery: database unreachable", () => {
  let dir: string;
  let placeholder: TestDatabase;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "byok-faults-"));
    placeholder = await sharedDatabase(backends[0]!);
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    console.info(`fault battery (database unreachable): ${counts["unreachable"] ?? 0} cases`);
  });

  /**
   * A runtime whose every database() call gets the broken database. With rate limits on,
   * the limiter's upsert is the first statement to fail; with them off, the endpoint's own.
   */
  function brokenRuntime(
    mode: "production" | "development",
    database: () => Promise<Database>,
    rateLimits: boolean,
  ): { rt: TestRuntime; runtime: Runtime } {
    const env = {
      FRONTEND_ENV_FILE: join(dir, `frontend-${randomBytes(4).toString("hex")}.env`),
      ...(rateLimits ? {} : { RATE_LIMIT_GENERATE_PER_MINUTE: "0", RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0" }),
    };
    const rt = makeRuntime({ database: placeholder, mode, env });
    return { rt, runtime: { ...rt.runtime, database } };
  }

  for (const variant of unreachable) {
    describe(variant.name, () => {
      let broken: Awaited<ReturnType<Unreachable["open"]>>;
      beforeAll(async () => {
        broken = await variant.open();
      });
      afterAll(async () => {
        await broken?.close();
      });

      for (const [transport, rateLimits] of transports.flatMap(
        (t) =>
          [
            [t, true],
            [t, false],
          ] as const,
      )) {
        it(`every protected endpoint via ${transport}, rate limits ${rateLimits ? "on" : "off"} → 503 database-unavailable with Retry-After (production)`, async () => {
          const { rt, runtime } = brokenRuntime("production", () => broken.database(), rateLimits);
          try {
            for (const endpoint of protectedEndpoints) {
              const request = endpointRequest(endpoint, { token: rt.token("user_db_down"), headers: { accept: "application/json" } });
              expectUnavailable(endpoint.label, await readResponse(await send(runtime, transport, endpoint, request)));
              count("unreachable");
            }
            const ex = await readResponse(await send(runtime, transport, health, endpointRequest(health, { headers: operatorHealth })));
            expect(ex.status, describeExchange("health", ex)).toBe(503);
            expect(JSON.parse(ex.text)).toMatchObject({ status: "degraded", database: "unavailable" });
            count("unreachable");
            const logs = rt.logs.join("\n");
            expect(logs).toContain("database unavailable");
            expect(logs).not.toMatch(/Failed query|params:/);
          } finally {
            rt.cleanup();
          }
        });
      }

      it("development: saving and deleting keys → 503, the .env files untouched", async () => {
        const { rt, runtime } = brokenRuntime("development", () => broken.database(), false);
        try {
          writeFileSync(rt.envFile, "# keep\nEXA_API_KEY=11111111-1111-4111-8111-111111111111\n");
          const frontend = runtime.config.frontendEnvFile!;
          writeFileSync(frontend, "REACT_APP_X=1\n");
          const before = [fileFingerprint(rt.envFile), fileFingerprint(frontend)];
          for (const transport of transports) {
            expectUnavailable("save", await readResponse(await send(runtime, transport, saveKeys, endpointRequest(saveKeys, { seed: 5 }))));
            expectUnavailable(
              "delete",
              await readResponse(await send(runtime, transport, deleteKey, endpointRequest(deleteKey, { query: "provider=exa" }))),
            );
            count("unreachable");
            count("unreachable");
          }
          expect([fileFingerprint(rt.envFile), fileFingerprint(frontend)]).toEqual(before);
        } finally {
          rt.cleanup();
        }
      });
    });
  }

  it("a runtime configured with DATABASE_URL at a closed port opens it itself and answers 503", async () => {
    const logs = memorySink();
    const runtime = createRuntime(
      loadConfig({
        DEPLOY_ENV: "production",
        DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/byok`,
        CLERK_JWT_KEY: signer.publicPem,
        CLERK_AUTHORIZED_PARTIES: TEST_AZP,
        KEY_ENCRYPTION_KEYS: generateKeyringEntry("faults"),
      }),
      { logSink: logs.sink },
    );
    try {
      for (const endpoint of protectedEndpoints) {
        const request = endpointRequest(endpoint, {
          token: signer.sign({ sub: "user_configured" }),
          headers: { accept: "application/json" },
        });
        expectUnavailable(endpoint.label, await readResponse(await send(runtime, "app", endpoint, request)));
        count("unreachable");
      }
    } finally {
      await (await runtime.database()).close();
    }
  });

  it("a failed open is retried by the next request, not cached", async () => {
    let attempts = 0;
    const logs = memorySink();
    const runtime = createRuntime(
      loadConfig({ DEPLOY_ENV: "production", CLERK_JWT_KEY: signer.publicPem, KEY_ENCRYPTION_KEYS: generateKeyringEntry("faults") }),
      {
        logSink: logs.sink,
        database: async () => {
          attempts += 1;
          if (attempts === 1) throw connectionRefused();
          return placeholder;
        },
      },
    );
    const endpoint = byLabel("GET /api/onboarding/session");
    const request = () => endpointRequest(endpoint, { token: signer.sign({ sub: "user_retry" }) });
    expectUnavailable("first", await readResponse(await send(runtime, "function", endpoint, request())));
    await expectStatus(await send(runtime, "function", endpoint, request()), 200);
    expect(attempts).toBe(2);
    count("unreachable");
  });
});

// ---- dropped mid-request (PostgreSQL) ---------------------------------------------------------

const postgres = backends.find((b) => b.name === "postgres")!;

describe.skipIf(!postgres.available)(`fault battery: connection dropped mid-request ${backendLabel(postgres)}`, () => {
  let database: TestDatabase;
  let rt: TestRuntime;
  let admin: pg.Client;
  let monitor: pg.Client;
  const stateTables = "onboarding_sessions, api_keys, key_events, usage_events";

  beforeAll(async () => {
    database = await postgres.open();
    rt = makeRuntime({ database, mode: "production", env: { RATE_LIMIT_GENERATE_PER_MINUTE: "0", RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0" } });
    admin = new pg.Client({ connectionString: database.url });
    monitor = new pg.Client({ connectionString: database.url });
    await Promise.all([admin.connect(), monitor.connect()]);
  });
  afterAll(async () => {
    rt?.cleanup();
    await Promise.all([admin?.end(), monitor?.end()]);
    await database?.destroy();
    const outcomes = Object.entries(counts).filter(([k]) => k.startsWith("save cut"));
    console.info(
      `fault battery (dropped mid-request): ${counts["dropped"] ?? 0} cases; ${outcomes.map(([k, n]) => `${k}: ${n}`).join(", ")}`,
    );
  });

  /** What one user has: session row, keys, audit rows. */
  async function holdings(userId: string) {
    const [row] = await database.rows<{ sessions: number; keys: number; events: number }>(sql`
      select (select count(*)::int from onboarding_sessions where user_id = ${userId}) as sessions,
             (select count(*)::int from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${userId}) as keys,
             (select count(*)::int from key_events where user_id = ${userId}) as events`);
    return row!;
  }

  for (const endpoint of protectedEndpoints) {
    for (const transport of transports) {
      it(`${endpoint.label} via ${transport}: backend terminated while the statement waits → 503, nothing written`, async () => {
        const user = `user_drop_${randomBytes(4).toString("hex")}`;
        await expectStatus(
          await send(rt.runtime, "function", saveKeys, endpointRequest(saveKeys, { token: rt.token(user), seed: 11 })),
          200,
        );
        const before = await databaseFingerprint(database);
        await admin.query("begin");
        await admin.query(`lock table ${stateTables} in access exclusive mode`);
        let exchange: Exchange | undefined;
        try {
          const pending = send(
            rt.runtime,
            transport,
            endpoint,
            endpointRequest(endpoint, { token: rt.token(user), seed: 12, headers: { accept: "application/json" } }),
          ).then(readResponse);
          let terminated = 0;
          while (terminated === 0) {
            const { rows } = await monitor.query<{ pid: number }>(
              "select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> $1",
              [(admin as unknown as { processID: number }).processID],
            );
            for (const { pid } of rows) {
              await monitor.query("select pg_terminate_backend($1)", [pid]);
              terminated += 1;
            }
            if (terminated === 0) await sleep(5);
          }
          exchange = await pending;
        } finally {
          await admin.query("rollback");
        }
        expectUnavailable(endpoint.label, exchange!);
        expect(await databaseFingerprint(database)).toBe(before);
        count("dropped");
      });
    }
  }

  for (const when of ["before", "after"] as const) {
    it(`a save whose connection a proxy cuts ${when} the statement reaches the server → 503, all or nothing, then recovers`, async () => {
      const target = new URL(database.url!);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      const proxied = new URL(database.url!);
      proxied.host = `127.0.0.1:${proxy.port}`;
      const viaProxy = await openDatabase({ driver: "pg", url: proxied.toString(), maxConnections: 2 });
      const runtime: Runtime = { ...rt.runtime, database: async () => viaProxy };
      try {
        for (const transport of transports) {
          const user = `user_cut_${when}_${transport}_${randomBytes(3).toString("hex")}`;
          // Warm the pool so the marker arrives on an established connection.
          await expectStatus(
            await send(
              runtime,
              transport,
              byLabel("GET /api/onboarding/session"),
              endpointRequest(byLabel("GET /api/onboarding/session"), { token: rt.token(user) }),
            ),
            200,
          );
          const fired = proxy.dropOn("insert into api_keys", when);
          const ex = await readResponse(
            await send(runtime, transport, saveKeys, endpointRequest(saveKeys, { token: rt.token(user), seed: 21 })),
          );
          await fired;
          expectUnavailable("save", ex);
          const held = await holdings(user);
          const all = held.sessions === 1 && held.keys === 3 && held.events === 3;
          const none = held.sessions === 0 && held.keys === 0 && held.events === 0;
          expect(all || none, `partial write: ${JSON.stringify(held)}`).toBe(true);
          if (when === "before") expect(none).toBe(true);
          count("dropped");
          count(`save cut ${when} the statement landed ${all ? "whole" : "not at all"}`);

          // The pool replaces the dead connection: the retry lands whole.
          await expectStatus(await send(runtime, transport, saveKeys, endpointRequest(saveKeys, { token: rt.token(user), seed: 21 })), 200);
          expect(await holdings(user)).toMatchObject({ sessions: 1, keys: 3 });

          // A delete cut the same way: the key and its audit row go together or not at all.
          const fired2 = proxy.dropOn("delete from api_keys", when);
          const del = await readResponse(
            await send(runtime, transport, deleteKey, endpointRequest(deleteKey, { token: rt.token(user), query: "provider=gemini" })),
          );
          await fired2;
          expectUnavailable("delete", del);
          const [state] = await database.rows<{ keys: number; deletes: number }>(sql`
            select (select count(*)::int from api_keys k join onboarding_sessions s on s.id = k.session_id where s.user_id = ${user} and k.provider = 'gemini') as keys,
                   (select count(*)::int from key_events where user_id = ${user} and action = 'delete') as deletes`);
          expect(state!.keys + state!.deletes, JSON.stringify(state)).toBe(1);
          count("dropped");
        }
      } finally {
        await viaProxy.close().catch(() => {});
        await proxy.close();
      }
    });
  }

  it("development: a save cut before it reaches the server → 503 and the .env file untouched", async () => {
    const target = new URL(database.url!);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const proxied = new URL(database.url!);
    proxied.host = `127.0.0.1:${proxy.port}`;
    const viaProxy = await openDatabase({ driver: "pg", url: proxied.toString(), maxConnections: 2 });
    const dev = makeRuntime({ database: viaProxy, mode: "development" });
    try {
      writeFileSync(dev.envFile, "# mine\nGEMINI_API_KEY=AIzaSyOLDOLDOLDOLDOLDOLDOLDOLDOLDOLD0\n");
      const before = fileFingerprint(dev.envFile);
      const fired = proxy.dropOn("insert into api_keys", "before");
      expectUnavailable("save", await readResponse(await send(dev.runtime, "app", saveKeys, endpointRequest(saveKeys, { seed: 31 }))));
      await fired;
      expect(fileFingerprint(dev.envFile)).toBe(before);
      count("dropped");
    } finally {
      dev.cleanup();
      await viaProxy.close().catch(() => {});
      await proxy.close();
    }
  });
});

// ---- crash between temp write and rename ------------------------------------------------------

for (const backend of backends) {
  describe.skipIf(!backend.available)(`fault battery: .env crash before rename ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let rt: TestRuntime;
    let crashing: Runtime;
    let renames = 0;
    const original =
      "# developer's settings\r\nexport GEMINI_API_KEY=AIzaSyORIGINALORIGINALORIGINALORIG0\nEXA_API_KEY=22222222-2222-4222-8222-222222222222\nOTHER='x y'\n";

    beforeAll(async () => {
      database = await sharedDatabase(backend);
      rt = makeRuntime({ database, mode: "development" });
      crashing = {
        ...rt.runtime,
        envWriter: new EnvFileWriter({
          rename: async () => {
            renames += 1;
            throw Object.assign(new Error("simulated crash between temp write and rename"), { code: "EIO" });
          },
        }),
      };
    });
    afterAll(() => {
      rt?.cleanup();
    });

    for (const transport of transports) {
      it(`saving and deleting via ${transport} → 5xx problem, .env byte for byte unchanged, no temp file left`, async () => {
        writeFileSync(rt.envFile, original);
        const before = fileFingerprint(rt.envFile);
        const renamesBefore = renames;
        const save = await readResponse(await send(crashing, transport, saveKeys, endpointRequest(saveKeys, { seed: 41 })));
        expect(save.status, describeExchange("save", save)).toBeGreaterThanOrEqual(500);
        expect(problemCode("save", save)).toBe("internal-error");
        const del = await readResponse(
          await send(crashing, transport, deleteKey, endpointRequest(deleteKey, { query: "provider=gemini" })),
        );
        expect(del.status, describeExchange("delete", del)).toBeGreaterThanOrEqual(500);
        expect(problemCode("delete", del)).toBe("internal-error");
        expect(renames - renamesBefore).toBe(2); // both really reached the rename
        expect(fileFingerprint(rt.envFile)).toBe(before);
        expect(readdirSync(rt.dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
        const logs = rt.logs.join("\n");
        for (const value of Object.values(sampleKeys(41))) expect(logs).not.toContain(value);
        count("env-crash");
        count("env-crash");
      });
    }
  });
}

// ---- upstream failures and hangs ---------------------------------------------------------------

interface UpstreamCase {
  name: string;
  /**
   * The case waits for UPSTREAM_TIMEOUT_MS: it runs with a short timeout (1 s). Every other
   * case runs with a long one, so a slow machine cannot turn its answer into a timeout.
   */
  waits?: true;
  gemini?: FakeMode;
  exa?: FakeMode;
  /** Expected problem; `research-failed` means generation succeeds without sources. */
  expect: { status: number; code: string; retryAfter?: RegExp } | "research-failed";
}

const upstreamCases: UpstreamCase[] = [
  { name: "gemini 401", gemini: { fail: 401 }, expect: { status: 422, code: "provider-rejected-key" } },
  { name: "gemini 403 (key echoed upstream)", gemini: { fail: 403 }, expect: { status: 422, code: "provider-rejected-key" } },
  { name: "gemini 400 API_KEY_INVALID", gemini: { fail: "invalid-key" }, expect: { status: 422, code: "provider-rejected-key" } },
  {
    name: "gemini 429 with RetryInfo 7s",
    gemini: { fail: 429, retryAfterSeconds: 7 },
    expect: { status: 429, code: "rate-limited", retryAfter: /^7$/ },
  },
  { name: "gemini 429 without a delay", gemini: { fail: 429 }, expect: { status: 429, code: "rate-limited", retryAfter: /^[1-9]\d*$/ } },
  { name: "gemini 500", gemini: { fail: 500 }, expect: { status: 502, code: "upstream-unavailable" } },
  { name: "gemini 503", gemini: { fail: 503 }, expect: { status: 502, code: "upstream-unavailable" } },
  { name: "gemini 404 (retired or unknown model)", gemini: { fail: 404 }, expect: { status: 503, code: "model-unavailable" } },
  {
    name: "gemini 401 ACCESS_TOKEN_TYPE_UNSUPPORTED",
    gemini: { fail: "key-type-unsupported" },
    expect: { status: 422, code: "provider-rejected-key" },
  },
  {
    name: "gemini 403 API_KEY_SERVICE_BLOCKED",
    gemini: { fail: "service-blocked" },
    expect: { status: 422, code: "provider-rejected-key" },
  },
  { name: "gemini 504", gemini: { fail: 504 }, expect: { status: 504, code: "upstream-timeout" } },
  { waits: true, name: "gemini hangs", gemini: { hang: true }, expect: { status: 504, code: "upstream-timeout" } },
  {
    waits: true,
    name: "gemini answers after the timeout",
    gemini: { latencyMs: 60_000 },
    expect: { status: 504, code: "upstream-timeout" },
  },
  { waits: true, name: "gemini stalls mid-stream", gemini: { hangAfterChunks: 2 }, expect: { status: 504, code: "upstream-timeout" } },
  { name: "exa 401", exa: { fail: 401 }, expect: "research-failed" },
  { name: "exa 402", exa: { fail: 402 }, expect: "research-failed" },
  { name: "exa 429", exa: { fail: 429, retryAfterSeconds: 3 }, expect: "research-failed" },
  { name: "exa 500", exa: { fail: 500 }, expect: "research-failed" },
  { waits: true, name: "exa hangs", exa: { hang: true }, expect: "research-failed" },
  { name: "exa and gemini 500", exa: { fail: 500 }, gemini: { fail: 500 }, expect: { status: 502, code: "upstream-unavailable" } },
];

const validateCases: { name: string; gemini: FakeMode; status: number; code: string; waits?: true }[] = [
  { name: "gemini 401", gemini: { fail: 401 }, status: 422, code: "provider-rejected-key" },
  { name: "gemini 400 API_KEY_INVALID", gemini: { fail: "invalid-key" }, status: 422, code: "provider-rejected-key" },
  { name: "gemini 429", gemini: { fail: 429, retryAfterSeconds: 9 }, status: 429, code: "rate-limited" },
  { name: "gemini 500", gemini: { fail: 500 }, status: 502, code: "upstream-unavailable" },
  { waits: true, name: "gemini hangs", gemini: { hang: true }, status: 504, code: "upstream-timeout" },
];

for (const backend of backends) {
  describe.skipIf(!backend.available)(`fault battery: upstream failures ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const { gemini, exa } = useFakeUpstreams();
    let rt: TestRuntime;
    let fastRt: TestRuntime;
    let unreachableRt: TestRuntime;
    let seed = 500;

    beforeAll(async () => {
      database = await sharedDatabase(backend);
      const env = {
        KEY_ENCRYPTION_KEYS: generateKeyringEntry("upstream"), // shared: both runtimes read the same rows
        GEMINI_BASE_URL: gemini.url,
        EXA_BASE_URL: exa.url,
        UPSTREAM_TIMEOUT_MS: "30000",
        RATE_LIMIT_GENERATE_PER_MINUTE: "0",
        RATE_LIMIT_KEY_WRITES_PER_MINUTE: "0",
      };
      rt = makeRuntime({ database, mode: "production", env });
      fastRt = makeRuntime({ database, mode: "production", env: { ...env, UPSTREAM_TIMEOUT_MS: "1000" } });
      unreachableRt = makeRuntime({
        database,
        mode: "production",
        env: { ...env, GEMINI_BASE_URL: `http://127.0.0.1:${await closedPort()}` },
      });
    });
    afterAll(async () => {
      for (const r of [rt, fastRt, unreachableRt]) r?.cleanup();
      console.info(`fault battery (upstream) ${backend.name}: ${counts[`upstream:${backend.name}`] ?? 0} cases`);
    });

    /** A user with all three keys saved, distinct from every other case's. */
    async function userWithKeys(): Promise<{ user: string; keys: ReturnType<typeof sampleKeys> }> {
      const user = `user_up_${randomBytes(4).toString("hex")}`;
      const keys = sampleKeys(++seed);
      await expectStatus(
        await send(rt.runtime, "function", saveKeys, endpointRequest(saveKeys, { token: rt.token(user), body: { json: keys } })),
        200,
      );
      return { user, keys };
    }

    async function generation(runtime: Runtime, transport: Transport, user: string, accept: "json" | "sse"): Promise<Exchange> {
      const headers = { accept: accept === "json" ? "application/json" : "text/event-stream" };
      return readResponse(await send(runtime, transport, generate, endpointRequest(generate, { token: rt.token(user), headers })));
    }

    for (const c of upstreamCases) {
      it(`generation, ${c.name} → ${c.expect === "research-failed" ? "200 without research" : `${c.expect.status} ${c.expect.code}`} (JSON and stream)`, async () => {
        const { user, keys } = await userWithKeys();
        if (c.gemini) gemini.setMode(c.gemini, keys.gemini);
        if (c.exa) exa.setMode(c.exa, keys.exa);
        const runs = [
          ["app", "json"],
          ["function", "sse"],
          ["function", "json"],
          ["app", "sse"],
        ] as const;
        for (const [transport, accept] of c.waits ? runs.slice(0, 2) : runs) {
          const ex = await generation((c.waits ? fastRt : rt).runtime, transport, user, accept);
          const label = `${c.name} ${transport} ${accept}`;
          if (accept === "json") {
            if (c.expect === "research-failed") {
              expect(ex.status, describeExchange(label, ex)).toBe(200);
              expect(JSON.parse(ex.text)).toMatchObject({ sources: [], keySource: "database" });
            } else {
              expect(problemCode(label, ex), describeExchange(label, ex)).toBe(c.expect.code);
              expect(ex.status).toBe(c.expect.status);
              if (c.expect.retryAfter) expect(ex.headers.get("retry-after")).toMatch(c.expect.retryAfter);
            }
          } else {
            expect(ex.status, describeExchange(label, ex)).toBe(200);
            const events = parseSse(ex.text);
            const last = events.at(-1)!;
            if (c.expect === "research-failed") {
              expect(
                events.some((e) => e.event === "status" && (e.data as { research?: string }).research === "failed"),
                label,
              ).toBe(true);
              expect(last.event, label).toBe("done");
            } else {
              expect(last.event, describeExchange(label, ex)).toBe("error");
              expect((last.data as { problem: { code: string; status: number } }).problem).toMatchObject({
                code: c.expect.code,
                status: c.expect.status,
              });
            }
          }
          // Whatever happened, no upstream connection is left open.
          await Promise.all([gemini.waitForIdle(5_000), exa.waitForIdle(5_000)]);
          expect(ex.text).not.toContain(keys.gemini);
          expect(ex.text).not.toContain(keys.exa);
          count(`upstream:${backend.name}`);
        }
      });
    }

    it("generation with gemini unreachable → 502 upstream-unavailable (JSON and stream)", async () => {
      const { user } = await userWithKeys();
      exa.setMode({ fail: 500 });
      try {
        const json = await generation(unreachableRt.runtime, "app", user, "json");
        expect(problemCode("unreachable", json)).toBe("upstream-unavailable");
        expect(json.status).toBe(502);
        const sse = parseSse((await generation(unreachableRt.runtime, "function", user, "sse")).text);
        expect(sse.at(-1)).toMatchObject({ event: "error", data: { problem: { code: "upstream-unavailable", status: 502 } } });
        count(`upstream:${backend.name}`);
        count(`upstream:${backend.name}`);
      } finally {
        exa.setMode({});
      }
    });

    for (const c of validateCases) {
      it(`saving with validate: true, ${c.name} → ${c.status} ${c.code}, nothing saved`, async () => {
        const user = `user_validate_${randomBytes(4).toString("hex")}`;
        const keys = sampleKeys(++seed);
        gemini.setMode(c.gemini, keys.gemini);
        for (const transport of transports) {
          const before = await databaseFingerprint(database);
          const ex = await readResponse(
            await send(
              (c.waits ? fastRt : rt).runtime,
              transport,
              saveKeys,
              endpointRequest(saveKeys, { token: rt.token(user), body: { json: { ...keys, validate: true } } }),
            ),
          );
          expect(problemCode(c.name, ex), describeExchange(c.name, ex)).toBe(c.code);
          expect(ex.status).toBe(c.status);
          expect(await databaseFingerprint(database)).toBe(before);
          await gemini.waitForIdle(5_000);
          count(`upstream:${backend.name}`);
        }
      });
    }

    it("Clerk's JWKS failing → 502 upstream-unavailable, not 401", async () => {
      const secretKey = `sk_test_${randomBytes(12).toString("hex")}`;
      const jwks = await startJwksServer(signer.jwks, { secretKey });
      jwks.failWith(500);
      const jwksRt = makeRuntime({
        database,
        mode: "production",
        env: { CLERK_JWT_KEY: "", CLERK_SECRET_KEY: secretKey, CLERK_API_URL: jwks.url },
      });
      try {
        const endpoint = byLabel("GET /api/onboarding/api-keys");
        const ex = await readResponse(
          await send(jwksRt.runtime, "app", endpoint, endpointRequest(endpoint, { token: signer.sign({ sub: "user_jwks" }) })),
        );
        expect(problemCode("jwks", ex), describeExchange("jwks", ex)).toBe("upstream-unavailable");
        expect(ex.status).toBe(502);
        count(`upstream:${backend.name}`);
      } finally {
        jwksRt.cleanup();
        await jwks.close();
      }
    });
  });
}
