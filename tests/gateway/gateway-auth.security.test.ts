/**
 * Who may call the gateway, and what it forwards (fail closed):
 * - a session acts for its own user only: naming another user is 404, and nothing is
 *   counted, reserved or sent; a service credential must name the user, and one unknown,
 *   revoked or past its rotation's grace is 401 with nothing counted or audited; only its
 *   SHA-256 is stored;
 * - models outside the allow-list (retired, unknown) and paths outside it are 404; bodies the
 *   gateway cannot meter (a fileData part, cachedContent, more than one candidate, other tools,
 *   Exa subpages) are 400; bodies over 256 KiB are 413; all before any upstream call;
 * - `maxOutputTokens` is clamped (or set) to the gateway's bound before it is forwarded;
 * - the gateway's own per-user rate limit holds (429 before any upstream call);
 * - an upstream refusal passes through with the user's key scrubbed out, and the key's
 *   health is recorded (rejected).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { issueCredential, revokeCredential, rotateCredential } from "../../lib/gateway/credentials.js";
import { GATEWAY_MAX_OUTPUT_TOKENS } from "../../lib/gateway/pricing.js";
import { auditRows, ledger, newUser as newGatewayUser, settled } from "./gateway-kit.js";

const GEMINI = "/api/gateway/gemini/v1beta/models";
const generate = (model = "gemini-3.5-flash") => `${GEMINI}/${model}:generateContent`;
const body = { contents: [{ role: "user", parts: [{ text: "hello" }] }] };

for (const backend of backends) {
  describe.skipIf(!backend.available)(`gateway callers and bodies ${backendLabel(backend)}`, () => {
    const { gemini, exa } = useFakeUpstreams({ resetEach: true });
    let database: TestDatabase;
    let rt: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({
        database,
        mode: "production",
        env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url, RATE_LIMIT_GATEWAY_PER_MINUTE: "3" },
      });
    });
    afterAll(async () => {
      rt?.cleanup();
      await database?.destroy();
    });

    const newUser = (seed: number) => newGatewayUser(rt, "user_gwa", seed);
    const rateLimitRows = async (userId: string) =>
      (await database.rows<{ count: number }>(sql`select count from rate_limits where user_id = ${userId} and bucket = 'gateway'`))[0]
        ?.count ?? 0;
    const problem = async (response: Response, status: number) => (await expectStatus(response, status)) as { code?: string; type: string };

    it("a session names another user: 404, nothing counted, reserved or sent for either", async () => {
      const a = await newUser(23_201);
      const b = await newUser(23_202);
      const response = await rt.fetch(request("POST", generate(), { token: a.token, body, headers: { "x-byok-user": b.userId } }));
      await problem(response, 404);
      expect(gemini.requests).toHaveLength(0);
      for (const user of [a, b]) {
        expect(await auditRows(database, user.userId)).toEqual([]);
        expect((await ledger(database, user.userId)).reservedUsd).toBe(0);
      }
      // Naming oneself is fine.
      await expectStatus(await rt.fetch(request("POST", generate(), { token: a.token, body, headers: { "x-byok-user": a.userId } })), 200);
      expect(gemini.requests.map((r) => r.apiKey)).toEqual([a.keys.gemini]);
    });

    it("service credentials: only the hash is stored; unknown, revoked or past grace is 401 with nothing counted or audited; rotation overlaps", async () => {
      const a = await newUser(23_203);
      const issued = await issueCredential(database, "backend");
      const [stored] = await database.rows<{ secret_hash: string }>(
        sql`select secret_hash from service_credentials where id = ${issued.view.id}`,
      );
      // `bks_` + 16 hex digits + `_`, then the secret (base64url, which may itself hold `_`).
      const secret = issued.credential.slice("bks_".length + 16 + 1);
      expect(secret).toHaveLength(43);
      expect(stored!.secret_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(await database.rows(sql`select * from service_credentials`))).not.toContain(secret);

      const call = (credential: string, actsFor?: string) =>
        rt.fetch(request("POST", generate(), { token: credential, body, ...(actsFor ? { headers: { "x-byok-user": actsFor } } : {}) }));
      // Without naming the user: 401.
      await problem(await call(issued.credential), 401);
      // A well-formed credential that was never issued, and one with a wrong secret: 401.
      const forged = `${issued.credential.slice(0, -4)}AAAA`;
      await problem(await call(forged, a.userId), 401);
      await problem(await call("bks_0123456789abcdef_" + "A".repeat(43), a.userId), 401);
      expect(gemini.requests).toHaveLength(0);
      expect(await rateLimitRows(a.userId)).toBe(0);
      expect(await auditRows(database, a.userId)).toEqual([]);

      // Rotation: the new one works, the old one until its grace ends.
      const rotated = await rotateCredential(database, issued.view.id, 3_600);
      expect(rotated).toBeDefined();
      await expectStatus(await call(rotated!.credential, a.userId), 200);
      await expectStatus(await call(issued.credential, a.userId), 200);
      // Revoked now: 401, nothing sent.
      await revokeCredential(database, issued.view.id);
      gemini.reset();
      await problem(await call(issued.credential, a.userId), 401);
      expect(gemini.requests).toHaveLength(0);
      expect(rt.logs.join("\n")).not.toContain(secret);
      expect(rt.logs.join("\n")).not.toContain(rotated!.credential);
    });

    it("models and paths outside the allow-list, bodies it cannot meter and bodies over 256 KiB are refused before any upstream call", async () => {
      const a = await newUser(23_204);
      const send = (path: string, payload: unknown) => rt.fetch(request("POST", path, { token: a.token, body: payload }));
      await problem(await send(generate("gemini-2.5-flash"), body), 404); // retired
      await problem(await send(generate("some-other-model"), body), 404);
      await problem(await send(`${GEMINI}/gemini-3.5-flash:embedContent`, body), 404);
      await problem(await send(`${GEMINI}/gemini-3.5-flash:streamGenerateContent`, body), 400); // no alt=sse
      await problem(await send("/api/gateway/exa/research", { query: "x" }), 404);
      const fileData = { contents: [{ role: "user", parts: [{ fileData: { mimeType: "video/mp4", fileUri: "https://x/y" } }] }] };
      await problem(await send(generate(), fileData), 400);
      await problem(await send(generate(), { ...body, cachedContent: "cachedContents/abc" }), 400);
      await problem(await send(generate(), { ...body, generationConfig: { candidateCount: 2 } }), 400);
      await problem(await send(generate(), { ...body, tools: [{ googleSearch: {} }] }), 400);
      await problem(await send("/api/gateway/exa/search", { query: "x", contents: { subpages: 5 } }), 400);
      await problem(await send("/api/gateway/exa/answer", { query: "x", stream: true }), 400);
      const huge = { contents: [{ role: "user", parts: [{ text: "x".repeat(300 * 1024) }] }] };
      await problem(await send(generate(), huge), 413);
      expect(gemini.requests).toHaveLength(0);
      expect(exa.requests).toHaveLength(0);
      // Refused before the statement: nothing counted, reserved or audited.
      expect(await ledger(database, a.userId)).toEqual({ spentUsd: 0, reservedUsd: 0 });
      expect(await auditRows(database, a.userId)).toEqual([]);
      expect(await rateLimitRows(a.userId)).toBe(0);
    });

    it("maxOutputTokens is clamped, or set when absent, before it is forwarded; a 20 KiB prompt (over the API's 16 KiB) is taken", async () => {
      const a = await newUser(23_205);
      await expectStatus(
        await rt.fetch(
          request("POST", generate(), {
            token: a.token,
            body: { ...body, generationConfig: { maxOutputTokens: 1_000_000, temperature: 0.2 } },
          }),
        ),
        200,
      );
      await expectStatus(
        await rt.fetch(
          request("POST", generate(), { token: a.token, body: { contents: [{ role: "user", parts: [{ text: "y".repeat(20 * 1024) }] }] } }),
        ),
        200,
      );
      const configs = gemini.requests.map(
        (r) => (r.body as { generationConfig: { maxOutputTokens: number; temperature?: number } }).generationConfig,
      );
      expect(configs).toEqual([
        { maxOutputTokens: GATEWAY_MAX_OUTPUT_TOKENS, temperature: 0.2 },
        { maxOutputTokens: GATEWAY_MAX_OUTPUT_TOKENS },
      ]);
    });

    it("the per-user gateway rate limit answers 429 before any upstream call", async () => {
      const a = await newUser(23_206);
      for (let i = 0; i < 3; i++) await expectStatus(await rt.fetch(request("POST", generate(), { token: a.token, body })), 200);
      const limited = await rt.fetch(request("POST", generate(), { token: a.token, body }));
      await problem(limited, 429);
      expect(gemini.requests).toHaveLength(3);
      expect((await auditRows(database, a.userId)).map((r) => r.outcome).at(-1)).toBe("rate-limited");
    });

    it("the provider's own 429 passes through with its Retry-After and without this service's RateLimit headers", async () => {
      const a = await newUser(23_215);
      const ours = await rt.fetch(request("POST", generate(), { token: a.token, body }));
      expect(ours.status).toBe(200);
      await ours.text();
      expect(ours.headers.get("ratelimit")).toBeTruthy();
      exa.setMode({ fail: 429, retryAfterSeconds: 17 }, a.keys.exa);
      const theirs = await rt.fetch(request("POST", "/api/gateway/exa/search", { token: a.token, body: { query: "x", numResults: 2 } }));
      expect(theirs.status).toBe(429);
      await theirs.text();
      expect(theirs.headers.get("retry-after")).toBe("17");
      expect(theirs.headers.get("ratelimit")).toBeNull();
      expect(theirs.headers.get("ratelimit-policy")).toBeNull();
    });

    it("usage rows carry the server's own request id beside the client's", async () => {
      const a = await newUser(23_216);
      const response = await rt.fetch(
        request("POST", generate(), { token: a.token, body, headers: { "x-request-id": "client-chosen-id" } }),
      );
      expect(response.status).toBe(200);
      await response.text();
      await settled(database, a.userId);
      const rows = await database.rows<{ request_id: string; server_request_id: string | null }>(
        sql`select request_id, server_request_id from usage_events where user_id = ${a.userId}`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.request_id).toBe("client-chosen-id");
      expect(rows[0]!.server_request_id).toMatch(/^req_[0-9a-f]{24}$/);
    });

    it("Exa refusing the key: its 401 reaches the caller, the key is marked rejected, nothing is charged", async () => {
      const a = await newUser(23_210);
      exa.setMode({ fail: 401 }, a.keys.exa);
      const response = await rt.fetch(request("POST", "/api/gateway/exa/search", { token: a.token, body: { query: "x", numResults: 2 } }));
      expect(response.status).toBe(401);
      expect(JSON.parse(await response.text())).toMatchObject({ tag: "INVALID_API_KEY" });
      await settled(database, a.userId);
      const [key] = await database.rows<{ status: string | null; last_error_reason: string | null }>(sql`
        select k.status, k.last_error_reason from api_keys k join onboarding_sessions s on s.id = k.session_id
        where s.user_id = ${a.userId} and k.provider = 'exa'`);
      expect(key).toEqual({ status: "rejected", last_error_reason: "key-invalid" });
      expect(await ledger(database, a.userId)).toEqual({ spentUsd: 0, reservedUsd: 0 });
      expect((await auditRows(database, a.userId)).map((r) => [r.outcome, r.upstream_status])).toEqual([["upstream-error", 401]]);
    });

    it("the export lists the user's gateway audit rows; deleting the account deletes them, and no other user's", async () => {
      const a = await newUser(23_208);
      const b = await newUser(23_209);
      for (const user of [a, b]) await expectStatus(await rt.fetch(request("POST", generate(), { token: user.token, body })), 200);
      await settled(database, a.userId);
      const exported = await expectStatus(await rt.fetch(request("GET", "/api/me/export", { token: a.token })), 200);
      expect(
        exported.gatewayCalls.map((c: { caller: string; operation: string; outcome: string }) => [c.caller, c.operation, c.outcome]),
      ).toEqual([["session", "generateContent", "ok"]]);
      await expectStatus(await rt.fetch(request("DELETE", "/api/me", { token: a.token })), 204);
      expect(await auditRows(database, a.userId)).toEqual([]);
      expect(await auditRows(database, b.userId)).toHaveLength(1);
    });

    it("an upstream refusal passes through with the key scrubbed out, and the key's health becomes rejected", async () => {
      const a = await newUser(23_207);
      gemini.setMode({ fail: 403 }, a.keys.gemini); // Google quotes the key in this one
      const response = await rt.fetch(request("POST", generate(), { token: a.token, body }));
      const text = await response.text();
      expect(response.status).toBe(403);
      expect(text).not.toContain(a.keys.gemini);
      expect(text).toContain("[redacted]");
      expect(JSON.parse(text).error.status).toBe("PERMISSION_DENIED");
      await settled(database, a.userId);
      const [key] = await database.rows<{ status: string | null; last_error_reason: string | null }>(sql`
        select k.status, k.last_error_reason from api_keys k join onboarding_sessions s on s.id = k.session_id
        where s.user_id = ${a.userId} and k.provider = 'gemini'`);
      expect(key).toEqual({ status: "rejected", last_error_reason: "key-suspended" });
      expect((await ledger(database, a.userId)).spentUsd).toBe(0);
      expect(rt.logs.join("\n")).not.toContain(a.keys.gemini);
    });
  });
}
