/**
 * ALwrity's wizard steps beyond the keys (lib/compat/alwrity/wizard.ts), on what the replay does
 * not show: the AI steps bill the caller's OWN keys (the fakes record the key of every call they
 * bill) and appear in GET /api/usage; without a key or past the cap they answer a sentence and
 * call no upstream; what the steps keep is exported by GET /api/me/export and removed by
 * DELETE /api/me; GET and HEAD /health answer in both modes without a database.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { openDatabase } from "../../db/client.js";
import { clip, storable } from "../../lib/compat/alwrity/ai.js";
import { stepDataProblems } from "../../lib/onboarding/step-data.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { closedPort } from "../helpers/battery.js";

const ANSWER = JSON.stringify({
  style_analysis: { writing_style: { tone: "calm", voice: "expert" } },
  core_persona: { identity: { persona_name: "The Calm Expert" } },
  platform_personas: { blog: { platform_type: "long form" } },
});

const newUser = (label: string) => `user_alwrity_wiz_${label}_${randomBytes(4).toString("hex")}`;

describe("ALwrity's wizard on the caller's own keys", () => {
  const { gemini, exa } = useFakeUpstreams({ resetEach: true, gemini: { chunks: [ANSWER] } });
  let database: TestDatabase;
  let rt: TestRuntime;

  beforeAll(async () => {
    database = await backends[0]!.open();
    rt = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url } });
  });
  afterAll(async () => {
    rt?.cleanup();
    await database?.destroy();
  });

  const post = (userId: string, path: string, body: unknown) => rt.fetch(request("POST", path, { token: rt.token(userId), body }));
  const get = (userId: string, path: string) => rt.fetch(request("GET", path, { token: rt.token(userId) }));

  it("the website analysis, competitors and persona bill the user's own Gemini and Exa keys, and show in GET /api/usage", async () => {
    const userId = newUser("own");
    const keys = sampleKeys(9101);
    await expectStatus(await post(userId, "/api/onboarding/api-keys", keys), 200);

    const analysis = await expectStatus(
      await post(userId, "/api/onboarding/style-detection/complete", { url: "https://bakery.example.com" }),
      200,
    );
    expect(analysis).toMatchObject({ success: true, key_source: "database", style_analysis: { writing_style: { tone: "calm" } } });
    const competitors = await expectStatus(
      await post(userId, "/api/onboarding/step3/discover-competitors", { user_url: "https://bakery.example.com", num_results: 25 }),
      200,
    );
    expect(competitors.success).toBe(true);
    const persona = await expectStatus(
      await post(userId, "/api/onboarding/step4/generate-personas-async", {
        onboarding_data: {},
        selected_platforms: ["blog"],
        user_preferences: null,
      }),
      200,
    );
    expect(persona).toMatchObject({ status: "completed", key_source: "database" });

    // Every call billed the user's own keys: three Gemini calls, two Exa searches (the persona reads no site).
    expect(gemini.billed.map((b) => b.key)).toEqual([keys.gemini, keys.gemini, keys.gemini]);
    expect(exa.billed.map((b) => b.key)).toEqual([keys.exa, keys.exa]);
    // Exa read the site with text limited, the user's own domain only (and left it out when looking for competitors).
    const [siteSearch, rivalsSearch] = exa.requests.map((r) => r.body as Record<string, any>);
    expect(siteSearch).toMatchObject({ includeDomains: ["bakery.example.com"], contents: { highlights: { maxCharacters: 800 } } });
    expect(rivalsSearch).toMatchObject({ excludeDomains: ["bakery.example.com"] });

    const usage = await expectStatus(await get(userId, "/api/usage"), 200);
    expect(usage.totals.gemini.requests).toBe(3);
    expect(usage.totals.exa.requests).toBe(2);
    expect(usage.totals.gemini.costUsd).toBeGreaterThan(0);
    // The reservations were settled: nothing is left reserved.
    expect(usage.budget.reservedUsd).toBe(0);
    expect(usage.budget.spentUsd).toBeGreaterThan(0);
  });

  it("without a key, or past the monthly cap, the AI steps answer a sentence ALwrity shows and call no upstream", async () => {
    const nobody = newUser("nokeys");
    const refused = await expectStatus(
      await post(nobody, "/api/onboarding/style-detection/complete", { url: "https://x.example.com" }),
      200,
    );
    expect(refused).toEqual({
      success: false,
      code: "missing-provider-key",
      error: "No Gemini API key is saved for your account: configure it in step 1 (API keys) and try again.",
    });
    // ALwrity (websiteUtils.ts:233) turns an error mentioning "API key" into its own sentence about step 1.
    expect(refused.error).toContain("API key");
    const task = await expectStatus(
      await post(nobody, "/api/onboarding/step4/generate-personas-async", { onboarding_data: null, selected_platforms: ["blog"] }),
      200,
    );
    expect(task.status).toBe("failed");
    const polled = await expectStatus(await get(nobody, `/api/onboarding/step4/persona-task/${task.task_id}`), 200);
    expect(polled).toMatchObject({ status: "failed", error: refused.error });

    const capped = newUser("capped");
    await expectStatus(await post(capped, "/api/onboarding/api-keys", sampleKeys(9102)), 200);
    await expectStatus(await rt.fetch(request("PUT", "/api/usage/budget", { token: rt.token(capped), body: { monthlyUsd: 0 } })), 200);
    const over = await expectStatus(await post(capped, "/api/onboarding/style-detection/complete", { url: "https://x.example.com" }), 200);
    expect(over).toMatchObject({ success: false, code: "budget-exceeded", error: expect.stringContaining("monthly cap") });
    // An Exa key alone does not make competitor discovery run without Gemini.
    const rivals = await expectStatus(
      await post(nobody, "/api/onboarding/step3/discover-competitors", { user_url: "https://x.example.com" }),
      200,
    );
    expect(rivals).toMatchObject({ success: false, code: "missing-provider-key" });
    expect(gemini.requests).toEqual([]);
    expect(exa.requests).toEqual([]);
    // Bad input stays a 400 and stores nothing.
    const bad = await post(nobody, "/api/onboarding/style-detection/complete", { url: "javascript:alert(1)" });
    expect(bad.status).toBe(400);
    expect((await expectStatus(await get(nobody, "/api/onboarding/style-detection/session-analyses"), 200)).analyses).toEqual([]);
  });

  it("what the steps keep (business information, analysis, persona) is exported by GET /api/me/export and removed by DELETE /api/me", async () => {
    const userId = newUser("export");
    await expectStatus(await post(userId, "/api/onboarding/api-keys", sampleKeys(9103)), 200);
    await expectStatus(
      await post(userId, "/onboarding/business-info", { user_id: 1, business_description: "Sourdough for cafés", industry: "Food" }),
      200,
    );
    await expectStatus(await post(userId, "/api/onboarding/style-detection/complete", { url: "https://sourdough.example.com" }), 200);
    await expectStatus(
      await post(userId, "/api/onboarding/step4/generate-personas-async", { onboarding_data: {}, selected_platforms: ["blog"] }),
      200,
    );
    // Kept without completing a step: the session is still at step 1.
    expect((await expectStatus(await get(userId, "/api/onboarding/status"), 200)).current_step).toBe(1);

    const exported = await expectStatus(await get(userId, "/api/me/export"), 200);
    const steps = Object.fromEntries(exported.onboardingSteps.map((s: { step: number; data: unknown }) => [s.step, s.data]));
    expect(steps[2]).toMatchObject({
      business_info: { business_description: "Sourdough for cafés", industry: "Food" },
      style_analysis: { website_url: "https://sourdough.example.com" },
    });
    expect(steps[4]).toMatchObject({ persona: { core_persona: { identity: { persona_name: "The Calm Expert" } } } });
    // All of it is step data ALwrity may post back: the persona task's id is no UUID (an Exa key's shape).
    expect(steps[4].persona_task.task_id).toMatch(/^task_[0-9a-f]{32}$/);
    for (const step of exported.onboardingSteps) expect(stepDataProblems(step.data), `step ${step.step}`).toEqual([]);

    await expectStatus(await rt.fetch(request("DELETE", "/api/me", { token: rt.token(userId) })), 204);
    const after = await expectStatus(await get(userId, "/api/me/export"), 200);
    expect(after.onboardingSteps).toEqual([]);
    expect(await expectStatus(await get(userId, "/api/onboarding/style-detection/session-analyses"), 200)).toEqual({
      success: true,
      analyses: [],
    });
    expect(await expectStatus(await get(userId, "/api/onboarding/step4/persona-latest"), 200)).toEqual({ success: false, persona: null });
  });

  it("business information is validated and bounded: empty, too long or with control characters is a 400 and changes nothing", async () => {
    const userId = newUser("bad");
    for (const body of [
      { business_description: "" },
      { business_description: "x".repeat(2_001) },
      { business_description: "ok", industry: "a\u0000b" },
      { business_description: "ok", extra: true },
    ]) {
      const response = await post(userId, "/onboarding/business-info", body);
      expect(response.status, JSON.stringify(body).slice(0, 60)).toBe(400);
    }
    expect((await expectStatus(await get(userId, "/api/me/export"), 200)).onboardingSteps).toEqual([]);
  });
});

/** An Exa key's shape (any UUID): the step-data check refuses it anywhere in step data. */
const UUID = "3f2a9c1e-8b7d-4e6f-9a1b-2c3d4e5f6a7b";
const EMOJI = "\u{1F600}"; // two UTF-16 code units: a cut between them leaves a lone surrogate
/** What the model answers for the competitors: an emoji straddling each limit the wizard cuts at, a key shape, a NUL. */
const RIVALS_ANSWER = JSON.stringify({
  market_insights: `${"m".repeat(299)}${EMOJI} and more`, // cut at 300
  key_findings: [`${"k".repeat(119)}${EMOJI}`, `see ${UUID} for details`, "nul\u0000inside"], // cut at 120
  competitors: [{ business_model: `${"b".repeat(89)}${EMOJI}`, target_audience: "bakers" }], // cut at 90
});

/**
 * A stand-in for Exa's /search answering one page as Exa may: its URL holding a UUID, a NUL in its
 * title, an emoji straddling the 160 characters the wizard keeps of its text.
 */
async function startRivalExa(): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          requestId: "rival-search",
          results: [
            {
              id: `https://rival.example/posts/${UUID}`,
              url: `https://rival.example/posts/${UUID}`,
              title: "Rival\u0000 Bakery",
              publishedDate: "2025-01-02T00:00:00.000Z",
              highlights: [`${"s".repeat(159)}${EMOJI} fresh bread every day.`],
            },
          ],
          costDollars: { total: 0.007 },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("what the AI steps keep from Exa and the model is step data ALwrity can post back", () => {
  const { gemini } = useFakeUpstreams({ resetEach: true, gemini: { chunks: [RIVALS_ANSWER] } });
  let database: TestDatabase;
  let rt: TestRuntime;
  let rivalExa: Awaited<ReturnType<typeof startRivalExa>>;

  beforeAll(async () => {
    database = await backends[0]!.open();
    rivalExa = await startRivalExa();
    rt = makeRuntime({ database, mode: "production", env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: rivalExa.url } });
  });
  afterAll(async () => {
    rt?.cleanup();
    await rivalExa?.close();
    await database?.destroy();
  });

  const post = (userId: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    rt.fetch(request("POST", path, { token: rt.token(userId), body, headers }));

  it("a competitor URL with a UUID and text cut inside an emoji: answered 200, kept, and accepted back as step 3's data", async () => {
    const userId = newUser("rivals");
    await expectStatus(await post(userId, "/api/onboarding/api-keys", sampleKeys(9104)), 200);
    const found = await expectStatus(
      await post(userId, "/api/onboarding/step3/discover-competitors", { user_url: "https://bakery.example.com" }),
      200,
    );
    expect(found.success, JSON.stringify(found).slice(0, 300)).toBe(true);
    const [rival] = found.competitors;
    expect(rival).toMatchObject({
      url: "https://rival.example/posts/[redacted]",
      domain: "rival.example",
      title: "Rival Bakery",
      summary: "s".repeat(159), // the emoji the cut would split is dropped whole
      competitive_insights: { business_model: "b".repeat(89), target_audience: "bakers" },
    });
    expect(found.research_summary).toMatchObject({
      market_insights: "m".repeat(299),
      key_findings: ["k".repeat(119), "see [redacted] for details", "nulinside"],
    });
    // Everything answered passes the step-data check, and was kept.
    expect(stepDataProblems(found)).toEqual([]);
    const exported = await expectStatus(await rt.fetch(request("GET", "/api/me/export", { token: rt.token(userId) })), 200);
    const step3 = exported.onboardingSteps.find((s: { step: number }) => s.step === 3);
    expect(step3.data.competitor_research).toMatchObject({ competitors: found.competitors, research_summary: found.research_summary });

    // ALwrity's Continue (CompetitorAnalysisStep.tsx) posts them back unchanged as step 3's data: accepted.
    const data = {
      competitors: found.competitors,
      researchSummary: found.research_summary,
      sitemapAnalysis: null,
      userUrl: "",
      analysisTimestamp: new Date().toISOString(),
      stepType: "research",
    };
    await expectStatus(await post(userId, "/api/onboarding/step/3/complete", { data, validation_errors: [] }), 200);
  });

  it("the wizard's usage rows carry the server's own request id beside the client's", async () => {
    const userId = newUser("serverid");
    await expectStatus(await post(userId, "/api/onboarding/api-keys", sampleKeys(9105)), 200);
    const chosen = "trace-chosen-by-alwrity-01";
    const found = await expectStatus(
      await post(
        userId,
        "/api/onboarding/step3/discover-competitors",
        { user_url: "https://bakery.example.com" },
        { "x-request-id": chosen },
      ),
      200,
    );
    expect(found.success).toBe(true);
    const rows = await database.rows<{ provider: string; request_id: string; server_request_id: string | null }>(
      sql`select provider, request_id, server_request_id from usage_events where user_id = ${userId} order by id`,
    );
    expect(rows.map((r) => r.provider).sort()).toEqual(["exa", "gemini"]);
    for (const row of rows) {
      expect(row.request_id).toBe(chosen);
      expect(row.server_request_id).toMatch(/^req_[0-9a-f]{24}$/);
    }
    expect(new Set(rows.map((r) => r.server_request_id)).size).toBe(1);
  });

  it("a website address step data may not hold (a UUID in it) is a 400 before anything is called or billed", async () => {
    const userId = newUser("uuidsite");
    await expectStatus(await post(userId, "/api/onboarding/api-keys", sampleKeys(9106)), 200);
    for (const [path, body] of [
      ["/api/onboarding/style-detection/complete", { url: `https://bakery.example.com/${UUID}` }],
      ["/api/onboarding/step3/discover-competitors", { user_url: `https://bakery.example.com/${UUID}` }],
    ] as const) {
      const response = await post(userId, path, body);
      expect(response.status, path).toBe(400);
      expect(await response.text()).not.toContain(UUID);
    }
    expect(gemini.requests).toEqual([]);
    const usage = await expectStatus(await rt.fetch(request("GET", "/api/usage", { token: rt.token(userId) })), 200);
    expect(usage.totals.gemini?.requests ?? 0).toBe(0);
  });
});

describe("clip and storable (lib/compat/alwrity/ai.ts)", () => {
  it("never split a surrogate pair, and drop NUL and lone surrogates anywhere", () => {
    expect(clip(`ab${EMOJI}`, 3)).toBe("ab");
    expect(clip(`ab${EMOJI}`, 4)).toBe(`ab${EMOJI}`);
    expect(clip("a\u0000b\ud800c\udc00d", 10)).toBe("abcd");
    expect(clip("\u0000".repeat(5) + "xyz", 2)).toBe("xy");
    expect(clip("", 5)).toBe("");
  });

  it("storable: clipped, then nothing key-shaped (a cut that completes a shape is caught too), never longer", () => {
    expect(storable(`${UUID}x`, 36)).toBe("[redacted]");
    expect(storable(`id ${UUID} and ${EMOJI}`, 100)).toBe(`id [redacted] and ${EMOJI}`);
    for (const text of [`${UUID}${EMOJI}`, `AIza${"A".repeat(20)}\u0000`, `x${"\ud83d".repeat(3)}`]) {
      for (let n = 0; n <= text.length; n++) {
        const out = storable(text, n);
        expect(out.length).toBeLessThanOrEqual(Math.max(n, 0));
        expect(stepDataProblems(out)).toEqual([]);
      }
    }
  });
});

describe("GET and HEAD /health (ALwrity's App.tsx)", () => {
  it("answer 200 in both modes with no database query: even with the database down", async () => {
    const down = await openDatabase({ driver: "pg", url: `postgres://postgres@127.0.0.1:${await closedPort()}/byok` });
    try {
      for (const mode of ["development", "production"] as const) {
        const rt = makeRuntime({ database: down, mode });
        try {
          const body = await expectStatus(await rt.fetch(new Request("http://localhost/health")), 200);
          expect(body).toMatchObject({ status: "healthy", service: "byok-functions" });
          expect(Object.keys(body).sort()).toEqual(["service", "status", "timestamp"]);
          const head = await rt.fetch(new Request("http://localhost/health", { method: "HEAD" }));
          expect(head.status, mode).toBe(200);
          expect(await head.text()).toBe("");
          // The service's own health does look at the database.
          expect((await rt.fetch(new Request("http://localhost/api/health"))).status).toBe(503);
        } finally {
          rt.cleanup();
        }
      }
    } finally {
      await down.close();
    }
  });
});
