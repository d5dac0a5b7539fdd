/**
 * Isolation under load: 20 users with different keys save them and generate at the same
 * time, in production mode. The fakes' recorded requests must show that every upstream call
 * carried exactly its caller's Gemini and Exa key, and each user's /api/usage must count
 * their own calls and nobody else's.
 *
 * Requests are mapped to users through a per-user marker (`zq07zq`) in the topic, which
 * reaches both Exa's query and Gemini's prompt; topics differ in length so every user's
 * prompt (and so their Gemini input tokens) differs too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { readEvents, validateGenerationEvents } from "../helpers/sse.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

const USERS = 20;
const SEARCHES_PER_USER = 3; // topic, topic + keywords, keywords (three keywords)

const users = Array.from({ length: USERS }, (_, i) => {
  const tag = `zq${String(i).padStart(2, "0")}zq`;
  return {
    index: i,
    tag,
    userId: `user_iso_${i}`,
    keys: sampleKeys(500 + i),
    body: {
      topic: `Isolation study ${tag}${" and more".repeat(i)}`,
      keywords: [`${tag}`, "tenancy", "billing"],
    },
  };
});

/** The user whose marker `text` carries; fails when it carries none or several different ones. */
function ownerOf(text: string): number {
  const tags = new Set([...text.matchAll(/zq(\d\d)zq/g)].map((m) => Number(m[1])));
  if (tags.size !== 1) throw new Error(`expected exactly one user marker, found ${tags.size} in: ${text.slice(0, 200)}`);
  return [...tags][0]!;
}

const { gemini, exa } = useFakeUpstreams();

for (const backend of backends) {
  describe.skipIf(!backend.available)(`isolation under load ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    let rt: TestRuntime;

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({
        database,
        mode: "production",
        env: {
          KEY_ENCRYPTION_KEYS: generateKeyringEntry("iso"),
          GEMINI_BASE_URL: gemini.url,
          EXA_BASE_URL: exa.url,
          UPSTREAM_TIMEOUT_MS: "15000",
        },
      });
      gemini.reset();
      exa.reset();
      // Small latencies make the 20 generations interleave upstream.
      gemini.setMode({ latencyMs: 15 });
      exa.setMode({ latencyMs: 25 });
    });
    afterAll(async () => {
      const logs = rt.logs.join("\n");
      for (const u of users) for (const key of Object.values(u.keys)) expect(logs).not.toContain(key);
      rt.cleanup();
      await database.destroy();
    });

    it(`${USERS} users save keys and generate at the same time; every upstream call carries its caller's keys`, async () => {
      const saved = await Promise.all(
        users.map((u) => rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(u.userId), body: u.keys }))),
      );
      for (const response of saved) await expectStatus(response, 200);

      const results = await Promise.all(
        users.map(async (u) => {
          const response = await rt.fetch(
            new Request("http://localhost/api/blog/generate", {
              method: "POST",
              headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${rt.token(u.userId)}` },
              body: JSON.stringify(u.body),
            }),
          );
          expect(response.status).toBe(200);
          const { events, raw } = await readEvents(response);
          return { requestId: response.headers.get("x-request-id")!, events, raw };
        }),
      );

      // Every generation completed normally.
      for (const [i, result] of results.entries()) {
        validateGenerationEvents(result.events);
        const done = result.events.at(-1);
        expect(done?.event, `user ${i}: ${result.events.map((e) => e.event).join(",")}`).toBe("done");
        expect(done?.data.keySource).toBe("database");
        expect(done?.data.usage.exa.requests).toBe(SEARCHES_PER_USER);
        // No one's stream mentions anyone's key.
        for (const u of users) for (const key of Object.values(u.keys)) expect(result.raw).not.toContain(key);
      }

      // The fakes saw exactly the expected calls, each with its caller's key.
      expect(exa.requests).toHaveLength(USERS * SEARCHES_PER_USER);
      expect(gemini.requests).toHaveLength(USERS);
      // Compared as "whose key" (an index) so a failure names users, not key values.
      const exaKeyOwner = (key: string | undefined) => users.findIndex((u) => u.keys.exa === key);
      const geminiKeyOwner = (key: string | undefined) => users.findIndex((u) => u.keys.gemini === key);
      const exaCalls = new Array<number>(USERS).fill(0);
      for (const r of exa.requests) {
        const owner = ownerOf((r.body as { query: string }).query);
        expect(exaKeyOwner(r.apiKey), `whose exa key user ${owner}'s search carried`).toBe(owner);
        exaCalls[owner]! += 1;
      }
      expect(exaCalls).toEqual(new Array(USERS).fill(SEARCHES_PER_USER));
      const geminiCalls = new Array<number>(USERS).fill(0);
      for (const r of gemini.requests) {
        const body = r.body as { contents: Array<{ parts: Array<{ text: string }> }> };
        const owner = ownerOf(body.contents.flatMap((c) => c.parts.map((p) => p.text)).join("\n"));
        expect(geminiKeyOwner(r.apiKey), `whose gemini key user ${owner}'s writing call carried`).toBe(owner);
        geminiCalls[owner]! += 1;
      }
      expect(geminiCalls).toEqual(new Array(USERS).fill(1));

      // Distinct prompts, so distinct Gemini input tokens: a row billed to the wrong user would show.
      const inputTokens = results.map((r) => r.events.at(-1)!.data.usage.gemini.inputTokens);
      expect(new Set(inputTokens).size).toBe(USERS);

      // Each user's /api/usage counts their calls only, equal to what their own done event reported.
      const summaries = await Promise.all(
        users.map(async (u) => expectStatus(await rt.fetch(request("GET", "/api/usage", { token: rt.token(u.userId) })), 200)),
      );
      for (const [i, summary] of summaries.entries()) {
        const reported = results[i]!.events.at(-1)!.data.usage;
        expect(summary.userId).toBe(users[i]!.userId);
        expect(Object.keys(summary.totals).sort()).toEqual(["exa", "gemini"]);
        expect(summary.totals.gemini).toEqual({
          requests: 1,
          inputTokens: reported.gemini.inputTokens,
          outputTokens: reported.gemini.outputTokens,
          costUsd: reported.gemini.costUsd,
        });
        expect(summary.totals.exa).toEqual({ requests: SEARCHES_PER_USER, inputTokens: 0, outputTokens: 0, costUsd: reported.exa.costUsd });
      }

      // And in the table: every row of a user carries that user's own request id.
      const rows = await database.rows<{ user_id: string; request_id: string; n: string | number }>(
        sql`select user_id, request_id, count(*) as n from usage_events group by user_id, request_id`,
      );
      expect(rows).toHaveLength(USERS);
      for (const row of rows) {
        const i = users.findIndex((u) => u.userId === row.user_id);
        expect(i).toBeGreaterThanOrEqual(0);
        expect(row.request_id).toBe(results[i]!.requestId);
        expect(Number(row.n)).toBe(SEARCHES_PER_USER + 1);
      }
      await Promise.all([gemini.waitForIdle(), exa.waitForIdle()]);
    });
  });
}
