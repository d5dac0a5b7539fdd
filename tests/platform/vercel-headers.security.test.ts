/**
 * The web app's CSP on Vercel from configuration (scripts/vercel-headers.ts). The reproduction:
 * vercel.json's CSP trusted `https://*.clerk.accounts.dev` (any Clerk development tenant, which
 * anyone can create) and blocked a production instance on a custom domain. Now vercel.json is an
 * outer bound naming no tenant, and the build writes the exact policy for the Frontend API of
 * CLERK_PUBLISHABLE_KEY into every page.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { contentSecurityPolicy } from "../../lib/http/security-headers.js";
import { publishableKeyFor } from "../../lib/platform/auth/publishable-key.js";
import { applyPolicy, frontendApiOf, metaPolicy, OUTER_POLICY, withPolicyMeta } from "../../scripts/vercel-headers.js";

const root = join(import.meta.dirname, "../..");
const vercel = JSON.parse(readFileSync(join(root, "vercel.json"), "utf8")) as {
  buildCommand: string;
  headers: { source: string; headers: { key: string; value: string }[] }[];
};
const headerCsp = vercel.headers.flatMap((h) => h.headers).find((h) => h.key === "Content-Security-Policy")!.value;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A public/ with two pages (and their twins) and an asset. */
function site(): string {
  const dir = mkdtempSync(join(tmpdir(), "byok-vercel-headers-"));
  dirs.push(dir);
  mkdirSync(join(dir, "docs"));
  mkdirSync(join(dir, "assets"));
  const page = (title: string) =>
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${title}</title>\n<script type="module" src="/assets/app-AAAAAAAA.js"></script>\n</head>\n<body></body>\n</html>\n`;
  for (const [file, html] of [
    ["index.html", page("app")],
    ["docs/index.html", page("docs")],
  ] as const) {
    writeFileSync(join(dir, file), html);
    writeFileSync(join(dir, `${file}.gz`), gzipSync(html));
    writeFileSync(join(dir, `${file}.br`), "stale");
  }
  writeFileSync(join(dir, "assets/app-AAAAAAAA.js"), "console.log(1)");
  return dir;
}

/** The policies of the CSP meta elements of `html`. */
function metaPolicies(html: string): string[] {
  return html
    .split("\n")
    .filter((line) => line.startsWith('<meta http-equiv="Content-Security-Policy"'))
    .map((line) =>
      line
        .slice(line.indexOf('content="') + 9, line.lastIndexOf('"'))
        .replaceAll("&quot;", '"')
        .replaceAll("&amp;", "&"),
    );
}

describe("vercel.json: an outer bound that trusts no Clerk tenant", () => {
  it("names no wildcard host and no Clerk host, and keeps what a meta element cannot say", () => {
    expect(headerCsp).toBe(OUTER_POLICY);
    expect(headerCsp).not.toContain("*");
    expect(headerCsp).not.toContain("clerk");
    expect(headerCsp).not.toContain("unsafe-eval");
    expect(headerCsp).toContain("script-src 'self' https:;");
    expect(headerCsp).toContain("frame-ancestors 'none'");
    expect(headerCsp).toContain("object-src 'none'");
    expect(headerCsp).toContain("base-uri 'none'");
  });

  it("the build runs the script after the web app", () => {
    expect(vercel.buildCommand).toBe("npm run build:web && tsx scripts/vercel-headers.ts");
  });
});

describe("scripts/vercel-headers.ts", () => {
  it("writes the exact policy of the publishable key's Frontend API into every page, first in <head>, twins refreshed", () => {
    const dir = site();
    const host = frontendApiOf(publishableKeyFor("clerk.app.example", "live"));
    expect(host).toBe("clerk.app.example");
    expect(
      applyPolicy(dir, host)
        .map((p) => p.slice(dir.length))
        .sort(),
    ).toEqual(["/docs/index.html", "/index.html"]);
    for (const file of ["index.html", "docs/index.html"]) {
      const html = readFileSync(join(dir, file), "utf8");
      expect(metaPolicies(html)).toEqual([metaPolicy("clerk.app.example")]);
      expect(html.indexOf('http-equiv="Content-Security-Policy"')).toBeLessThan(html.indexOf("<script"));
      expect(html.startsWith('<!doctype html>\n<html lang="en">\n<head>\n<meta http-equiv="Content-Security-Policy"')).toBe(true);
      expect(gunzipSync(readFileSync(join(dir, `${file}.gz`))).toString()).toBe(html);
      expect(brotliDecompressSync(readFileSync(join(dir, `${file}.br`))).toString()).toBe(html);
    }
    expect(readFileSync(join(dir, "assets/app-AAAAAAAA.js"), "utf8")).toBe("console.log(1)");
    const policy = metaPolicy("clerk.app.example");
    expect(policy).toContain("script-src 'self' https://clerk.app.example https://challenges.cloudflare.com;");
    expect(policy).toContain("connect-src 'self' https://clerk.app.example;");
    expect(policy).not.toContain("clerk.accounts.dev");
    expect(policy).not.toContain("frame-ancestors"); // ignored in a meta element: the header has it
    expect(`${policy}; frame-ancestors 'none'`).toBe(contentSecurityPolicy("clerk.app.example"));
  });

  it("without a key: no Clerk host at all; run again: still one policy, the new one", () => {
    const dir = site();
    applyPolicy(dir, "clerk.old.example");
    applyPolicy(dir, null);
    const html = readFileSync(join(dir, "index.html"), "utf8");
    expect(metaPolicies(html)).toEqual([metaPolicy(null)]);
    expect(html).not.toContain("clerk");
  });

  it("refuses a key that does not decode, and a page it cannot place the policy in", () => {
    for (const bad of ["pk_live_", "pk_live_%%%", "sk_live_abc", publishableKeyFor("localhost")]) {
      expect(() => frontendApiOf(bad), bad).toThrow(/not a Clerk publishable key/);
    }
    expect(frontendApiOf(undefined)).toBeNull();
    expect(() => withPolicyMeta("<html><body></body></html>", "x")).toThrow(/without <head>/);
    expect(() => withPolicyMeta('<head><meta http-equiv="Content-Security-Policy" content="x"', "y")).toThrow(/unterminated/);
    expect(withPolicyMeta("<HEAD></HEAD>", 'a "b" & c')).toBe(
      '<HEAD>\n<meta http-equiv="Content-Security-Policy" content="a &quot;b&quot; &amp; c"></HEAD>',
    );
  });

  it("as the build runs it: from CLERK_PUBLISHABLE_KEY, and a bad key fails the build without echoing it", () => {
    const dir = site();
    const run = (key: string) =>
      spawnSync(process.execPath, ["--import", "tsx", "scripts/vercel-headers.ts", dir], {
        cwd: root,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", VERCEL: "1", CLERK_PUBLISHABLE_KEY: key },
        encoding: "utf8",
      });
    const ok = run(publishableKeyFor("clerk.shop.example", "live"));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("Clerk at https://clerk.shop.example written into 2 page(s)");
    expect(metaPolicies(readFileSync(join(dir, "index.html"), "utf8"))).toEqual([metaPolicy("clerk.shop.example")]);
    const bad = run("pk_live_bm90LWEtaG9zdA==");
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("CLERK_PUBLISHABLE_KEY is not a Clerk publishable key");
    expect(bad.stderr).not.toContain("bm90LWEtaG9zdA");
  });
});
