/**
 * The web app's delivery, without a browser: what `npm start` serves from public/ (pages,
 * hashed and precompressed assets, security headers), that vercel.json states the same
 * headers for Vercel, that the built page has no inline script, GET /api/config, and the
 * publishable-key decoding the CSP and the ClerkJS URL come from.
 */
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { staticSite, withStaticSite } from "../../lib/server/static.js";
import { contentSecurityPolicy, securityHeaders } from "../../lib/http/security-headers.js";
import { OUTER_POLICY } from "../../scripts/vercel-headers.js";
import { clerkJsUrl, parsePublishableKey, publishableKeyFor } from "../../lib/platform/auth/publishable-key.js";
import { backends } from "../helpers/db.js";
import { expectStatus, makeRuntime, request } from "../helpers/runtime.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const publicDir = join(root, "public");
const get = (path: string, headers: Record<string, string> = {}) => new Request(`http://localhost${path}`, { headers });

describe("static site (lib/server/static.ts over the built public/)", () => {
  const site = staticSite(publicDir, { clerkFrontendApi: null });
  const assets = readdirSync(join(publicDir, "assets"));

  it("serves / and /docs as pages: revalidated, with every security header", async () => {
    for (const path of ["/", "/docs", "/docs/"]) {
      const response = site.handle(get(path))!;
      expect(response, path).not.toBeNull();
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(response.headers.get("cache-control")).toBe("no-cache");
      for (const [name, value] of Object.entries(securityHeaders(null))) expect(response.headers.get(name), `${path} ${name}`).toBe(value);
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      expect(response.headers.get("referrer-policy")).toBe("strict-origin-when-cross-origin");
      expect(response.headers.get("content-security-policy")).toMatch(/^default-src 'self'; script-src 'self';/);
    }
    expect(await site.handle(get("/"))!.text()).toContain("Bring your own keys");
  });

  it("the pages hold no inline script and no inline event handler: the CSP allows none", () => {
    for (const page of ["index.html", "docs/index.html"]) {
      const html = readFileSync(join(publicDir, page), "utf8");
      for (const tag of html.match(/<script\b[^>]*>/g) ?? []) expect(tag, page).toMatch(/\ssrc="\/assets\/[\w.-]+\.js"/);
      expect(html.match(/<script\b[^>]*>[^<]+<\/script>/g), page).toBeNull();
      expect(html, page).not.toMatch(/\son[a-z]+=/i);
      expect(html, page).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
  });

  it("hashed assets: cached for a year, immutable; brotli or gzip when accepted, identical once decoded", () => {
    const js = assets.find((a) => /^app-[0-9A-F]{8}\.js$/.test(a))!;
    expect(js).toBeDefined();
    const plain = site.handle(get(`/assets/${js}`))!;
    expect(plain.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(plain.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect(plain.headers.get("vary")).toBe("Accept-Encoding");
    const original = readFileSync(join(publicDir, "assets", js));
    const br = site.handle(get(`/assets/${js}`, { "accept-encoding": "gzip, deflate, br" }))!;
    expect(br.headers.get("content-encoding")).toBe("br");
    const gz = site.handle(get(`/assets/${js}`, { "accept-encoding": "gzip" }))!;
    expect(gz.headers.get("content-encoding")).toBe("gzip");
    return Promise.all([br.arrayBuffer(), gz.arrayBuffer()]).then(([b, g]) => {
      expect(brotliDecompressSync(Buffer.from(b)).equals(original)).toBe(true);
      expect(gunzipSync(Buffer.from(g)).equals(original)).toBe(true);
      expect(b.byteLength).toBeLessThan(original.length / 2);
    });
  });

  it("every asset's name carries the hash of its content", async () => {
    const { createHash } = await import("node:crypto");
    for (const asset of assets.filter((a) => !a.endsWith(".br") && !a.endsWith(".gz"))) {
      const hash = /-([0-9A-F]{8})\.\w+$/.exec(asset)?.[1];
      expect(hash, asset).toBeDefined();
      expect(
        createHash("sha256")
          .update(readFileSync(join(publicDir, "assets", asset)))
          .digest("hex")
          .slice(0, 8)
          .toUpperCase(),
      ).toBe(hash);
    }
  });

  it("serves only the files it listed: no /api path, no traversal, no dotfile, no precompressed twin by name, GET/HEAD only", () => {
    for (const path of [
      "/api/health",
      "/api",
      "/../package.json",
      "/%2e%2e/package.json",
      "/assets/../../package.json",
      "/.env",
      "/index.html.br",
      "/nope",
    ]) {
      expect(site.handle(get(path)), path).toBeNull();
    }
    expect(site.handle(new Request("http://localhost/", { method: "POST" }))).toBeNull();
    const head = site.handle(new Request("http://localhost/", { method: "HEAD" }))!;
    expect(head.status).toBe(200);
    expect(head.body).toBeNull();
  });

  it("a matching ETag answers 304", () => {
    const etag = site.handle(get("/"))!.headers.get("etag")!;
    expect(site.handle(get("/", { "if-none-match": etag }))!.status).toBe(304);
  });

  it("everything else goes to the app (its problem+json 404 included)", async () => {
    const app = (request: Request) => new Response(`app: ${new URL(request.url).pathname}`, { status: 404 });
    const fetch = withStaticSite(site, app);
    expect(await (await fetch(get("/api/health"))).text()).toBe("app: /api/health");
    expect(await (await fetch(get("/missing"))).text()).toBe("app: /missing");
    expect((await fetch(get("/"))).status).toBe(200);
  });
});

describe("Content-Security-Policy", () => {
  it("without Clerk: this origin only, no inline script or style, no eval, no framing", () => {
    const csp = contentSecurityPolicy(null);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("style-src 'self';");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).not.toMatch(/unsafe-eval|unsafe-inline|\*/);
  });

  it("with Clerk: exactly the instance's Frontend API (and Clerk's challenge and image hosts) added", () => {
    const csp = contentSecurityPolicy("clerk.app.example");
    expect(csp).toContain("script-src 'self' https://clerk.app.example https://challenges.cloudflare.com;");
    expect(csp).toContain("connect-src 'self' https://clerk.app.example;");
    expect(csp).not.toContain("unsafe-eval");
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
  });

  it("vercel.json sends the same headers on Vercel (its CSP the outer bound; scripts/vercel-headers.ts writes the exact one), and caches /assets for a year", () => {
    const vercel = JSON.parse(readFileSync(join(root, "vercel.json"), "utf8")) as {
      buildCommand: string;
      outputDirectory: string;
      headers: { source: string; headers: { key: string; value: string }[] }[];
    };
    expect(vercel.buildCommand).toBe("npm run build:web && tsx scripts/vercel-headers.ts");
    expect(vercel.outputDirectory).toBe("public");
    const pages = vercel.headers.find((h) => h.source === "/((?!api/).*)")!;
    const sent = Object.fromEntries(pages.headers.map((h) => [h.key.toLowerCase(), h.value]));
    expect(sent).toEqual({ ...securityHeaders(null), "content-security-policy": OUTER_POLICY });
    const assets = vercel.headers.find((h) => h.source === "/assets/(.*)")!;
    expect(assets.headers).toEqual([{ key: "Cache-Control", value: "public, max-age=31536000, immutable" }]);
  });
});

describe("Clerk publishable keys (lib/platform/auth/publishable-key.ts)", () => {
  it("decodes the Frontend API host of test and live keys", () => {
    expect(parsePublishableKey(publishableKeyFor("happy-hippo-1.clerk.accounts.dev"))).toEqual({
      instance: "test",
      frontendApi: "happy-hippo-1.clerk.accounts.dev",
    });
    expect(parsePublishableKey(publishableKeyFor("clerk.example.com", "live"))).toEqual({
      instance: "live",
      frontendApi: "clerk.example.com",
    });
    expect(clerkJsUrl("clerk.example.com")).toBe("https://clerk.example.com/npm/@clerk/clerk-js@5/dist/clerk.browser.js");
  });

  it("refuses anything that would put another origin or a script into the CSP", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    for (const key of [
      "",
      "pk_test_",
      "sk_test_" + b64("clerk.example.com$"),
      "pk_test_" + b64("clerk.example.com"), // no $
      "pk_test_" + b64("clerk.example.com; script-src *$"),
      "pk_test_" + b64("evil.example/path$"),
      "pk_test_" + b64("localhost$"),
      "pk_test_" + b64("clerk.example.com:8443$"),
      "pk_test_" + b64("*.example.com$"),
      "pk_test_" + b64("-bad.example.com$"),
      "pk_test_" + b64("a".repeat(64) + ".example.com$"),
      "pk_test_" + b64("clerk.example.com$") + " ",
      "pk_test_" + b64("clerk.example.com$").replace(/=/g, "") + "!",
    ]) {
      expect(parsePublishableKey(key), key).toBeNull();
    }
  });
});

describe("GET /api/config", () => {
  for (const backend of backends.slice(0, 1)) {
    it("production: the publishable key and its host, the providers with labels, formats and where to get them, no secret", async () => {
      const database = await backend.open();
      try {
        const pk = publishableKeyFor("clerk.app.example", "live");
        const test = makeRuntime({
          database,
          mode: "production",
          env: { CLERK_PUBLISHABLE_KEY: pk, GEMINI_API_KEY: "AIzaSyOperatorKeyMustNeverShow0000000000" },
        });
        const response = await test.fetch(request("GET", "/api/config"));
        const body = await expectStatus(response, 200);
        expect(body.mode).toBe("production");
        expect(body.clerkPublishableKey).toBe(pk);
        expect(body.clerkFrontendApi).toBe("clerk.app.example");
        expect(body.devUserId).toBeNull();
        expect(body.providers.map((p: { label: string }) => p.label)).toEqual(["Gemini API key", "Exa API key", "CopilotKit public key"]);
        for (const p of body.providers) {
          expect(p.format.length).toBeGreaterThan(5);
          expect(p.whereToGet).toMatch(/^https:\/\//);
        }
        expect(body.limits.wordCount).toEqual({ min: 200, max: 3000, default: 800 });
        const text = JSON.stringify(body);
        for (const secret of [test.signer.publicPem.slice(30, 60), "KEY_ENCRYPTION", "AIzaSyOperator", "whsec_"])
          expect(text).not.toContain(secret);

        const dev = makeRuntime({ database, mode: "development", env: { CLERK_PUBLISHABLE_KEY: "pk_test_notvalid" } });
        const devBody = await expectStatus(await dev.fetch(request("GET", "/api/config")), 200);
        expect(devBody).toMatchObject({ mode: "development", clerkPublishableKey: null, clerkFrontendApi: null, devUserId: "local-dev" });
      } finally {
        await database.destroy();
      }
    });
  }
});

describe("problem bodies carry retry_after (the web app's countdown inside a stream)", () => {
  it("the Retry-After seconds, whatever the header's case; none without one or for a date", async () => {
    const { AppError } = await import("../../lib/http/errors.js");
    const { problemBody } = await import("../../lib/http/problem.js");
    expect(problemBody(new AppError("rate-limited", { detail: "x", headers: { "Retry-After": "7" } }), "req_1").retry_after).toBe(7);
    expect(problemBody(new AppError("database-unavailable", { detail: "x", headers: { "retry-after": "5" } }), "req_1").retry_after).toBe(
      5,
    );
    expect(problemBody(new AppError("rate-limited", { detail: "x" }), "req_1")).not.toHaveProperty("retry_after");
    expect(
      problemBody(new AppError("rate-limited", { detail: "x", headers: { "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT" } }), "req_1"),
    ).not.toHaveProperty("retry_after");
  });
});
