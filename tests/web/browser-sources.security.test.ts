/**
 * Generation sources in the web app, in Chromium: a source's URL comes from Exa (any page on the
 * web), so a `javascript:`, `data:`, `vbscript:`, `file:` or other non-http(s) URL must show as
 * plain text, never as a link (clicking it would run script on this origin, where the page holds
 * the user's session). The generation's answer is stubbed in the browser (page.route), so the
 * test gives the page exactly the hostile sources, whatever the server would pass on. Skipped,
 * and said so, without a Chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { chromium, type Browser } from "playwright-core";
import { chromiumArgs, chromiumPath } from "../../testkit/browser.js";
import { makeRuntime, type TestRuntime } from "../helpers/runtime.js";
import { backends, type TestDatabase } from "../helpers/db.js";
import { staticSite, withStaticSite } from "../../lib/server/static.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const executablePath = chromiumPath();
if (!executablePath) process.stdout.write("tests/web/browser-sources.security.test.ts: SKIPPED, no Chromium\n");
const describeBrowser = executablePath ? describe : describe.skip;

/** [url, title]: only the last two are web pages. */
const hostile: [string, string][] = [
  ["javascript:window.__pwned=1", "javascript scheme"],
  ["JaVaScRiPt:window.__pwned=2", "mixed-case javascript"],
  [" javascript:window.__pwned=3", "javascript after a space"],
  ["java\tscript:window.__pwned=4", "javascript with a tab"],
  ["data:text/html,<script>window.__pwned=5</script>", "data URL"],
  ["vbscript:msgbox(1)", "vbscript"],
  ["file:///etc/passwd", "file URL"],
  ["blob:https://evil.example/0000", "blob URL"],
  ["//evil.example/protocol-relative", "protocol-relative"],
  ["not a url at all", "plain words"],
];
const pages: [string, string][] = [
  ["https://example.com/ok", "an https page"],
  ["http://example.org/ok", "an http page"],
];
const sources = [...hostile, ...pages].map(([url, title]) => ({ url, title }));

/** The SSE stream of a generation whose sources are `sources`. */
function stream(): string {
  const usage = {
    gemini: { model: "gemini-test", inputTokens: 1, outputTokens: 1, costUsd: 0 },
    exa: { requests: 1, costUsd: 0 },
    totalCostUsd: 0,
  };
  const events: [string, unknown][] = [
    ["status", { phase: "research" }],
    ["sources", sources],
    ["delta", { text: "A post citing [1] and [11]." }],
    ["usage", usage],
    ["done", { markdown: "A post citing [1] and [11].", sources, usage, keySource: "env" }],
  ];
  return events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join("");
}

describeBrowser("web app in Chromium: source URLs that are not http(s) show as text", () => {
  let browser: Browser;
  let server: Server;
  let origin: string;
  let database: TestDatabase;
  let dev: TestRuntime;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath, args: chromiumArgs });
    database = await backends[0]!.open();
    dev = makeRuntime({ database, mode: "development", env: { CLERK_JWT_KEY: "", CLERK_AUTHORIZED_PARTIES: "" } });
    const site = staticSite(join(root, "public"), { clerkFrontendApi: null });
    const fetchApp = withStaticSite(site, (request) => dev.app.fetch(request));
    server = serve({ fetch: fetchApp, port: 0, hostname: "127.0.0.1" }) as Server;
    await new Promise((r) => server.once("listening", r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    await database?.destroy();
  });

  it("renders every hostile source as text and only http(s) sources as links; nothing runs", async () => {
    const context = await browser.newContext();
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
    await page.route("**/api/blog/generate", (route) =>
      route.fulfill({ status: 200, headers: { "content-type": "text/event-stream", "cache-control": "no-store" }, body: stream() }),
    );
    await page.goto(origin + "/");
    await page.getByLabel("Topic").fill("Hostile sources");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => page.locator("#generate-status").textContent()).toBe("Done.");

    const items = page.locator("#sources li");
    expect(await items.count()).toBe(sources.length);
    const rendered = await items.evaluateAll((lis) =>
      lis.map((li) => ({ text: li.textContent ?? "", hrefs: [...li.querySelectorAll("a")].map((a) => a.getAttribute("href")) })),
    );
    for (const [i, [url, title]] of hostile.entries()) {
      expect(rendered[i], url).toEqual({ text: title, hrefs: [] });
    }
    for (const [j, [url, title]] of pages.entries()) {
      expect(rendered[hostile.length + j], url).toEqual({ text: title, hrefs: [new URL(url).href] });
    }
    // No link anywhere in the document to a scheme that is not http(s) or the page's own anchors.
    const hrefs = await page.locator("a[href]").evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
    for (const href of hrefs) expect(href, href).toMatch(/^https?:/);
    // Clicking each hostile entry runs nothing.
    for (let i = 0; i < hostile.length; i++) await items.nth(i).click();
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(problems).toEqual([]);
    await context.close();
  });
});
