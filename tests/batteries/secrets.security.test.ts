/**
 * Secrets battery: a broad scenario (several users saving, replacing, listing and deleting
 * keys in production and development; generation through the fakes, succeeding and failing;
 * every kind of bad token; bad inputs that carry key-shaped strings; a query that fails with
 * Drizzle's parameter-bearing error) with every log line, response body and response header
 * captured. Then:
 * - no plaintext key, session token, stored ciphertext (read from the database as the
 *   scenario goes), keyring secret or Clerk secret key appears in any log line or response,
 *   except a CopilotKit key in its owner's own GET/POST /api/onboarding/api-keys view;
 * - a dump of every table holds no plaintext key and no token;
 * - a DrizzleQueryError's message (SQL and parameters) is never logged verbatim.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { DrizzleQueryError } from "drizzle-orm/errors";
import { saveKeys as storeSaveKeys } from "../../lib/keys/store.js";
import { parseKeyring } from "../../lib/platform/crypto.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { makeRuntime, sampleKeys, testSigner, type TestRuntime } from "../helpers/runtime.js";
import { startJwksServer, type JwksServer } from "../../testkit/clerk.js";
import { TEST_WEBHOOK_SECRET } from "../../testkit/webhooks.js";
import {
  badTokenCases,
  endpointRequest,
  endpoints,
  readResponse,
  send,
  withTokenCase,
  type Endpoint,
  type RequestParts,
  type Transport,
} from "../helpers/battery.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const allEndpoints = await endpoints();
const ep = (label: string): Endpoint => {
  const endpoint = allEndpoints.find((e) => e.label === label);
  if (!endpoint) throw new Error(`no endpoint ${label}`);
  return endpoint;
};
const signer = testSigner();

interface Captured {
  label: string;
  /** "GET /api/onboarding/api-keys": what was really asked, whatever the label. */
  target: string;
  status: number;
  headers: [string, string][];
  text: string;
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`secrets battery ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const { gemini, exa } = useFakeUpstreams();
    let jwks: JwksServer;
    let prod: TestRuntime;
    let prodJwks: TestRuntime;
    /** Same keys, a short upstream timeout: for the stalled stream. */
    let prodImpatient: TestRuntime;
    let dev: TestRuntime;
    let frontendDir: string;
    const clerkSecretKey = `sk_test_${randomBytes(16).toString("hex")}`;

    const exchanges: Captured[] = [];
    const consoleLines: string[] = [];
    /** Plaintext provider keys, by value → owning user (undefined: sent only as bad input). */
    const plaintext = new Map<string, string | undefined>();
    const copilotkitOwners = new Map<string, Set<string>>();
    const tokens = new Set<string>();
    const ciphertexts = new Set<string>();
    const otherSecrets = new Set<string>();

    const tok = (user: string) => {
      const token = signer.sign({ sub: user });
      tokens.add(token);
      return token;
    };
    const own = (user: string, keys: Partial<Record<"gemini" | "exa" | "copilotkit", string>>) => {
      for (const [provider, value] of Object.entries(keys)) {
        plaintext.set(value, user);
        if (provider === "copilotkit") {
          const owners = copilotkitOwners.get(value) ?? new Set<string>();
          owners.add(user);
          copilotkitOwners.set(value, owners);
        }
      }
    };
    const badInput = (...values: string[]) => {
      for (const v of values) if (!plaintext.has(v)) plaintext.set(v, undefined);
    };

    async function captureCiphertexts(): Promise<void> {
      for (const row of await database.rows<{ key_ciphertext: string }>(sql`select key_ciphertext from api_keys`))
        ciphertexts.add(row.key_ciphertext);
    }

    /** Sends, records everything the client sees, and collects the ciphertexts stored so far. */
    async function call(
      rt: TestRuntime,
      transport: Transport,
      endpoint: Endpoint,
      parts: RequestParts,
      label = endpoint.label,
      request?: Request,
    ) {
      const sent = request ?? endpointRequest(endpoint, parts);
      const target = `${sent.method} ${new URL(sent.url).pathname}`;
      const ex = await readResponse(await send(rt.runtime, transport, endpoint, sent));
      exchanges.push({
        label: `${rt.runtime.config.mode} ${transport} ${label}`,
        target,
        status: ex.status,
        headers: [...ex.headers],
        text: ex.text,
      });
      await captureCiphertexts();
      return ex;
    }

    beforeAll(async () => {
      database = await backend.open();
      jwks = await startJwksServer(signer.jwks, { secretKey: clerkSecretKey });
      frontendDir = mkdtempSync(join(tmpdir(), "byok-secrets-frontend-"));
      const env = { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, RATE_LIMIT_KEY_WRITES_PER_MINUTE: "1000" };
      prod = makeRuntime({ database, mode: "production", env });
      prodJwks = makeRuntime({
        database,
        mode: "production",
        env: {
          ...env,
          KEY_ENCRYPTION_KEYS: prod.runtime.config.keyEncryptionKeys,
          CLERK_JWT_KEY: "",
          CLERK_SECRET_KEY: clerkSecretKey,
          CLERK_API_URL: jwks.url,
        },
      });
      prodImpatient = makeRuntime({
        database,
        mode: "production",
        env: { ...env, KEY_ENCRYPTION_KEYS: prod.runtime.config.keyEncryptionKeys, UPSTREAM_TIMEOUT_MS: "500" },
      });
      dev = makeRuntime({ database, mode: "development", env: { ...env, FRONTEND_ENV_FILE: join(frontendDir, ".env.local") } });
      otherSecrets.add(clerkSecretKey);
      otherSecrets.add(TEST_WEBHOOK_SECRET);
      otherSecrets.add(TEST_WEBHOOK_SECRET.slice("whsec_".length));
      for (const rt of [prod, dev]) {
        const spec = rt.runtime.config.keyEncryptionKeys!;
        otherSecrets.add(spec);
        const ring = parseKeyring(spec);
        expect(ring.ok).toBe(true);
        for (const entry of spec.split(",")) otherSecrets.add(entry.split(":")[1]!);
      }
      for (const method of ["log", "info", "warn", "error", "debug"] as const) {
        vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void consoleLines.push(args.map(String).join(" ")));
      }
    });
    let summary = "";
    afterAll(async () => {
      vi.restoreAllMocks();
      if (summary) console.info(summary);
      for (const rt of [prod, dev, prodJwks, prodImpatient]) rt?.cleanup();
      rmSync(frontendDir, { recursive: true, force: true });
      await jwks?.close();
      await database?.destroy();
    });

    const users = {
      a: `user_sec_a_${randomBytes(3).toString("hex")}`,
      b: `user_sec_b_${randomBytes(3).toString("hex")}`,
      c: `user_sec_c_${randomBytes(3).toString("hex")}`,
    };
    const keys = {
      a: sampleKeys(9_001),
      b: sampleKeys(9_002),
      c: sampleKeys(9_003),
      a2: sampleKeys(9_011),
      devKeys: sampleKeys(9_100),
      dev2: sampleKeys(9_101),
    };

    it("production: three users save, replace, list and delete keys", async () => {
      own(users.a, keys.a);
      own(users.b, keys.b);
      own(users.c, keys.c);
      await call(prod, "app", ep("POST /api/onboarding/api-keys"), { token: tok(users.a), body: { json: keys.a } });
      await call(prod, "function", ep("POST /api/onboarding/api-keys"), {
        token: tok(users.b),
        body: { json: { ...keys.b, validate: true } },
      });
      await call(prod, "app", ep("POST /api/onboarding/api-keys"), { token: tok(users.c), body: { json: keys.c } });
      own(users.a, { gemini: keys.a2.gemini, copilotkit: keys.a2.copilotkit });
      await call(prod, "function", ep("POST /api/onboarding/api-keys"), {
        token: tok(users.a),
        body: { json: { gemini: keys.a2.gemini, copilotkit: keys.a2.copilotkit } },
      });
      for (const user of Object.values(users)) {
        for (const transport of ["app", "function"] as const)
          await call(prod, transport, ep("GET /api/onboarding/api-keys"), { token: tok(user) });
      }
      await call(prod, "app", ep("DELETE /api/onboarding/api-keys"), { token: tok(users.b), query: "provider=exa" });
      await call(prod, "function", ep("DELETE /api/onboarding/api-keys"), { token: tok("user_sec_nobody"), query: "provider=gemini" });
      await call(prod, "app", ep("PUT /api/onboarding/session"), { token: tok(users.a), body: { json: { currentStep: 3, progress: 50 } } });
      await call(prod, "function", ep("GET /api/onboarding/session"), { token: tok(users.a) });
      expect(exchanges.filter((e) => e.status === 200 || e.status === 204).length).toBe(13);
    });

    it("production: generation succeeding and failing through the fakes", async () => {
      const gen = ep("POST /api/blog/generate");
      const json = { accept: "application/json" };
      await call(prod, "app", gen, { token: tok(users.a) });
      await call(prod, "function", gen, { token: tok(users.a), headers: json });
      gemini.setMode({ fail: 403 }, keys.b.gemini); // Google quotes the key in this error
      await call(prod, "app", gen, { token: tok(users.b), headers: json });
      await call(prod, "function", gen, { token: tok(users.b) });
      gemini.setMode({ fail: 429, retryAfterSeconds: 4 }, keys.c.gemini);
      exa.setMode({ fail: 401 }, keys.c.exa);
      await call(prod, "app", gen, { token: tok(users.c), headers: json });
      gemini.setMode({ hangAfterChunks: 1 }, keys.c.gemini);
      await call(prodImpatient, "function", gen, { token: tok(users.c) });
      gemini.setMode({ fail: "invalid-key" }, keys.c.gemini);
      await call(prod, "app", gen, { token: tok(users.c) });
      await call(prod, "app", ep("GET /api/usage"), { token: tok(users.a) });
      await Promise.all([gemini.waitForIdle(5_000), exa.waitForIdle(5_000)]);
      expect(gemini.requests.some((r) => r.apiKey === keys.b.gemini)).toBe(true);
      expect(exchanges.map((e) => e.status)).toEqual(expect.arrayContaining([422, 429]));
    });

    it("production: budgets, the data export, account deletion and Clerk's webhook", async () => {
      const d = `user_sec_d_${randomBytes(3).toString("hex")}`;
      const e = `user_sec_e_${randomBytes(3).toString("hex")}`;
      const dKeys = sampleKeys(9_004);
      const eKeys = sampleKeys(9_005);
      own(d, dKeys);
      own(e, eKeys);
      for (const [user, k] of [
        [d, dKeys],
        [e, eKeys],
      ] as const) {
        await call(prod, "app", ep("POST /api/onboarding/api-keys"), { token: tok(user), body: { json: k } });
        await call(prod, "function", ep("PUT /api/usage/budget"), { token: tok(user), body: { json: { monthlyUsd: 3 } } });
        await call(prod, "app", ep("POST /api/blog/generate"), { token: tok(user), headers: { accept: "application/json" } });
      }
      gemini.setMode({ fail: 403 }, dKeys.gemini); // Google quotes the key; the health records a code only
      await call(prod, "function", ep("POST /api/blog/generate"), { token: tok(d), headers: { accept: "application/json" } });
      await call(prod, "app", ep("GET /api/onboarding/api-keys"), { token: tok(d) });
      for (const user of [users.a, d, e]) {
        await call(prod, "function", ep("GET /api/usage/budget"), { token: tok(user) });
        await call(prod, "app", ep("GET /api/me/export"), { token: tok(user) });
        await call(prod, "function", ep("GET /api/me/export"), { token: tok(user) });
      }
      await call(prod, "app", ep("PUT /api/usage/budget"), { token: tok(e), body: { json: { monthlyUsd: 0 } } });
      await call(prod, "app", ep("POST /api/blog/generate"), { token: tok(e), headers: { accept: "application/json" } });
      await call(prod, "app", ep("DELETE /api/me"), { token: tok(d) });
      // Clerk's webhook: unsigned, signed with key-shaped junk, and a real deletion of e.
      const webhook = ep("POST /api/webhooks/clerk");
      await call(prod, "app", webhook, { unsigned: true, body: { json: { type: "user.deleted", data: { id: e } } } });
      await call(prod, "function", webhook, {
        headers: { "svix-id": eKeys.exa, "svix-timestamp": "1", "svix-signature": `v1,${eKeys.gemini}` },
        body: { json: { type: "user.deleted", data: { id: e } } },
      });
      await call(prod, "function", webhook, { body: { json: { type: "user.deleted", object: "event", data: { id: e } } } });
      await call(prod, "app", ep("GET /api/me/export"), { token: tok(e) });
      const statuses = exchanges.slice(-4).map((x) => x.status);
      expect(statuses).toEqual([400, 400, 200, 200]);
      expect(exchanges.some((x) => x.status === 402)).toBe(true);
    });

    it("authentication failures with every kind of bad token, including key-shaped ones", async () => {
      const cases = badTokenCases(signer, users.a);
      for (const c of cases) for (const t of c.tokens) tokens.add(t);
      for (const rt of [prod, prodJwks]) {
        for (const endpoint of [ep("GET /api/onboarding/api-keys"), ep("POST /api/onboarding/api-keys")]) {
          for (const c of cases) {
            const request = await withTokenCase(
              endpointRequest(endpoint, { body: endpoint.method === "POST" ? { json: keys.a } : undefined }),
              c,
            );
            await call(rt, "app", endpoint, {}, `${endpoint.label} [${c.name}]`, request);
          }
        }
      }
      // A provider key where a token belongs.
      badInput(keys.a.gemini);
      await call(prod, "function", ep("GET /api/onboarding/api-keys"), { token: keys.a.gemini });
      await call(prod, "app", ep("GET /api/onboarding/api-keys"), { headers: { cookie: `__session=${keys.a.exa}` } });
      expect(exchanges.filter((e) => e.status === 401).length).toBeGreaterThan(cases.length);
    });

    it("bad inputs carrying key-shaped strings", async () => {
      const k = sampleKeys(9_500);
      const fresh = sampleKeys(9_501);
      badInput(...Object.values(k), ...Object.values(fresh));
      const save = ep("POST /api/onboarding/api-keys");
      const bodies: unknown[] = [
        { gemini: `${k.gemini}\n` + "X" },
        { gemini: `${k.gemini} trailing` },
        { gemini: `"${k.gemini}"` },
        { gemini: `GEMINI_API_KEY=${k.gemini}` },
        { gemini: `${k.gemini}#comment` },
        { gemini: k.gemini, bogus: fresh.gemini },
        { exa: k.gemini },
        { copilotkit: k.exa },
        { gemini: [k.gemini] },
        { gemini: { value: k.gemini } },
        { [k.gemini]: k.gemini },
        { gemini: k.gemini.slice(0, 20) + "\u0000" + k.gemini.slice(20) },
        { copilotkit: `${k.copilotkit}\r\nEXTRA=1` },
        { exa: `${k.exa}\u2028` },
        { gemini: k.gemini, validate: "yes" },
      ];
      for (const [i, body] of bodies.entries()) {
        for (const rt of [prod, dev]) {
          await call(
            rt,
            i % 2 ? "app" : "function",
            save,
            { token: rt === prod ? tok(users.a) : undefined, body: { json: body } },
            `save bad #${i}`,
          );
        }
      }
      const raw = [
        { type: "text/plain", text: `gemini=${k.gemini}` },
        { type: "application/json", text: `{"gemini": "${k.gemini}"` },
        { type: "application/json", text: `{"gemini": "${k.gemini}", "gemini": 1}` },
        { type: "application/json", text: JSON.stringify({ gemini: k.gemini, pad: k.gemini.repeat(500) }) },
      ];
      for (const r of raw) {
        for (const rt of [prod, dev]) {
          await call(
            rt,
            "app",
            save,
            { token: rt === prod ? tok(users.a) : undefined, headers: { "content-type": r.type }, body: { raw: r.text } },
            "save raw bad",
          );
        }
      }
      await call(prod, "app", ep("DELETE /api/onboarding/api-keys"), {
        token: tok(users.a),
        query: `provider=${encodeURIComponent(k.gemini)}`,
      });
      await call(prod, "function", ep("DELETE /api/onboarding/api-keys"), {
        token: tok(users.a),
        query: `provider=gemini&provider=${k.exa}`,
      });
      await call(prod, "app", ep("GET /api/usage"), { token: tok(users.a), query: `from=${k.exa}&to=${encodeURIComponent(k.copilotkit)}` });
      await call(prod, "function", ep("POST /api/blog/generate"), {
        token: tok(users.a),
        body: { json: { topic: k.gemini, keywords: [k.exa], tone: `${k.copilotkit}\u0007` } },
      });
      await call(prod, "app", ep("PUT /api/onboarding/session"), {
        token: tok(users.a),
        body: { json: { currentStep: k.gemini, progress: k.exa } },
      });
      // Key-shaped paths through the route table adapter.
      const save0 = ep("GET /api/onboarding/api-keys");
      for (const path of [`/api/onboarding/api-keys/${k.gemini}`, `/api/${k.exa}`, `/api/onboarding/${k.copilotkit}/x`]) {
        await call(
          prod,
          "app",
          save0,
          {},
          `GET ${path}`,
          new Request(`http://localhost${path}`, { headers: { authorization: `Bearer ${tok(users.a)}` } }),
        );
      }
      expect(exchanges.filter((e) => e.status === 400).length).toBeGreaterThanOrEqual(bodies.length);
    });

    it("development: saving, listing, generating with and deleting the .env keys", async () => {
      own("local-dev", keys.devKeys);
      own("local-dev", keys.dev2);
      await call(dev, "app", ep("POST /api/onboarding/api-keys"), { body: { json: keys.devKeys } });
      await call(dev, "function", ep("POST /api/onboarding/api-keys"), {
        body: { json: { gemini: keys.dev2.gemini, copilotkit: keys.dev2.copilotkit, validate: true } },
      });
      await call(dev, "app", ep("GET /api/onboarding/api-keys"), {});
      await call(dev, "function", ep("POST /api/blog/generate"), {});
      await call(dev, "app", ep("POST /api/blog/generate"), { headers: { accept: "application/json" } });
      await call(dev, "app", ep("DELETE /api/onboarding/api-keys"), { query: "provider=copilotkit" });
      await call(dev, "function", ep("GET /api/onboarding/session"), {});
      expect(readFileSync(dev.envFile, "utf8")).toContain(keys.dev2.gemini); // the dev file does hold keys, by design
    });

    it("a query failing with Drizzle's parameter-bearing error is logged without its SQL or parameters", async () => {
      const keyring = await prod.runtime.keyring();
      await database.rows(sql`alter table api_keys add constraint secrets_battery_block check (false) not valid`);
      try {
        // The hazard is real: the error's message carries the ciphertext parameter.
        const probe = sampleKeys(9_900);
        badInput(...Object.values(probe));
        let thrown: unknown;
        try {
          await storeSaveKeys(database, {
            userId: "user_sec_probe",
            keys: { gemini: probe.gemini },
            validated: new Set(),
            keyring,
            requestId: "req_probe_0001",
          });
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(DrizzleQueryError);
        const message = (thrown as Error).message;
        expect(message).toMatch(/^Failed query:[\s\S]*params: /);
        const leaked = /\b[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/_-]{16}:[A-Za-z0-9+/=_-]{20,}/.exec(message)?.[0];
        expect(leaked, "the probe error should carry a ciphertext").toBeDefined();
        ciphertexts.add(leaked!);

        const failing = sampleKeys(9_901);
        own("user_sec_failing", failing);
        const before = prod.logs.length;
        const ex = await call(prod, "app", ep("POST /api/onboarding/api-keys"), {
          token: tok("user_sec_failing"),
          body: { json: failing },
        });
        expect(ex.status).toBe(500);
        const devBefore = dev.logs.length;
        await call(dev, "function", ep("POST /api/onboarding/api-keys"), { body: { json: failing } });
        const lines = [...prod.logs.slice(before), ...dev.logs.slice(devBefore)];
        expect(lines.some((l) => l.includes("unhandled error"))).toBe(true);
        for (const line of lines) {
          expect(line).not.toMatch(/Failed query|params:|insert into|key_ciphertext/i);
          expect(line).not.toContain(message.slice(0, 60));
        }
      } finally {
        await database.rows(sql`alter table api_keys drop constraint secrets_battery_block`);
      }
    });

    it("no secret in any log line or response; CopilotKit keys only in their owner's key views", () => {
      const logs = [...prod.logs, ...prodJwks.logs, ...prodImpatient.logs, ...dev.logs, ...consoleLines];
      expect(logs.length).toBeGreaterThan(50);
      expect(ciphertexts.size).toBeGreaterThanOrEqual(10);

      // Everything that must never leave: every plaintext (and bad-input) key, token, token
      // signature, ciphertext (and its sealed part), keyring and Clerk secret.
      const never = new Map<string, string>();
      for (const [value, owner] of plaintext) never.set(value, owner === undefined ? "key-shaped bad input" : `plaintext key of ${owner}`);
      for (const token of tokens) {
        if (token.length >= 16) never.set(token, "session token");
        const signature = token.split(".")[2];
        if (signature && signature.length >= 40) never.set(signature, "token signature");
      }
      for (const c of ciphertexts) {
        never.set(c, "ciphertext");
        never.set(c.split(":")[2]!, "sealed part of a ciphertext");
      }
      for (const s of otherSecrets) never.set(s, "server secret");

      const logFindings: string[] = [];
      for (const line of logs)
        for (const [value, what] of never) if (line.includes(value)) logFindings.push(`${what} in log: ${line.slice(0, 300)}`);
      expect(logFindings).toEqual([]);
      // The logger's scrubbing is the second line of defence: the first (never passing a
      // secret to the logger) must hold on its own.
      expect(logs.filter((line) => line.includes("[redacted]"))).toEqual([]);

      const responseFindings: string[] = [];
      let allowedViews = 0;
      for (const ex of exchanges) {
        const everything = [ex.text, ...ex.headers.map(([k, v]) => `${k}: ${v}`)].join("\n");
        for (const [value, what] of never) {
          if (!everything.includes(value)) continue;
          const owners = copilotkitOwners.get(value);
          const keyView = /^(GET|POST) \/api\/onboarding\/api-keys$/.test(ex.target) && ex.status === 200;
          const viewer = keyView ? (JSON.parse(ex.text) as { userId?: string }).userId : undefined;
          if (owners && viewer && owners.has(viewer) && !ex.headers.some(([, v]) => v.includes(value))) {
            allowedViews++;
            continue;
          }
          responseFindings.push(`${what} in response to ${ex.label} (${ex.status}): ${everything.slice(0, 300)}`);
        }
      }
      expect(responseFindings).toEqual([]);
      expect(allowedViews, "the owner's CopilotKit value should have been returned at least once").toBeGreaterThan(0);
      summary = `secrets battery ${backend.name}: ${exchanges.length} responses and ${logs.length} log lines checked against ${never.size} secrets (${plaintext.size} keys, ${tokens.size} tokens, ${ciphertexts.size} ciphertexts)`;
    });

    it("a dump of every table holds no plaintext key and no token", async () => {
      const tables = await database.rows<{ schema: string; name: string }>(sql`
        select table_schema as schema, table_name as name from information_schema.tables
        where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`);
      expect(tables.map((t) => t.name)).toEqual(
        expect.arrayContaining(["api_keys", "onboarding_sessions", "key_events", "usage_events", "rate_limits"]),
      );
      const findings: string[] = [];
      let rows = 0;
      for (const table of tables) {
        const dump = await database.rows(sql.raw(`select * from "${table.schema}"."${table.name}"`));
        rows += dump.length;
        const text = JSON.stringify(dump);
        for (const value of plaintext.keys()) if (text.includes(value)) findings.push(`plaintext key in ${table.schema}.${table.name}`);
        for (const token of tokens) if (token.length >= 16 && text.includes(token)) findings.push(`token in ${table.schema}.${table.name}`);
      }
      expect(findings).toEqual([]);
      expect(rows).toBeGreaterThan(20);
    });
  });
}
