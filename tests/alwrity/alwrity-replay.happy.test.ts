/**
 * ALwrity's onboarding frontend, replayed unchanged (tests/alwrity/client.ts cites each call's
 * file and line at AJaySi/ALwrity b1ebe10): its API-key step with the auto-save on every edit,
 * the parallel saves, prefill, step completion, init/status/progress, the final step and
 * completion, for two users at once, in both modes, in-process, through the local server and
 * through the Lambda handler.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { userApiKeys } from "../../lib/keys/resolver.js";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { expectStatus, makeRuntime, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { AlwrityApi, ApiKeyStep, type AxiosLikeError, openTransport, transportNames, unreplayed } from "./client.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";

/** What the fake Gemini answers every AI step: one JSON object with the keys each step reads. */
const AI_ANSWER = JSON.stringify({
  style_analysis: {
    writing_style: { tone: "warm and practical", voice: "first person plural", complexity: "simple", engagement_level: "high" },
    target_audience: { demographics: ["café owners"], expertise_level: "beginner" },
  },
  style_guidelines: { guidelines: ["Short sentences"], best_practices: ["Show the bread"] },
  style_patterns: { style_consistency: "high", unique_elements: ["recipes"] },
  market_insights: "a crowded local market",
  key_findings: ["bakeries blog weekly"],
  competitors: [{ business_model: "retail bakery", target_audience: "families" }],
  core_persona: { identity: { persona_name: "The Friendly Baker", archetype: "Mentor" }, tonal_range: { permissible_tones: ["warm"] } },
  platform_personas: { linkedin: { platform_type: "professional" }, blog: { platform_type: "long form" } },
});

const modes = ["production", "development"] as const;
type Mode = (typeof modes)[number];

const newUser = (label: string) => `user_alwrity_${label}_${randomBytes(4).toString("hex")}`;
const hint = (key: string) => "…" + key.slice(-4);
/** sampleKeys with a Gemini key whose last characters differ per seed too (so hints differ between users). */
const keysFor = (seed: number) => {
  const keys = sampleKeys(seed);
  return { ...keys, gemini: keys.gemini.slice(0, -5) + seed.toString(16).padStart(5, "0") };
};

/**
 * Waits so the next requests fall in one rate-limit minute (the window is the database's clock
 * minute); a test calling it gets the minute's worth of waiting in its own timeout.
 */
async function awayFromWindowEnd(database: TestDatabase): Promise<void> {
  const [clock] = await database.rows<{ s: number }>(sql`select extract(second from now())::float8 as s`);
  if (Number(clock!.s) > 45) await new Promise((resolve) => setTimeout(resolve, (61 - Number(clock!.s)) * 1000));
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`ALwrity's frontend, replayed ${backendLabel(backend)}`, () => {
    let database: TestDatabase;
    const rts = {} as Record<Mode, TestRuntime>;
    let frontendEnv: string;
    const { gemini, exa } = useFakeUpstreams({ gemini: { chunks: ["```json\n", AI_ANSWER, "\n```"] } });

    beforeAll(async () => {
      database = await backend.open();
      frontendEnv = join(mkdtempSync(join(tmpdir(), "byok-alwrity-frontend-")), ".env");
      writeFileSync(frontendEnv, "# ALwrity frontend\nREACT_APP_API_URL=http://localhost:3000\n");
      const upstreams = { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url };
      rts.production = makeRuntime({ database, mode: "production", env: upstreams });
      rts.development = makeRuntime({ database, mode: "development", env: { FRONTEND_ENV_FILE: frontendEnv, ...upstreams } });
    });
    afterAll(async () => {
      for (const rt of Object.values(rts)) rt.cleanup();
      await database?.destroy();
    });

    const events = async (userId: string) =>
      (
        await database.rows<{ provider: string; action: string }>(
          sql`select provider, action from key_events where user_id = ${userId} order by id`,
        )
      ).map((e) => `${e.provider}:${e.action}`);
    const windows = async (userId: string) =>
      Object.fromEntries(
        (await database.rows<{ bucket: string; count: number }>(sql`select bucket, count from rate_limits where user_id = ${userId}`)).map(
          (r) => [r.bucket, Number(r.count)],
        ),
      );

    /** The keys the user's requests would run with (production: the database; development: the list's hints). */
    async function expectSavedKeys(rt: TestRuntime, userId: string, keys: ReturnType<typeof keysFor>): Promise<void> {
      if (rt.runtime.config.mode === "production") {
        expect((await userApiKeys(rt.runtime, userId)).keys).toEqual(keys);
        return;
      }
      const list = await expectStatus(await rt.fetch(request("GET", "/api/onboarding/api-keys", { token: rt.token(userId) })), 200);
      expect(list.keys.map((k: { hint: string }) => k.hint)).toEqual([hint(keys.gemini), hint(keys.exa), hint(keys.copilotkit)]);
      expect(list.keys[2].value).toBe(keys.copilotkit);
    }

    for (const mode of modes) {
      for (const transportName of transportNames) {
        it(`${mode} via ${transportName}: two users at once go through the whole wizard and each reads back only their own`, {
          timeout: 90_000,
        }, async () => {
          await awayFromWindowEnd(database); // the rate-limit windows it counts must not roll over mid-test
          const rt = rts[mode];
          const transport = await openTransport(transportName, rt);
          try {
            const wizard = async (userId: string, seed: number) => {
              const api = new AlwrityApi(transport, () => rt.token(userId));
              const keys = keysFor(seed);

              // App.tsx:144 the app's first call, before anything renders (no /api prefix) and before any sign-in: no token.
              expect(await api.health()).toMatchObject({ status: "healthy" });
              expect(api.log.at(-1)).toMatchObject({ method: "GET", path: "/health", authorized: false });
              // C:112 then the onboarding context: user never null, step 1, nothing done.
              const first = await api.init();
              expect(first.user).toMatchObject({ id: userId, clerk_user_id: userId });
              expect(first.onboarding).toMatchObject({ current_step: 1, completion_percentage: 0, is_completed: false });
              expect(first.onboarding.steps).toHaveLength(6);

              // U:25 the step mounts and prefills: nothing saved yet.
              const step = new ApiKeyStep(api);
              expect(await step.loadExistingKeys()).toEqual({ gemini: "", exa: "", copilotkit: "" });

              // Paste Gemini and Exa, type CopilotKit key by key: from the first keystroke of the
              // third field, every edit auto-saves all three at once (U:~255-285).
              await step.paste("gemini", keys.gemini);
              await step.paste("exa", keys.exa);
              await step.type("copilotkit", keys.copilotkit);
              const answers = step.autoSaves.flat();
              expect(answers.length).toBe(3 * keys.copilotkit.length);
              for (const answer of answers) {
                expect([200, 400], JSON.stringify(answer)).toContain(answer.status);
                if (answer.status === 400) {
                  expect(answer.data.code).toBe("invalid-key-format");
                  expect(typeof answer.data.detail).toBe("string");
                  expect(answer.provider).toBe("copilotkit");
                }
              }
              expect(step.localStorageCopilotkit).toBe(keys.copilotkit);
              await expectSavedKeys(rt, userId, keys);
              // Gemini and Exa saved once; CopilotKit at its first well-formed length, then replaced by each
              // longer one: one typing run, with one audit row (for its first edit).
              const validLengths = keys.copilotkit.length - "ck_pub_".length - 20 + 1;
              // (Gemini's and Exa's first saves ran in parallel: their order is either.)
              expect((await events(userId)).sort()).toEqual(["copilotkit:save", "exa:save", "gemini:save", "copilotkit:replace"].sort());
              // Counted: the first save of each key (three requests); the longer CopilotKit keys were typing edits.
              expect(await windows(userId)).toEqual({ "key-writes": 3, "key-edits": validLengths - 1 });

              // The wizard's Continue (WizardNavigation → Wizard.tsx:296 handleNext), enabled once the three fields
              // are filled. At b1ebe10 ApiKeyStep.tsx:45 takes useApiKeyStep's handleContinue and renders nothing that
              // calls it, so Continue sends nothing: no step data, "skipping backend completion for step 1". The keys
              // are saved already (the auto-save); the session stays at step 1 until step 2 is completed.
              const auditBefore = await events(userId);
              expect(step.wizardContinue()).toBe(true);
              expect(await events(userId)).toEqual(auditBefore);
              expect(await windows(userId)).toEqual({ "key-writes": 3, "key-edits": validLengths - 1 });
              expect(await api.getCurrentStep()).toEqual({ step: 1 });
              const session = await expectStatus(
                await rt.fetch(request("GET", "/api/onboarding/session", { token: rt.token(userId) })),
                200,
              );
              expect(session).toMatchObject({ currentStep: 1, progress: 0, apiKeysComplete: true });
              // A reload here shows the step-1 fields again: hints for Gemini and Exa, the CopilotKit key in full.
              expect(await new ApiKeyStep(api).loadExistingKeys()).toEqual({
                gemini: hint(keys.gemini),
                exa: hint(keys.exa),
                copilotkit: keys.copilotkit,
              });

              // Step 2 (WebsiteStep): the prefill, the URL check as the user types, the analysis on
              // the user's own keys, then Continue (Wizard.handleNext: step/2/complete, then status).
              const website = `https://${userId.replace(/_/g, "-")}.example.com`;
              const business = seed % 2 === 0; // the second user has no website: business information instead
              let step2: Record<string, unknown>;
              expect(await api.sessionAnalyses()).toEqual({ success: true, analyses: [] });
              if (!business) {
                expect(await api.checkExisting(website)).toEqual({ exists: false });
                const analysed = await api.performAnalysis(website);
                expect(analysed.success, JSON.stringify(analysed.result)).toBe(true);
                // Two signed-in users: each runs on their own saved keys in development too (only the
                // developer's requests without a session token use the .env keys).
                expect(analysed.result.key_source).toBe("database");
                expect(analysed.analysis.writing_style.tone).toBe("warm and practical");
                expect(Array.isArray(analysed.analysis.target_audience.demographics)).toBe(true);
                // A revisit of the step finds it: prefill, the URL check, and the analysis by id.
                expect((await api.sessionAnalyses()).analyses[0]).toMatchObject({ website_url: website });
                const existing = await api.checkExisting(website);
                expect(existing).toMatchObject({ exists: true, analysis_id: 1 });
                expect((await api.loadExistingAnalysis(existing.analysis_id)).analysis.writing_style.tone).toBe("warm and practical");
                step2 = { website, domainName: "Example", analysis: analysed.analysis, useAnalysisForGenAI: true };
              } else {
                const saved = await api.saveBusinessInfo({ business_description: `Bakery of ${userId}`, industry: "Food" });
                expect(saved).toMatchObject({ id: 1, business_description: `Bakery of ${userId}`, industry: "Food" });
                step2 = { website: null, domainName: "", analysis: null, useAnalysisForGenAI: true, businessData: saved };
              }
              // Continue: the business form hands its data to the wizard (WebsiteStep.tsx:408), which completes step 2.
              // After an analysis the step hands nothing (its handleContinue, WebsiteStep.tsx:377, has no button):
              // the wizard's Continue sends no request, and the analysis stays where the analysis call kept it.
              const wizardData: Record<string, unknown> = business ? step2 : {};
              if (business) {
                await api.setCurrentStep(2, step2);
                expect(await api.getCurrentStep()).toEqual({ step: 3 });
              }

              // Step 3 (CompetitorAnalysisStep): its URL comes from the wizard's data or localStorage, both empty
              // here (CompetitorAnalysisStep.tsx:163), so it sends "": the service uses the site step 2 analysed.
              // Then the sitemap (answered at once), and Continue with the collector's data over the wizard's.
              const competitors = await api.discoverCompetitors("", (wizardData as { analysis?: unknown }).analysis ?? null);
              let research: Record<string, unknown>;
              if (business) {
                expect(competitors).toMatchObject({ success: false, error: expect.stringMatching(/No website was analysed/) });
                research = { competitors: [], researchSummary: null, sitemapAnalysis: null, userUrl: "", analysisTimestamp: "t" };
              } else {
                expect(competitors.success, JSON.stringify(competitors)).toBe(true);
                expect(competitors.competitors.length).toBeGreaterThan(0);
                expect(competitors.user_url).toBe(website);
                expect(competitors.research_summary.market_insights).toBe("a crowded local market");
                const sitemap = await api.analyzeSitemap(
                  "",
                  competitors.competitors.map((c: { domain: string }) => c.domain),
                );
                expect(sitemap).toMatchObject({ success: true });
                research = {
                  competitors: competitors.competitors,
                  researchSummary: competitors.research_summary,
                  sitemapAnalysis: sitemap,
                  userUrl: "",
                  analysisTimestamp: new Date().toISOString(),
                };
              }
              const step3 = { ...wizardData, ...research, stepType: "research", completedAt: new Date().toISOString() };
              await api.setCurrentStep(3, step3);
              expect(await api.getCurrentStep()).toEqual({ step: 4 });

              // Step 4 (PersonaStep): no persona yet, generated on the user's Gemini key as a task
              // already completed, read from the task. Its Continue then finds no persona in the wizard's
              // own data (ALwrity's handleNext aborts); after a reload the step finds it (persona-latest)
              // and completes step 4 itself (docs/alwrity.md).
              expect(await api.personaLatest()).toEqual({ success: false, persona: null });
              const task = await api.generatePersonas(step3);
              expect(task, JSON.stringify(task)).toMatchObject({ status: "completed" });
              const done4 = await api.personaTask(task.task_id);
              expect(done4).toMatchObject({ status: "completed", progress: 100, result: { success: true } });
              expect(done4.result.core_persona.identity.persona_name).toBe("The Friendly Baker");
              expect(Object.keys(done4.result.platform_personas).sort()).toEqual(["blog", "linkedin"]);
              expect(done4.result.quality_metrics.overall_score).toBeGreaterThan(0);
              const reloaded = await api.init();
              expect(reloaded.onboarding.current_step).toBe(4);
              const latest = await api.personaLatest();
              expect(latest.persona.core_persona).toEqual(done4.result.core_persona);
              await api.setCurrentStep(4, {
                corePersona: latest.persona.core_persona,
                platformPersonas: latest.persona.platform_personas,
                qualityMetrics: latest.persona.quality_metrics,
                selectedPlatforms: latest.persona.selected_platforms,
                stepType: "personalization",
                completedAt: new Date().toISOString(),
              });
              expect(await api.getCurrentStep()).toEqual({ step: 5 });

              // Step 5 (IntegrationsStep): GSC and WordPress are not integrated here: "not connected";
              // its Continue sends nothing (no serialized step data: the wizard skips the backend).
              expect(await api.gscStatus()).toMatchObject({ connected: false, sites: [] });
              expect(await api.gscClearIncomplete()).toMatchObject({ success: true });
              expect(await api.wordpressStatus()).toMatchObject({ connected: false, total_sites: 0 });
              const before = await api.init();
              expect(before.onboarding).toMatchObject({ current_step: 5, is_completed: false, can_proceed_to_final: true });
              expect(before.onboarding.steps.map((s: { status: string }) => s.status)).toEqual([
                "completed",
                "completed",
                "completed",
                "completed",
                "pending",
                "pending",
              ]);
              // Step 2 holds the business form as completed, or (website) the analysis the analysis call kept.
              if (business) expect(before.onboarding.steps[1].data).toEqual(step2);
              else expect(before.onboarding.steps[1].data).toMatchObject({ style_analysis: { website_url: website } });
              expect(before.onboarding.steps[2].data).toEqual(step3);
              expect(before.onboarding.steps[0].data).toBeNull(); // keys are never step data

              // Step 6 (FinalStep): the three reads answer 2xx with this user's data.
              const summary = await api.getOnboardingSummary();
              expect(summary).toMatchObject({
                api_keys: { gemini: hint(keys.gemini), exa: hint(keys.exa), copilotkit: keys.copilotkit },
                website_url: business ? null : website,
              });
              // FinalStep.tsx:53: "Personalization: Configured" when this is set.
              expect(summary.personalization_settings).toMatchObject({ stepType: "personalization" });
              expect(await api.getWebsiteAnalysisData()).toEqual(before.onboarding.steps[1].data);
              expect(await api.getResearchPreferencesData()).toEqual(step3);
              expect(await api.validateApiKeys("GET")).toMatchObject({ all_valid: true, missing: [] });
              expect(await api.validateApiKeys("POST")).toMatchObject({ all_valid: true });

              // Complete Setup: setCurrentStep(6) (FinalStep.tsx:86), then /complete (idempotent).
              const six = await api.setCurrentStep(6, {});
              expect(six.response).toMatchObject({ current_step: 6, completion_percentage: 100, is_completed: true });
              expect(await api.completeOnboarding()).toMatchObject({ is_completed: true, completion_percentage: 100 });
              const done = await api.init();
              expect(done.onboarding).toMatchObject({ is_completed: true, current_step: 6, completion_percentage: 100 });
              expect(await api.getProgress()).toEqual({ progress: 100 });

              // The AI steps were billed to this user's own keys, and their usage is this user's.
              const usage = await expectStatus(await rt.fetch(request("GET", "/api/usage", { token: rt.token(userId) })), 200);
              const used = JSON.stringify(usage);
              expect(used).toContain("gemini");
              if (!business) expect(used).toContain("exa");

              // Nothing this user read came from the other user.
              return { api, keys, website: business ? undefined : website };
            };

            const [a, b] = await Promise.all([wizard(newUser(`${mode}_a`), 1101), wizard(newUser(`${mode}_b`), 1102)]);
            // Every call ALwrity's wizard makes (tests/alwrity/client.ts alwrityCalls) was replayed.
            expect(unreplayed([...a.api.log, ...b.api.log])).toEqual([]);
            for (const [mine, theirs] of [
              [a, b],
              [b, a],
            ] as const) {
              const everything = JSON.stringify(mine.api.log.map((x) => x.reply.data));
              // Neither their keys nor their hints (a bare last-4 could be part of a random request id).
              for (const key of Object.values(theirs.keys)) {
                expect(everything).not.toContain(key);
                expect(everything).not.toContain(hint(key));
              }
              if (theirs.website) expect(everything).not.toContain(theirs.website);
              // Full Gemini and Exa keys are never read back.
              const reads = JSON.stringify(mine.api.log.filter((x) => x.method === "GET").map((x) => x.reply.data));
              expect(reads).not.toContain(mine.keys.gemini);
              expect(reads).not.toContain(mine.keys.exa);
            }
            const logs = rt.logs.join("\n");
            for (const key of [...Object.values(a.keys), ...Object.values(b.keys)]) expect(logs).not.toContain(key);
            const stepRows = JSON.stringify(await database.rows(sql`select * from onboarding_steps`));
            for (const key of [...Object.values(a.keys), ...Object.values(b.keys)]) expect(stepRows).not.toContain(key);
          } finally {
            await transport.close();
          }
        });
      }
    }

    it("typing the longest keys key by key never sees a 429; a script saving key after key does, with retry_after in the body", {
      timeout: 90_000,
    }, async () => {
      await awayFromWindowEnd(database);
      const rt = rts.production;
      const transport = await openTransport("app", rt);
      const typist = newUser("typist");
      const api = new AlwrityApi(transport, () => rt.token(typist));
      const step = new ApiKeyStep(api);
      const longest = {
        // The longest Gemini key the service takes (128 characters, an AI Studio key's family).
        gemini: "AQ." + "g".repeat(121) + "Zz_-",
        exa: sampleKeys(7).exa,
        copilotkit: "ck_pub_" + "c".repeat(96) + "Kk_-",
      };
      await step.paste("exa", longest.exa);
      await step.type("copilotkit", longest.copilotkit); // Gemini still empty: no auto-save yet
      await step.type("gemini", longest.gemini); // every keystroke auto-saves all three
      // A correction: delete the last three characters and type them again.
      for (const cut of [1, 2, 3]) await step.edit("gemini", longest.gemini.slice(0, -cut));
      for (const cut of [2, 1, 0]) await step.edit("gemini", cut === 0 ? longest.gemini : longest.gemini.slice(0, -cut));
      // The CopilotKit field cleared and typed again, key by key.
      await step.edit("copilotkit", "");
      await step.type("copilotkit", longest.copilotkit);
      const statuses = step.autoSaves.flat().map((a) => a.status);
      expect(statuses.length).toBeGreaterThan(200);
      expect(statuses.filter((s) => s === 429)).toEqual([]);
      expect((await userApiKeys(rt.runtime, typist)).keys).toEqual(longest);
      const counted = await windows(typist);
      // First saves of the three keys and the retyped CopilotKit key's first well-formed length; the rest were edits.
      expect(counted["key-writes"]).toBe(4);
      expect(counted["key-edits"]).toBe(75 + 6 + 80); // gemini: 53 → 128 characters; the correction; copilotkit

      // A script: a different well-formed key each call, ALwrity's form. The limit (30 a minute) holds.
      const script = newUser("script");
      const scripted = new AlwrityApi(transport, () => rt.token(script));
      let limited: AxiosLikeError | undefined;
      let accepted = 0;
      for (let i = 1; i <= 35 && !limited; i++) {
        try {
          await scripted.saveApiKey("gemini", sampleKeys(5000 + i).gemini);
          accepted++;
        } catch (error) {
          limited = error as AxiosLikeError;
        }
      }
      expect(accepted).toBe(30);
      expect(limited?.response.status).toBe(429);
      const body = limited!.response.data;
      expect(body.code).toBe("rate-limited");
      expect(typeof body.detail).toBe("string");
      expect(body.retry_after).toBe(Number(limited!.response.headers.get("retry-after")));
      expect(body.retry_after).toBeGreaterThanOrEqual(1);
      // The refused key was not saved.
      expect((await userApiKeys(rt.runtime, script)).keys.gemini).toBe(sampleKeys(5030).gemini);
      // Saving the stored key again is still free while limited.
      expect(await scripted.saveApiKey("gemini", sampleKeys(5030).gemini)).toMatchObject({ saved: [], unchanged: ["gemini"] });
      await transport.close();
    });

    it("nothing ALwrity sends can break a saved key: half-typed keys, foreign hints and bad step data are 400 and change nothing", async () => {
      const rt = rts.production;
      const transport = await openTransport("app", rt);
      const userId = newUser("guard");
      const api = new AlwrityApi(transport, () => rt.token(userId));
      const keys = sampleKeys(2201);
      await Promise.all([
        api.saveApiKey("gemini", keys.gemini),
        api.saveApiKey("exa", keys.exa),
        api.saveApiKey("copilotkit", keys.copilotkit),
      ]);
      await api.setCurrentStep(1, { api_keys: keys });
      const audit = await events(userId);
      const status = await api.getCurrentStep();
      const refuse = async (provider: string, value: string) => {
        const error = await api.saveApiKey(provider, value).then(
          () => undefined,
          (e: AxiosLikeError) => e,
        );
        expect(error?.response.status, `${provider}=${value.length} chars`).toBe(400);
        expect(error!.response.data.code).toBe("invalid-key-format");
        expect(typeof error!.response.data.detail).toBe("string");
        expect(JSON.stringify(error!.response.data)).not.toContain(value.length > 5 ? value : "\u0000");
      };
      for (let i = 1; i < 34; i += 4) await refuse("gemini", keys.gemini.slice(0, i)); // half-typed
      for (let i = 1; i < keys.exa.length; i += 5) await refuse("exa", keys.exa.slice(0, i));
      await refuse("exa", "…0000"); // a hint that is not the saved key's
      await refuse("gemini", "…"); // an empty hint
      await refuse("copilotkit", `${keys.copilotkit}\n`.replace("\n", " x"));
      // The saved key's own hint is "unchanged".
      expect(await api.saveApiKey("exa", hint(keys.exa))).toMatchObject({ saved: [], unchanged: ["exa"] });
      // A step completion carrying a half-typed key: 400, no step recorded, no key changed.
      const stepError = await api
        .setCurrentStep(2, { api_keys: { gemini: keys.gemini.slice(0, 20) }, website_url: "https://x.example" })
        .then(
          () => undefined,
          (e: AxiosLikeError) => e,
        );
      expect(stepError?.response.status).toBe(400);
      expect(stepError!.response.data.code).toBe("invalid-key-format");
      expect(typeof stepError!.response.data.detail).toBe("string");
      // Step data over 12 KiB: 400, nothing kept.
      const big = await api.setCurrentStep(3, { notes: "n".repeat(13 * 1024) }).then(
        () => undefined,
        (e: AxiosLikeError) => e,
      );
      expect(big?.response.status).toBe(400);
      expect(await api.getCurrentStep()).toEqual(status);
      expect(await api.getWebsiteAnalysisData()).toBeNull();
      expect(await api.getResearchPreferencesData()).toBeNull();
      expect((await userApiKeys(rt.runtime, userId)).keys).toEqual(keys);
      expect(await events(userId)).toEqual(audit);
      // Keys inside another step's data go to the key service, never into the step's data.
      const next = sampleKeys(2202);
      const res = await api.setCurrentStep(3, { research_depth: "light", api_keys: { exa: next.exa } });
      expect(res.response).toMatchObject({ saved: ["exa"], data: { research_depth: "light" } });
      expect(await api.getResearchPreferencesData()).toEqual({ research_depth: "light" });
      expect((await userApiKeys(rt.runtime, userId)).keys.exa).toBe(next.exa);
      await transport.close();
    });

    it("revisiting the key step: hints for Gemini and Exa, the CopilotKit key in full; the auto-save of what is shown changes nothing", {
      timeout: 90_000,
    }, async () => {
      await awayFromWindowEnd(database);
      const rt = rts.production;
      const transport = await openTransport("local server", rt);
      const userId = newUser("revisit");
      const api = new AlwrityApi(transport, () => rt.token(userId));
      // An older standard Gemini key ("AIza…", still accepted, retiring): the only kind useApiKeyStep's handleContinue lets through.
      const keys = { ...sampleKeys(3301), gemini: `AIzaSyA${"b".repeat(28)}3301` };
      const first = new ApiKeyStep(api);
      await first.paste("gemini", keys.gemini);
      await first.paste("exa", keys.exa);
      await first.paste("copilotkit", keys.copilotkit);
      expect(await first.handleContinue(), first.error ?? "").toBe(true);
      const audit = await events(userId);
      const counted = await windows(userId);

      const again = new ApiKeyStep(api);
      expect(await again.loadExistingKeys()).toEqual({ gemini: hint(keys.gemini), exa: hint(keys.exa), copilotkit: keys.copilotkit });
      expect((await api.getStepData(1)).data.api_keys).toEqual({
        gemini: hint(keys.gemini),
        exa: hint(keys.exa),
        copilotkit: keys.copilotkit,
      });
      // Any edit auto-saves the three shown values: all 200, all unchanged.
      await again.edit("copilotkit", keys.copilotkit);
      expect(again.autoSaves.flat().map((a) => [a.status, a.data.unchanged])).toEqual([
        [200, ["gemini"]],
        [200, ["exa"]],
        [200, ["copilotkit"]],
      ]);
      // useApiKeyStep's own handleContinue (not reachable from ApiKeyStep.tsx at b1ebe10, docs/alwrity.md) checks the
      // Gemini field for "AIza" first: a hint, like today's "AQ." keys, would stop there.
      expect(await again.handleContinue()).toBe(false);
      expect(again.error).toBe('Gemini API key must start with "AIza"');
      // Completing step 1 with the shown hints is "unchanged".
      expect(
        (await api.setCurrentStep(1, { api_keys: { gemini: hint(keys.gemini), exa: hint(keys.exa), copilotkit: keys.copilotkit } }))
          .response,
      ).toMatchObject({
        saved: [],
        unchanged: ["gemini", "exa", "copilotkit"],
      });
      expect(await events(userId)).toEqual(audit);
      expect(await windows(userId)).toEqual(counted);
      expect((await userApiKeys(rt.runtime, userId)).keys).toEqual(keys);
      await transport.close();
    });

    it("one progress: PUT /api/onboarding/session and ALwrity's routes read and move the same session", async () => {
      const rt = rts.production;
      const userId = newUser("session");
      const api = new AlwrityApi(await openTransport("app", rt), () => rt.token(userId));
      await expectStatus(
        await rt.fetch(request("PUT", "/api/onboarding/session", { token: rt.token(userId), body: { currentStep: 3, progress: 50 } })),
        200,
      );
      expect(await api.getCurrentStep()).toEqual({ step: 3 });
      expect(await api.getProgress()).toEqual({ progress: 50 });
      await api.setCurrentStep(3, { research_depth: "deep" });
      const session = await expectStatus(await rt.fetch(request("GET", "/api/onboarding/session", { token: rt.token(userId) })), 200);
      expect(session.currentStep).toBe(4);
      expect(session.progress).toBeCloseTo(50, 3);
      // Completing an earlier step again never moves it back.
      await api.setCurrentStep(1, {});
      expect(await api.getCurrentStep()).toEqual({ step: 4 });
      await expectStatus(
        await rt.fetch(request("PUT", "/api/onboarding/session", { token: rt.token(userId), body: { currentStep: 6, progress: 100 } })),
        200,
      );
      expect((await api.init()).onboarding).toMatchObject({ is_completed: true, current_step: 6 });
    });

    it("the frontend .env update: development writes only REACT_APP_COPILOTKIT_API_KEY into FRONTEND_ENV_FILE; production answers 404 and writes nothing", async () => {
      const key = sampleKeys(4401).copilotkit;
      for (const transportName of transportNames) {
        const dev = new AlwrityApi(await openTransport(transportName, rts.development), () => rts.development.token("user_alwrity_env"));
        const written = await dev.updateFrontendEnv(key);
        expect(written.data).toMatchObject({ success: true, written: true });
        expect(JSON.stringify(written.data)).not.toContain(key);
        const file = readFileSync(frontendEnv, "utf8");
        expect(file).toContain("REACT_APP_API_URL=http://localhost:3000");
        expect(file).toContain(`REACT_APP_COPILOTKIT_API_KEY=${key}`);
        const other = await dev.post("/api/frontend-env/update", { key: "REACT_APP_API_URL", value: key }).then(
          () => undefined,
          (e: AxiosLikeError) => e,
        );
        expect(other?.response.status).toBe(400);
        expect(readFileSync(frontendEnv, "utf8")).toBe(file);

        const prodFile = readFileSync(frontendEnv, "utf8");
        const prod = new AlwrityApi(await openTransport(transportName, rts.production), () => rts.production.token("user_alwrity_env"));
        const refused = await prod.updateFrontendEnv(sampleKeys(4402).copilotkit).then(
          () => undefined,
          (e: AxiosLikeError) => e,
        );
        expect(refused?.response.status, transportName).toBe(404);
        expect(refused!.response.data.code).toBe("not-found");
        expect(readFileSync(frontendEnv, "utf8")).toBe(prodFile);
      }
    });
  });
}

describe("ALwrity's calls as listed in tests/alwrity/client.ts", () => {
  it("the key step's own Continue (unreachable from its UI at b1ebe10) is replayed too: the .env update and the step-1 completion", async () => {
    const database = await backends[0]!.open();
    const rt = makeRuntime({ database, mode: "development" });
    try {
      const api = new AlwrityApi(await openTransport("app", rt), () => rt.token("user_alwrity_continue"));
      const step = new ApiKeyStep(api);
      const keys = { ...sampleKeys(3401), gemini: `AIzaSyA${"c".repeat(28)}3401` };
      for (const field of ["gemini", "exa", "copilotkit"] as const) await step.paste(field, keys[field]);
      expect(await step.handleContinue(), step.error ?? "").toBe(true);
      expect(unreplayed(api.log, { includeUnreachable: true }).filter((c) => c.includes("useApiKeyStep"))).toEqual([]);
      // Today's AI Studio key ("AQ.") stops at that Continue's own check, before any request.
      const today = new ApiKeyStep(api);
      for (const field of ["gemini", "exa", "copilotkit"] as const) await today.paste(field, sampleKeys(3402)[field]);
      const before = api.log.length;
      expect(await today.handleContinue()).toBe(false);
      expect(today.error).toBe('Gemini API key must start with "AIza"');
      expect(api.log.slice(before).filter((x) => x.path !== "/api/onboarding/api-keys")).toEqual([]);
    } finally {
      rt.cleanup();
      await database.destroy();
    }
  });
});

describe("ALwrity's browser preflights", () => {
  it("every ALwrity call from its origin passes CORS: authorization and content-type allowed, the request id exposed", async () => {
    const database = await backends[0]!.open();
    const origin = "https://app.alwrity.example";
    const rt = makeRuntime({ database, mode: "production", env: { ALLOWED_ORIGINS: origin } });
    try {
      const calls: [string, string][] = [
        ["POST", "/api/onboarding/api-keys"],
        ["GET", "/api/onboarding/api-keys/onboarding"],
        ["GET", "/api/onboarding/step/1"],
        ["POST", "/api/onboarding/step/1/complete"],
        ["POST", "/api/onboarding/step/6/complete"],
        ["GET", "/api/onboarding/init"],
        ["GET", "/api/onboarding/status"],
        ["GET", "/api/onboarding/progress"],
        ["POST", "/api/onboarding/complete"],
        ["GET", "/api/onboarding/summary"],
        ["GET", "/api/onboarding/website-analysis"],
        ["GET", "/api/onboarding/research-preferences"],
        ["GET", "/api/onboarding/api-keys/validate"],
        ["POST", "/api/onboarding/api-keys/validate"],
        ["GET", "/api/onboarding/style-detection/session-analyses"],
        ["GET", "/api/onboarding/style-detection/check-existing/https%3A%2F%2Fexample.com"],
        ["GET", "/api/onboarding/style-detection/analysis/1"],
        ["POST", "/api/onboarding/style-detection/complete"],
        ["POST", "/onboarding/business-info"],
        ["POST", "/api/onboarding/step3/discover-competitors"],
        ["POST", "/api/onboarding/step4/generate-personas-async"],
        ["GET", "/api/onboarding/step4/persona-task/00000000-0000-4000-8000-000000000000"],
        ["GET", "/api/onboarding/step4/persona-latest"],
      ];
      for (const [method, path] of calls) {
        const preflight = await rt.fetch(
          new Request(`http://localhost${path}`, {
            method: "OPTIONS",
            headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization,content-type" },
          }),
        );
        expect(preflight.status, `${method} ${path}`).toBe(204);
        expect(preflight.headers.get("access-control-allow-origin"), path).toBe(origin);
        expect(preflight.headers.get("access-control-allow-methods"), path).toContain(method);
        expect((preflight.headers.get("access-control-allow-headers") ?? "").toLowerCase(), path).toContain("authorization");
        const actual = await rt.fetch(new Request(`http://localhost${path}`, { method, headers: { origin } }));
        expect(actual.headers.get("access-control-allow-origin"), `${method} ${path}`).toBe(origin);
        expect(actual.headers.get("access-control-expose-headers") ?? "", path).toContain("x-request-id");
        expect(actual.status, `${method} ${path} without a token`).toBe(401);
      }
      // The app's start and the stand-ins that hold nothing about anyone: public, CORS all the same.
      for (const [method, path] of [
        ["GET", "/health"],
        ["POST", "/api/onboarding/step3/analyze-sitemap"],
        ["GET", "/gsc/status"],
        ["POST", "/gsc/clear-incomplete"],
        ["GET", "/wp/status"],
      ] as const) {
        const preflight = await rt.fetch(
          new Request(`http://localhost${path}`, {
            method: "OPTIONS",
            headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization,content-type" },
          }),
        );
        expect(preflight.status, `${method} ${path}`).toBe(204);
        expect(preflight.headers.get("access-control-allow-origin"), path).toBe(origin);
      }
    } finally {
      rt.cleanup();
      await database.destroy();
    }
  });
});

describe("development-only routes in production", () => {
  it("hide only themselves: a path served under an alias (/api/openapi) still answers its preflight", async () => {
    const database = await backends[0]!.open();
    const rt = makeRuntime({ database, mode: "production" });
    try {
      for (const path of ["/api/openapi", "/api/openapi.json", "/api/onboarding/api-keys", "/api/onboarding/step/3/complete"]) {
        const response = await rt.fetch(new Request(`http://localhost${path}`, { method: "OPTIONS" }));
        expect(response.status, path).toBe(204);
      }
      for (const method of ["OPTIONS", "GET", "POST"]) {
        const response = await rt.fetch(new Request("http://localhost/api/frontend-env/update", { method }));
        expect(response.status, method).toBe(404);
      }
    } finally {
      rt.cleanup();
      await database.destroy();
    }
  });
});
