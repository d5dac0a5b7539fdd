/**
 * The web app in a real browser: playwright-core driving Debian's Chromium.
 *
 * - Development: the real local server (`scripts/start.ts`, as `npm start` runs it) with
 *   Gemini and Exa pointed at the fakes. Keys entered in the page show as hints and land in
 *   the .env file; a post streams in with its sources; Cancel aborts the upstream call (the
 *   fake sees its connection close); deleting the Gemini key makes the next generation say so.
 * - Production: the app served in-process with the static site (as `npm start` in production
 *   serves it) and a stand-in `window.Clerk` (testkit/browser.ts) whose tokens come from the
 *   test key pair. Two users in two browser contexts never see each other's hints or usage;
 *   an expired token brings back the sign-in; every API call carries the bearer token.
 * - Untrusted text (a source title and model output carrying HTML) shows as text: no element
 *   is created from it.
 *
 * - What the user looks after (issue "a web app a user keeps coming back to"): key cards with
 *   status, source and a confirmed Delete; the check's outcome in words; the spending cap in
 *   their hands and the 402 explained; usage refreshed after each generation and cancel, a
 *   chart per day and provider; per-failure messages with a retry; the account's export and
 *   deletion; the recovery paths (a lost key ring, Clerk's script not loading, no publishable key).
 * - Accessibility: axe-core (node_modules/axe-core) runs inside the page on every state the
 *   tests reach, at 1280 and 360 px: no serious or critical violation (`expectAccessible`).
 *
 * Skipped, and said so, without a Chromium (CI installs it: .ci/run). Screenshots of each
 * step go to tests/web/screenshots/ (git-ignored); `README.png` is the README's screenshot
 * (copied to docs/web-app.png by hand after a change to the page).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { chromiumArgs, chromiumPath, clerkStandIn } from "../../testkit/browser.js";
import { FAKE_GEMINI_CHUNKS } from "../../testkit/fakes/gemini.js";
import { expiredToken } from "../../testkit/clerk.js";
import { makeRuntime, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { backends } from "../helpers/db.js";
import { startListeningServer } from "../helpers/local-server.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { staticSite, withStaticSite } from "../../lib/server/static.js";
import { publishableKeyFor } from "../../lib/platform/auth/publishable-key.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const screenshots = join(root, "tests", "web", "screenshots");
const executablePath = chromiumPath();
if (!executablePath) {
  process.stdout.write("tests/web/browser.happy.test.ts: SKIPPED, no Chromium (apt-get install chromium, or set CHROMIUM_PATH)\n");
  if (process.env.CI) throw new Error("CI must run the browser tests: install chromium (.ci/run does)");
}
const describeBrowser = executablePath ? describe : describe.skip;

let browser: Browser;
beforeAll(async () => {
  if (!executablePath) return;
  mkdirSync(screenshots, { recursive: true });
  browser = await chromium.launch({ executablePath, args: chromiumArgs });
});
afterAll(async () => {
  await browser?.close();
});

/** Page errors and CSP violations fail the test that caused them. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().includes("Failed to load resource")) problems.push(`console: ${message.text()}`);
  });
  return problems;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * axe-core run inside the page (injected through the DevTools protocol, which the page's CSP
 * does not govern) at 1280 and 360 px: no serious or critical violation in `state`. The
 * viewport is put back as it was.
 */
async function expectAccessible(page: Page, state: string): Promise<void> {
  const viewport = page.viewportSize();
  for (const width of [1280, 360]) {
    await page.setViewportSize({ width, height: 900 });
    if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
    const violations = await page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run(context: Document, options: unknown): Promise<{ violations: any[] }> } }).axe;
      const result = await axe.run(document, { resultTypes: ["violations"] });
      return result.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n: { target: string[] }) => n.target.join(" ")).join(", ")}`);
    });
    expect(violations, `${state} at ${width} px`).toEqual([]);
  }
  if (viewport) await page.setViewportSize(viewport);
}

// ---- development: the real local server ----------------------------------------------------

describeBrowser("web app in Chromium, development (npm start, fake Gemini and Exa)", () => {
  const dir = mkdtempSync(join(tmpdir(), "byok-web-dev-"));
  const envFile = join(dir, ".env");
  const keys = sampleKeys(7101);
  const { gemini, exa } = useFakeUpstreams();
  let server: Awaited<ReturnType<typeof startListeningServer>>;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    server = await startListeningServer({
      PORT: "0",
      PGLITE_DIR: join(dir, "pglite"),
      ENV_FILE: envFile,
      GEMINI_BASE_URL: gemini.url,
      EXA_BASE_URL: exa.url,
    });
    context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    page = await context.newPage();
    problems = watch(page);
    await page.goto(server.url + "/");
  });
  afterAll(async () => {
    await context?.close();
    server?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("shows the development banner and the three labelled key fields, no sign-in", async () => {
    await expect.poll(() => page.locator("#dev-banner").isVisible()).toBe(true);
    const banner = await page.locator("#dev-banner").textContent();
    expect(banner).toContain(".env file");
    expect(banner).toContain("every request runs as the developer (local-dev)");
    expect(await page.locator("#signin").isVisible()).toBe(false);
    for (const label of ["Gemini API key", "Exa API key", "CopilotKit public key"]) {
      await expect.poll(() => page.getByLabel(label, { exact: false }).count()).toBe(1);
    }
    const help = await page.locator("#key-gemini-help").textContent();
    // Today's keys first: AI Studio issues "AQ." authorization keys; "AIza" is the older kind.
    expect(help).toContain('"AQ.Ab8R…"');
    expect(help).toContain("AI Studio");
    expect(await page.locator("#key-gemini").getAttribute("placeholder")).toMatch(/^AQ\./);
    expect(await page.locator("#key-gemini-help a").getAttribute("href")).toBe("https://aistudio.google.com/app/apikey");
    expect(await page.locator("#account-what").textContent()).toContain("Development");
    await expectAccessible(page, "first visit, development");
  });

  it("a malformed key, by keyboard: the problem's detail beside the Gemini field, focus on it, nothing saved", async () => {
    // Keyboard only: type into the field and press Enter to submit.
    await page.getByLabel("Gemini API key").focus();
    await page.keyboard.type("AQ.too-short");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("#key-gemini-error").isVisible()).toBe(true);
    expect(await page.locator("#key-gemini-error").textContent()).toMatch(/Gemini key/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("key-gemini");
    expect(await page.locator("#key-gemini").getAttribute("aria-invalid")).toBe("true");
    const session = (await (await fetch(`${server.url}/api/onboarding/api-keys`)).json()) as { keys: unknown[] };
    expect(session.keys).toEqual([]);
    await shot(page, "1-keys-error");
    await expectAccessible(page, "a malformed key");
  });

  it("enters the three keys: hints shown (never the full key), the .env file written, onboarding advanced", async () => {
    await page.getByLabel("Gemini API key").fill(keys.gemini);
    await page.getByLabel("Exa API key").fill(keys.exa);
    await page.getByLabel("CopilotKit public key").fill(keys.copilotkit);
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#keys-status").textContent()).toContain("in the .env file");
    for (const [provider, key] of Object.entries(keys)) {
      expect(await page.locator(`#key-${provider}-saved .hint`).textContent()).toBe(`…${key.slice(-4)}`);
      expect(await page.locator(`#key-${provider}`).inputValue()).toBe("");
    }
    const html = await page.content();
    expect(html).not.toContain(keys.gemini);
    expect(html).not.toContain(keys.exa);
    const env = readFileSync(envFile, "utf8");
    expect(env).toContain(`GEMINI_API_KEY=${keys.gemini}`);
    expect(env).toContain(`EXA_API_KEY=${keys.exa}`);
    expect(env).toContain(`COPILOTKIT_API_KEY=${keys.copilotkit}`);
    await expect.poll(() => page.locator("#progress").evaluate((p) => (p as HTMLProgressElement).value)).toBeGreaterThanOrEqual(33);
    const session = (await (await fetch(`${server.url}/api/onboarding/session`)).json()) as { currentStep: number; progress: number };
    expect(session.currentStep).toBe(2);
    // Key cards: where each key is in force, its status in words, Delete.
    const card = page.locator("#key-gemini-saved");
    expect(await card.locator(".badge").textContent()).toBe("Not used yet");
    expect(await card.textContent()).toContain("In use from the .env file on this machine.");
    await shot(page, "2-keys-saved");
    await expectAccessible(page, "keys saved");
  });

  it("generates: status, sources, streamed text with linked citations, usage and which key paid", async () => {
    gemini.reset();
    exa.reset();
    await page.getByLabel("Topic").fill("Heat pumps in old houses");
    await page.getByLabel("Keywords", { exact: false }).fill("insulation, cost");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#generate-status").textContent(), { timeout: 20_000 }).toBe("Done.");
    const post = await page.locator("#post").textContent();
    expect(post).toContain("Research on the topic shows steady progress");
    expect(await page.locator("#post h2").first().textContent()).toBe("Deterministic Test Article");
    expect(await page.locator("#sources li").count()).toBeGreaterThan(0);
    expect(await page.locator("#sources li a").first().textContent()).toContain("Heat pumps in old houses");
    const cite = page.locator("#post a.cite").first();
    expect(await cite.textContent()).toBe("[1]");
    expect(await cite.getAttribute("href")).toBe("#source-1");
    const usage = await page.locator("#generate-usage").textContent();
    expect(usage).toMatch(/input \+ \d+ output tokens/);
    expect(usage).toContain("Paid with the keys in this machine's .env file");
    expect(gemini.requests.some((r) => r.apiKey === keys.gemini)).toBe(true);
    expect(exa.requests.some((r) => r.apiKey === keys.exa)).toBe(true);
    await shot(page, "3-generated");
    await expectAccessible(page, "a post generated");
  });

  it("usage is current without a refresh: rows per day and provider in their own terms, a chart per provider with values and an axis", async () => {
    // No click on "Refresh usage": the generation above refreshed it.
    await expect.poll(() => page.locator("#usage-rows tr").count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator("#usage-empty").isVisible()).toBe(false);
    expect(await page.locator("#usage-total").textContent()).not.toContain("$0.00 on");
    const rows = await page.locator("#usage-rows tr").evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    const exaRow = rows.find((r) => r[1] === "Exa")!;
    const geminiRow = rows.find((r) => r[1] === "Gemini")!;
    expect(exaRow[2]).toMatch(/^\d+ search(es)?$/); // Exa has no tokens: no "0 / 0"
    expect(geminiRow[2]).toMatch(/^\d+ calls?: [\d,]+ tokens in, [\d,]+ out$/);
    // The chart: one bar per provider and day, the day's total written above it, a value axis.
    expect(await page.locator('#usage-chart rect[data-provider="gemini"]').count()).toBe(1);
    expect(await page.locator('#usage-chart rect[data-provider="exa"]').count()).toBe(1);
    const total = rows.filter((r) => r[0] === rows[0]![0]).reduce((sum, r) => sum + Number(r[3]!.slice(1)), 0);
    expect(Number((await page.locator("#usage-chart text.value").first().textContent())!.slice(1))).toBeCloseTo(total, 2);
    expect(await page.locator("#usage-chart text.tick").count()).toBeGreaterThanOrEqual(4);
    expect(await page.locator("#usage-legend").textContent()).toContain("Gemini");
    // The cap meter: spent, what is left, and the reset date.
    await expect.poll(() => page.locator("#budget-text").textContent()).toMatch(/spent.*resets on \d+ \w+ \d{4}/);
    // The key cards learnt from the generation: accepted, last used.
    expect(await page.locator("#key-gemini-saved .badge").textContent()).toBe("Working");
    expect(await page.locator("#key-gemini-saved").textContent()).toContain("last used");
    await shot(page, "4-usage");
    await expectAccessible(page, "usage after a generation");
  });

  it("Cancel aborts mid-stream: the page says so and the fake Gemini sees its call closed", async () => {
    gemini.reset();
    gemini.setMode({ hangAfterChunks: 2 });
    await page.getByLabel("Topic").fill("A post that never finishes");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#post").textContent(), { timeout: 20_000 }).toContain("steady progress");
    await expect.poll(() => gemini.inFlight()).toBe(1);
    const usageCalls: number[] = [];
    page.on("request", (r) => {
      if (new URL(r.url()).pathname === "/api/usage") usageCalls.push(Date.now());
    });
    const cancelledAt = Date.now();
    await page.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => page.locator("#generate-status").textContent()).toContain("Cancelled");
    await gemini.waitForIdle(10_000);
    expect(gemini.inFlight()).toBe(0);
    expect(gemini.requests.filter((r) => r.path.includes("streamGenerateContent"))).toHaveLength(1);
    gemini.setMode({});
    // The usage is asked for again once the cancel is done (what the cancelled call may have cost).
    await expect.poll(() => usageCalls.some((at) => at > cancelledAt)).toBe(true);
    await expectAccessible(page, "a cancelled generation");
  });

  it("deleting the Gemini key asks first; then the progress goes back to step 1 and the next generation says the key is missing", async () => {
    await page.getByRole("button", { name: "Delete the saved Gemini API key" }).click();
    // Nothing deleted yet: a question, the focus on "Keep it".
    await expect.poll(() => page.locator("#key-gemini-saved .confirm").isVisible()).toBe(true);
    expect(await page.locator("#key-gemini-saved .confirm").textContent()).toContain("GEMINI_API_KEY line from the .env file");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Keep it");
    await expectAccessible(page, "Delete asks first");
    await page.keyboard.press("Enter"); // keep it
    expect(await page.locator("#key-gemini-saved .confirm").count()).toBe(0);
    expect(readFileSync(envFile, "utf8")).toMatch(/GEMINI_API_KEY=./);
    await page.getByRole("button", { name: "Delete the saved Gemini API key" }).click();
    await page.getByRole("button", { name: "Delete the Gemini key" }).click();
    await expect.poll(() => page.locator("#key-gemini-saved").textContent()).toContain("Not saved yet");
    expect(await page.locator("#progress-text").textContent()).toBe("Step 1 of 3: save your Gemini key (0% done)");
    expect(await page.locator("#progress").evaluate((p) => (p as HTMLProgressElement).value)).toBe(0);
    expect(readFileSync(envFile, "utf8")).not.toMatch(/GEMINI_API_KEY=./);
    await page.getByLabel("Topic").fill("Heat pumps again");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#generate-error").isVisible()).toBe(true);
    const sentence = await page.locator("#generate-error").textContent();
    expect(sentence).toContain("You have not saved a Gemini API key yet");
    expect(await page.locator("#generate-error a").getAttribute("href")).toBe("#keys");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("generate-error");
    expect(await page.locator("#generate-status").textContent()).toBe("Not started: your Gemini key is missing.");
    await shot(page, "5-missing-key");
    await expectAccessible(page, "a missing key");
    // The link leads back to step 1, where a new key replaces nothing and shows its own hint.
    await page.locator("#generate-error a").click();
    // A key of today's shape (an AI Studio authorization key) through the form.
    const replacement = `AQ.Ab8R${"R".repeat(42)}N3WK`;
    await page.getByLabel("Gemini API key").fill(replacement);
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#key-gemini-saved .hint").textContent()).toBe("…N3WK");
    expect(readFileSync(envFile, "utf8")).toContain(`GEMINI_API_KEY=${replacement}`);
    expect(await page.locator("#key-gemini-saved .key-notice").count()).toBe(0);
  });

  it("an older standard key (AIza…) saves with a notice that Google is retiring it, until an AI Studio key replaces it", async () => {
    const standard = `AIzaSy${"S".repeat(29)}STD4`;
    await page.locator("#key-gemini").fill(standard);
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#key-gemini-saved .hint").textContent()).toBe("…STD4");
    const notice = page.locator('#key-gemini-saved .key-notice[data-code="gemini-standard-key-retiring"]');
    await expect.poll(() => notice.textContent()).toContain("Google is retiring standard Gemini API keys");
    expect(await notice.textContent()).toContain("aistudio.google.com/apikey");
    await shot(page, "5b-standard-key-notice");
    const today = `AQ.Ab8R${"T".repeat(42)}TDAY`;
    await page.locator("#key-gemini").fill(today);
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#key-gemini-saved .hint").textContent()).toBe("…TDAY");
    expect(await notice.count()).toBe(0);
  });

  it("the key check says its outcome in words: accepted, or rejected and not saved", async () => {
    const checked = `AQ.Ab8R${"C".repeat(42)}CHK1`;
    await page.locator("#key-gemini").fill(checked);
    await page.getByLabel("Check my Gemini key", { exact: false }).check();
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#keys-status").textContent()).toContain("Gemini accepted the key. Saved Gemini");
    const refused = `AQ.Ab8R${"D".repeat(42)}BAD1`;
    gemini.setMode({ fail: "invalid-key" }, refused);
    await page.locator("#key-gemini").fill(refused);
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#key-gemini-error").isVisible()).toBe(true);
    const said = await page.locator("#key-gemini-error").textContent();
    expect(said).toContain("Gemini rejected this key, so it was not saved");
    expect(said).not.toContain("saved API key");
    expect(await page.locator("#keys-status").textContent()).toBe("Not saved: Gemini refused the key.");
    expect(await page.locator("#key-gemini-saved .hint").textContent()).toBe("…CHK1");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("key-gemini");
    await expectAccessible(page, "a refused key check");
    gemini.setMode({}, refused);
    await page.getByLabel("Check my Gemini key", { exact: false }).uncheck();
    await page.locator("#key-gemini").fill("");
  });

  it("a word count out of range: the message beside the field, focus on it", async () => {
    await page.getByLabel("Topic").fill("Heat pumps in old houses");
    await page.getByLabel("Word count").fill("5000");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#word-count-error").isVisible()).toBe(true);
    expect(await page.locator("#word-count-error").textContent()).toBe("Enter a word count from 200 to 3000.");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("word-count");
    expect(await page.locator("#word-count").getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#generate-error").isVisible()).toBe(false);
    await expectAccessible(page, "a word count out of range");
    await page.getByLabel("Word count").fill("800");
  });

  it("the cap in the user's hands: set it, a 402 explained with the estimate and what to change, remove it", async () => {
    await page.getByLabel("Monthly cap in USD").fill("0.01");
    await page.getByRole("button", { name: "Set cap" }).click();
    await expect.poll(() => page.locator("#budget-status").textContent()).toBe("Cap set to $0.01 a month.");
    expect(await page.locator("#budget-text").textContent()).toMatch(/of your \$0\.01 cap\. It resets on/);
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#generate-error").isVisible()).toBe(true);
    const said = (await page.locator("#generate-error").textContent()) ?? "";
    expect(said).toMatch(/This post could cost up to \$0\.\d+, and \$[\d.]+ of your \$0\.01 monthly cap is left until \d+ \w+ \d{4}\./);
    expect(said).toContain("ask for fewer words, turn off research with Exa, or raise your cap");
    expect(await page.locator("#generate-error a").getAttribute("href")).toBe("#spending");
    expect(await page.locator("#generate-status").textContent()).toBe("Not started: over your spending cap.");
    await shot(page, "5c-over-cap");
    await expectAccessible(page, "over the cap");
    await page.getByRole("button", { name: "Remove cap" }).click();
    await expect.poll(() => page.locator("#budget-status").textContent()).toBe("Cap removed: no monthly limit.");
    expect(await page.locator("#budget-text").textContent()).toMatch(/^No cap: \$[\d.]+ spent this month\./);
  });

  it("works at 360 px wide: nothing scrolls sideways, the usage table's USD column is in view", async () => {
    await page.setViewportSize({ width: 360, height: 800 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    const wrap = await page.locator(".table-wrap").evaluate((w) => ({ scroll: w.scrollWidth, client: w.clientWidth }));
    expect(wrap.scroll).toBeLessThanOrEqual(wrap.client);
    const usdCell = await page.locator("#usage-rows tr td:last-child").first().boundingBox();
    expect(usdCell!.x + usdCell!.width).toBeLessThanOrEqual(360);
    await shot(page, "6-narrow");
    await page.setViewportSize({ width: 1000, height: 900 });
    expect(problems).toEqual([]);
  });

  it("/docs renders the OpenAPI reference from self-hosted Swagger UI", async () => {
    const docs = await context.newPage();
    const docProblems = watch(docs);
    const external: string[] = [];
    docs.on("request", (request) => {
      if (!request.url().startsWith(server.url) && !request.url().startsWith("data:")) external.push(request.url());
    });
    await docs.goto(server.url + "/docs");
    await expect.poll(() => docs.locator(".opblock").count(), { timeout: 20_000 }).toBeGreaterThan(10);
    expect(await docs.locator(".info .title").first().textContent({ timeout: 5_000 })).toContain("byok-functions");
    expect(external).toEqual([]);
    expect(docProblems).toEqual([]);
    await shot(docs, "7-docs");
    await docs.close();
  });

  it("the README's screenshot: keys, a post with sources, usage and the cap (tests/web/screenshots/README.png)", async () => {
    gemini.reset();
    await page.getByLabel("Monthly cap in USD").fill("5");
    await page.getByRole("button", { name: "Set cap" }).click();
    await expect.poll(() => page.locator("#budget-status").textContent()).toBe("Cap set to $5.00 a month.");
    await page.getByLabel("Topic").fill("Heat pumps in old houses");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#generate-status").textContent(), { timeout: 20_000 }).toBe("Done.");
    await expect.poll(() => page.locator("#key-gemini-saved .badge").textContent()).toBe("Working");
    await page.setViewportSize({ width: 1000, height: 900 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(screenshots, "README.png"), fullPage: true });
    await expectAccessible(page, "the README's state");
  });

  it("development account deletion says what it removes from .env, asks for the phrase, then removes the keys and their lines", async () => {
    expect(await page.locator("#delete-help").textContent()).toContain(
      "removes the GEMINI_API_KEY, EXA_API_KEY and COPILOTKIT_API_KEY lines from the .env file",
    );
    await page.getByLabel("To delete your account, type", { exact: false }).fill("delete");
    await page.getByRole("button", { name: "Delete my account" }).click();
    await expect.poll(() => page.locator("#delete-error").textContent()).toBe('Type "delete my account" to confirm; nothing was deleted.');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("delete-confirm");
    expect(readFileSync(envFile, "utf8")).toMatch(/GEMINI_API_KEY=./);
    await expectAccessible(page, "account deletion not confirmed");
    await page.getByLabel("To delete your account, type", { exact: false }).fill("delete my account");
    await page.getByRole("button", { name: "Delete my account" }).click();
    await expect.poll(() => page.locator("#account-status").textContent()).toContain("Deleted");
    expect(await page.locator("#key-gemini-saved").textContent()).toContain("Not saved yet");
    const env = readFileSync(envFile, "utf8");
    expect(env).not.toMatch(/(GEMINI|EXA|COPILOTKIT)_API_KEY=./);
    expect(env).toMatch(/KEY_ENCRYPTION_KEYS=./);
  });

  it("a .env that lost its key ring line: the page names the missing key id and both ways out; starting over works", async () => {
    await page.getByLabel("Gemini API key").fill(keys.gemini);
    await page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => page.locator("#keys-status").textContent()).toContain("in the .env file");
    const keyId = /KEY_ENCRYPTION_KEYS=([^:]+):/.exec(readFileSync(envFile, "utf8"))![1]!;
    // The file overwritten (e.g. `cp .env.example .env`), the server restarted.
    await new Promise<void>((r) => {
      server.child.once("exit", () => r());
      server.child.kill("SIGTERM");
    });
    writeFileSync(envFile, "# a fresh copy of .env.example\n");
    server = await startListeningServer({
      PORT: "0",
      PGLITE_DIR: join(dir, "pglite"),
      ENV_FILE: envFile,
      GEMINI_BASE_URL: gemini.url,
      EXA_BASE_URL: exa.url,
    });
    await page.goto(server.url + "/");
    const notice = page.locator("#notice");
    await expect.poll(() => notice.isVisible()).toBe(true);
    const said = (await notice.textContent()) ?? "";
    expect(said).toContain(`The KEY_ENCRYPTION_KEYS line that holds key id ${keyId} is missing from ${envFile}`);
    expect(said).toContain("Restore that line");
    expect(said).toContain("Or start over");
    expect(said).not.toContain("tell the operator");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("notice");
    await shot(page, "11-key-ring-lost");
    await expectAccessible(page, "a lost key ring");
    await page.getByRole("button", { name: "Delete the saved keys and start over" }).click();
    await expect
      .poll(() => page.locator("#keys-status").textContent(), { timeout: 20_000 })
      .toBe("The saved keys were deleted. Enter your keys again.");
    expect(await notice.isVisible()).toBe(false);
    expect(await page.locator("#key-gemini-saved").textContent()).toContain("Not saved yet");
    expect(problems.filter((p) => !p.includes("500"))).toEqual([]);
  });
});

// ---- production: stand-in Clerk, two users -----------------------------------------------

// One retry: in two full-suite runs (never alone, never under a CPU hog) one of these tests hung
// until the test timeout; each browser step now has its own 20 s timeout so the next one names
// the step. A real breakage fails both tries.
describeBrowser("web app in Chromium, production (stand-in ClerkJS, two users)", { retry: 1 }, () => {
  const { gemini, exa } = useFakeUpstreams({
    gemini: { chunks: [...FAKE_GEMINI_CHUNKS, "<script>window.__xss=2</script> and <b onclick=alert(1)>bold</b>\n"] },
  });
  let test: TestRuntime;
  let database: Awaited<ReturnType<(typeof backends)[number]["open"]>>;
  let server: Server;
  let origin: string;
  const xssTitle = "<img src=x onerror=window.__xss=1>";

  beforeAll(async () => {
    database = await backends[0]!.open();
    // The origin (and so the tokens' azp) is known once the server listens; the app comes after.
    let fetchApp: (request: Request) => Response | Promise<Response> = () => new Response(null, { status: 503 });
    server = serve({ fetch: (request) => fetchApp(request), port: 0, hostname: "127.0.0.1" }) as Server;
    await new Promise((r) => server.once("listening", r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    test = makeRuntime({
      database,
      mode: "production",
      env: {
        CLERK_PUBLISHABLE_KEY: publishableKeyFor("clerk.test.local"),
        CLERK_AUTHORIZED_PARTIES: origin,
        BUDGET_DEFAULT_USD: "1",
        BUDGET_MAX_USD: "5",
        GEMINI_BASE_URL: gemini.url,
        EXA_BASE_URL: exa.url,
      },
    });
    const site = staticSite(join(root, "public"), { clerkFrontendApi: "clerk.test.local" });
    fetchApp = withStaticSite(site, (request) => test.app.fetch(request));
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await database?.destroy();
  });

  const tokenFor = (userId: string) => test.signer.sign({ sub: userId, azp: origin });

  /** A browser context signed in as `userId` through the stand-in ClerkJS; records the API requests' Authorization. */
  async function signedIn(userId: string) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    context.setDefaultTimeout(20_000); // a stuck step fails with its own message, not the test's timeout
    const token = tokenFor(userId);
    await context.addInitScript(clerkStandIn, { token, userId });
    const page = await context.newPage();
    const problems = watch(page);
    const authorizations: { path: string; authorization: string | undefined }[] = [];
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.pathname.startsWith("/api/") && url.pathname !== "/api/config") {
        authorizations.push({ path: url.pathname, authorization: request.headers()["authorization"] });
      }
    });
    await page.goto(origin + "/");
    await expect.poll(() => page.locator("#app").isVisible()).toBe(true);
    return { context, page, problems, authorizations, token };
  }

  it("no banner, the user's name, and every API request carries the user's bearer token", async () => {
    const alice = await signedIn("user_alice_web");
    expect(await alice.page.locator("#dev-banner").isVisible()).toBe(false);
    expect(await alice.page.locator("#who").textContent()).toContain("user_alice_web@example.test");
    await expect.poll(() => alice.authorizations.length).toBeGreaterThanOrEqual(3);
    for (const request of alice.authorizations) expect(request.authorization, request.path).toBe(`Bearer ${alice.token}`);
    const response = await alice.page.request.get(origin + "/");
    const csp = response.headers()["content-security-policy"]!;
    expect(csp).toContain("script-src 'self' https://clerk.test.local https://challenges.cloudflare.com;");
    expect(csp).not.toContain("unsafe-eval");
    await expectAccessible(alice.page, "signed in, production");
    expect(alice.problems).toEqual([]);
    await alice.context.close();
  });

  it("two users in two contexts never see each other's hints or usage", async () => {
    const alice = await signedIn("user_alice_iso");
    const bob = await signedIn("user_bob_iso");
    const aliceKeys = sampleKeys(7201);
    const bobKeys = sampleKeys(7202);
    for (const [user, userKeys] of [
      [alice, aliceKeys],
      [bob, bobKeys],
    ] as const) {
      await user.page.getByLabel("Gemini API key").fill(userKeys.gemini);
      await user.page.getByLabel("Exa API key").fill(userKeys.exa);
      await user.page.getByRole("button", { name: "Save keys" }).click();
      await expect.poll(() => user.page.locator("#keys-status").textContent()).toContain("encrypted in the database");
    }
    await alice.page.getByLabel("Topic").fill("Alice's topic");
    await alice.page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => alice.page.locator("#generate-status").textContent(), { timeout: 20_000 }).toBe("Done.");
    expect(await alice.page.locator("#generate-usage").textContent()).toContain("Paid with your own saved keys.");
    await alice.page.getByRole("button", { name: "Refresh usage" }).click();
    await expect.poll(() => alice.page.locator("#usage-rows tr").count()).toBeGreaterThanOrEqual(1);

    await bob.page.reload();
    // sampleKeys' Exa keys end in the seed, so their hints differ between the two users.
    await expect.poll(() => bob.page.locator("#key-exa-saved .hint").textContent()).toBe(`…${bobKeys.exa.slice(-4)}`);
    const bobHtml = await bob.page.content();
    expect(bobHtml).not.toContain(`…${aliceKeys.exa.slice(-4)}`);
    expect(bobHtml).not.toContain("Alice's topic");
    expect(await bob.page.locator("#usage-rows tr").count()).toBe(0);
    expect(await bob.page.locator("#usage-empty").isVisible()).toBe(true);
    const aliceHtml = await alice.page.content();
    expect(aliceHtml).not.toContain(`…${bobKeys.exa.slice(-4)}`);
    expect(await alice.page.locator("#key-exa-saved .hint").textContent()).toBe(`…${aliceKeys.exa.slice(-4)}`);
    expect(gemini.requests.every((r) => r.apiKey !== bobKeys.gemini)).toBe(true);
    await shot(alice.page, "8-production-alice");
    await alice.context.close();
    await bob.context.close();
  });

  it("an expired token brings back the sign-in", async () => {
    const carol = await signedIn("user_carol_exp");
    await carol.page.evaluate(
      (token) => {
        (window as unknown as { __testToken: string }).__testToken = token;
      },
      expiredToken(test.signer, { sub: "user_carol_exp", azp: origin }),
    );
    await carol.page.getByRole("button", { name: "Refresh usage" }).click();
    await expect.poll(() => carol.page.locator("#signin").isVisible()).toBe(true);
    await expectAccessible(carol.page, "signed out");
    expect(await carol.page.locator("#app").isVisible()).toBe(false);
    expect(await carol.page.locator("#signin-reason").textContent()).toContain("expired or you are signed out");
    expect(await carol.page.locator("#clerk-signin").getAttribute("data-stand-in")).toBe("mounted");
    await shot(carol.page, "9-signed-out");
    await carol.context.close();
  });

  it("no session at all: the sign-in, and no API call but the config", async () => {
    const context = await browser.newContext();
    await context.addInitScript(clerkStandIn, { token: "", userId: "nobody" });
    await context.addInitScript(() => {
      (window as unknown as { Clerk: { user: null; session: null } }).Clerk.user = null;
      (window as unknown as { Clerk: { session: null } }).Clerk.session = null;
    });
    const page = await context.newPage();
    const calls: string[] = [];
    page.on("request", (r) => {
      if (new URL(r.url()).pathname.startsWith("/api/")) calls.push(new URL(r.url()).pathname);
    });
    await page.goto(origin + "/");
    await expect.poll(() => page.locator("#signin").isVisible()).toBe(true);
    expect(calls).toEqual(["/api/config"]);
    await expectAccessible(page, "the sign-in");
    await context.close();
  });

  it("without a stand-in, ClerkJS is loaded from the publishable key's Frontend API (as Clerk documents), allowed by the CSP", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = watch(page);
    const served: string[] = [];
    // What the instance's Frontend API would serve, answered here: a ClerkJS with nobody signed in.
    await page.route("https://clerk.test.local/**", (route) => {
      served.push(route.request().url());
      return route.fulfill({
        status: 200,
        contentType: "text/javascript",
        headers: { "access-control-allow-origin": "*" },
        body: `window.Clerk = { load: async () => {}, user: null, session: null,
          mountSignIn: (el) => { el.textContent = "ClerkJS sign-in"; el.dataset.standIn = "clerkjs"; }, addListener: () => {} };`,
      });
    });
    await page.goto(origin + "/");
    await expect.poll(() => page.locator("#signin").isVisible()).toBe(true);
    expect(served).toEqual(["https://clerk.test.local/npm/@clerk/clerk-js@5/dist/clerk.browser.js"]);
    const script = page.locator('script[src^="https://clerk.test.local/"]');
    expect(await script.getAttribute("data-clerk-publishable-key")).toBe(publishableKeyFor("clerk.test.local"));
    expect(await script.getAttribute("crossorigin")).toBe("anonymous");
    expect(await page.locator("#clerk-signin").getAttribute("data-stand-in")).toBe("clerkjs");
    expect(problems).toEqual([]);
    await context.close();
  });

  it("failures as sentences: rate limited with a countdown, provider down, key rejected, database down", async () => {
    const dave = await signedIn("user_dave_fail");
    const keys = sampleKeys(7401);
    await dave.page.getByLabel("Gemini API key").fill(keys.gemini);
    await dave.page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => dave.page.locator("#keys-status").textContent()).toContain("Saved");
    await dave.page.getByLabel("Topic").fill("Failures, one by one");
    const generateAndRead = async () => {
      await dave.page.getByRole("button", { name: "Generate" }).click();
      await expect.poll(() => dave.page.locator("#generate-error").isVisible(), { timeout: 20_000 }).toBe(true);
      expect(await dave.page.evaluate(() => document.activeElement?.id)).toBe("generate-error");
      return (await dave.page.locator("#generate-error").textContent()) ?? "";
    };

    gemini.setMode({ fail: 429, retryAfterSeconds: 7 }, keys.gemini);
    const limited = await generateAndRead();
    expect(limited).toContain("Too many requests right now.");
    expect(await dave.page.locator("#generate-status").textContent()).toBe("Not started: too many requests.");
    await expectAccessible(dave.page, "rate limited");
    const first = Number(/Try again in (\d+) seconds?/.exec(limited)?.[1]);
    expect(first).toBeGreaterThanOrEqual(5);
    expect(first).toBeLessThanOrEqual(7);
    await expect
      .poll(async () => Number(/Try again in (\d+)/.exec((await dave.page.locator("#generate-error .countdown").textContent()) ?? "")?.[1]))
      .toBeLessThan(first);
    await shot(dave.page, "10-rate-limited");

    gemini.setMode({ fail: 503 }, keys.gemini);
    expect(await generateAndRead()).toContain("Gemini is not answering right now");
    expect(await dave.page.locator("#generate-status").textContent()).toBe("Stopped: Gemini did not answer.");
    // A retry where one helps: the button sends the same request again.
    gemini.setMode({}, keys.gemini);
    await dave.page.locator("#generate-error").getByRole("button", { name: "Try again" }).click();
    await expect.poll(() => dave.page.locator("#generate-status").textContent(), { timeout: 20_000 }).toBe("Done.");

    gemini.setMode({ fail: "invalid-key" }, keys.gemini);
    const rejected = await generateAndRead();
    expect(rejected).toContain("Gemini rejected your API key");
    expect(await dave.page.locator("#generate-error a").getAttribute("href")).toBe("#keys");
    expect(await dave.page.locator("#generate-status").textContent()).toBe("Stopped: Gemini refused your key.");
    // The key card says it too, with what to do.
    await expect.poll(() => dave.page.locator("#key-gemini-saved .badge").textContent()).toBe("Refused");
    await expectAccessible(dave.page, "a refused key");
    gemini.setMode({}, keys.gemini);

    // The database's outage, as the API reports it (the page's rendering of it is what is tested here).
    await dave.page.route("**/api/usage", (route) =>
      route.fulfill({
        status: 503,
        headers: { "content-type": "application/problem+json", "retry-after": "2" },
        body: JSON.stringify({
          type: "about:blank",
          title: "Database unavailable",
          status: 503,
          code: "database-unavailable",
          detail: "the database could not be reached",
          requestId: "req_x",
        }),
      }),
    );
    await dave.page.getByRole("button", { name: "Refresh usage" }).click();
    await expect.poll(() => dave.page.locator("#usage-error").textContent()).toContain("Our database cannot be reached right now");
    expect(await dave.page.locator("#usage-error .countdown").textContent()).toMatch(/Try again in [12] seconds?/);
    // One "try again", not two ("… try again in a few seconds. Try again in 2 seconds.").
    expect(((await dave.page.locator("#usage-error").textContent()) ?? "").match(/try again/gi)).toHaveLength(1);
    await expectAccessible(dave.page, "the database down");
    // When the countdown ends, a button tries again.
    const retry = dave.page.locator("#usage-error").getByRole("button", { name: "Try again" });
    await expect.poll(() => retry.isVisible(), { timeout: 10_000 }).toBe(true);
    await dave.page.unroute("**/api/usage");
    await retry.click();
    await expect.poll(() => dave.page.locator("#usage-error").isVisible()).toBe(false);
    expect(await dave.page.locator("#usage-rows tr").count()).toBeGreaterThanOrEqual(1);
    expect(dave.problems).toEqual([]);
    await dave.context.close();
  });

  it("the cap in the user's hands within the service's maximum: the default shown, no removing it, a larger one refused beside the field", async () => {
    const erin = await signedIn("user_erin_cap");
    await expect.poll(() => erin.page.locator("#budget-text").textContent()).toContain("of your $1.00 cap (the service's default)");
    expect(await erin.page.locator("#budget-help").textContent()).toContain("Up to $5.00 a month");
    expect(await erin.page.locator("#budget-remove").isVisible()).toBe(false);
    await erin.page.getByLabel("Monthly cap in USD").fill("10");
    await erin.page.getByRole("button", { name: "Set cap" }).click();
    await expect
      .poll(() => erin.page.locator("#budget-error").textContent())
      .toBe("Enter an amount from $0 to $5.00 (this service's maximum).");
    expect(await erin.page.evaluate(() => document.activeElement?.id)).toBe("budget-cap");
    await expectAccessible(erin.page, "a cap above the maximum");
    await erin.page.getByLabel("Monthly cap in USD").fill("3");
    await erin.page.getByRole("button", { name: "Set cap" }).click();
    await expect.poll(() => erin.page.locator("#budget-status").textContent()).toBe("Cap set to $3.00 a month.");
    expect(await erin.page.locator("#budget-error").isVisible()).toBe(false);
    expect(await erin.page.locator("#budget-text").textContent()).toMatch(
      /^\$0\.00 spent, \$3\.00 left of your \$3\.00 cap\. It resets on/,
    );
    expect(erin.problems).toEqual([]);
    await erin.context.close();
  });

  it("the account: export downloads the JSON (no key value), delete asks for the phrase, then signs out", async () => {
    const frank = await signedIn("user_frank_account");
    const keys = sampleKeys(7501);
    await frank.page.getByLabel("Gemini API key").fill(keys.gemini);
    await frank.page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => frank.page.locator("#keys-status").textContent()).toContain("Saved");
    expect(await frank.page.locator("#delete-help").textContent()).toContain("then signs you out");
    const [download] = await Promise.all([
      frank.page.waitForEvent("download"),
      frank.page.getByRole("button", { name: "Download my data (JSON)" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("byok-account-export.json");
    const exported = readFileSync((await download.path())!, "utf8");
    expect(JSON.parse(exported)).toMatchObject({ userId: "user_frank_account" });
    expect(exported).not.toContain(keys.gemini);
    await frank.page.getByLabel("To delete your account, type", { exact: false }).fill("delete my acount");
    await frank.page.getByRole("button", { name: "Delete my account" }).click();
    await expect.poll(() => frank.page.locator("#delete-error").isVisible()).toBe(true);
    await expectAccessible(frank.page, "account deletion not confirmed, production");
    const listed = async () =>
      (await (await fetch(`${origin}/api/onboarding/api-keys`, { headers: { authorization: `Bearer ${frank.token}` } })).json()) as {
        keys: unknown[];
      };
    expect((await listed()).keys).toHaveLength(1);
    await frank.page.getByLabel("To delete your account, type", { exact: false }).fill("delete my account");
    await frank.page.getByRole("button", { name: "Delete my account" }).click();
    await expect.poll(() => frank.page.locator("#signin").isVisible()).toBe(true);
    expect(await frank.page.locator("#signin-reason").textContent()).toContain("Your account was deleted");
    expect((await listed()).keys).toEqual([]);
    expect(frank.problems).toEqual([]);
    await frank.context.close();
  });

  it("recovery: Clerk's script not loading is not 'check your connection'; the service unreachable offers a retry; no publishable key says so", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.route("https://clerk.test.local/**", (route) => route.abort("blockedbyclient"));
    await page.goto(origin + "/");
    await expect.poll(() => page.locator("#notice").isVisible()).toBe(true);
    const clerkDown = (await page.locator("#notice").textContent()) ?? "";
    expect(clerkDown).toContain("The sign-in service (Clerk, at clerk.test.local) did not load, while this service answers");
    expect(clerkDown).not.toContain("Check your connection");
    await shot(page, "12-clerk-blocked");
    await expectAccessible(page, "Clerk's script blocked");

    await page.route("**/api/config", (route) => route.abort("connectionrefused"));
    await page.reload();
    await expect.poll(() => page.locator("#notice").textContent()).toContain("The service cannot be reached");
    expect(await page.locator("#notice").getByRole("button", { name: "Try again" }).isVisible()).toBe(true);
    await expectAccessible(page, "the service unreachable");

    await page.unroute("**/api/config");
    await page.route("**/api/config", async (route) => {
      const answer = await route.fetch();
      const body = { ...((await answer.json()) as object), clerkPublishableKey: null, clerkFrontendApi: null };
      await route.fulfill({ response: answer, json: body });
    });
    await page.reload();
    await expect.poll(() => page.locator("#notice").textContent()).toContain("CLERK_PUBLISHABLE_KEY is missing");
    expect(await page.locator("#notice").textContent()).not.toContain("not configured correctly");
    await expectAccessible(page, "no publishable key");
    await context.close();
  });

  it("untrusted text shows as text: an HTML source title and HTML in the model's output create no element", async () => {
    const mallory = await signedIn("user_mallory_xss");
    const keys = sampleKeys(7301);
    await mallory.page.getByLabel("Gemini API key").fill(keys.gemini);
    await mallory.page.getByLabel("Exa API key").fill(keys.exa);
    await mallory.page.getByRole("button", { name: "Save keys" }).click();
    await expect.poll(() => mallory.page.locator("#keys-status").textContent()).toContain("Saved");
    // The fake Exa titles its results after the query, which is the topic.
    await mallory.page.getByLabel("Topic").fill(xssTitle);
    await mallory.page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => mallory.page.locator("#generate-status").textContent(), { timeout: 20_000 }).toBe("Done.");
    expect(await mallory.page.locator("#sources li").first().textContent()).toContain(xssTitle);
    expect(await mallory.page.locator("#post").textContent()).toContain("<script>window.__xss=2</script>");
    expect(await mallory.page.locator("#sources img, #post img, #post script, #post b, #sources script").count()).toBe(0);
    expect(await mallory.page.locator("img").count()).toBe(0);
    // Only the renderer's fixed set of elements inside the post.
    const tags = await mallory.page.locator("#post *").evaluateAll((nodes) => [...new Set(nodes.map((n) => n.tagName.toLowerCase()))]);
    for (const tag of tags) expect(["h2", "h3", "h4", "p", "ul", "ol", "li", "strong", "em", "a"]).toContain(tag);
    expect(await mallory.page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    expect(mallory.problems).toEqual([]);
    await mallory.context.close();
  });
});
