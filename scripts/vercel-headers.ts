/**
 * The web app's Content-Security-Policy on Vercel, from configuration, at build time
 * (vercel.json `buildCommand` runs it after `npm run build:web`). vercel.json's headers are
 * static, read before any build step, so they cannot name the Clerk instance; they used to trust
 * every Clerk development tenant (`https://*.clerk.accounts.dev`, which anyone can create) and
 * blocked a production instance on a custom domain. Now:
 *
 * - vercel.json's header is only an outer bound (OUTER_POLICY: this origin and https, no inline
 *   script, no eval, no plugins, no framing, no <base>);
 * - this script writes the exact policy `npm start` sends (lib/http/security-headers.ts, for the
 *   Frontend API host decoded from CLERK_PUBLISHABLE_KEY; without a key, no Clerk at all) into
 *   every page of public/ as `<meta http-equiv="Content-Security-Policy">`, the first element of
 *   `<head>`, and refreshes the pages' .br/.gz twins. Browsers enforce both policies, so the
 *   exact one decides. (`frame-ancestors` cannot be set by a meta element: the header keeps it.)
 *
 * A publishable key that does not decode stops the build. Run by hand:
 * `CLERK_PUBLISHABLE_KEY=pk_live_… npx tsx scripts/vercel-headers.ts [public-dir]`.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { ConfigError, loadConfig } from "../lib/platform/env.js";
import { parsePublishableKey } from "../lib/platform/auth/publishable-key.js";
import { contentSecurityPolicy } from "../lib/http/security-headers.js";

/** vercel.json's Content-Security-Policy header: the outer bound every page stays within. */
export const OUTER_POLICY =
  "default-src 'self' https:; script-src 'self' https:; style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; " +
  "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const META_START = '<meta http-equiv="Content-Security-Policy"';

/** The Frontend API host of `publishableKey`, or null without one. Throws when the key does not decode. */
export function frontendApiOf(publishableKey: string | undefined): string | null {
  if (publishableKey === undefined) return null;
  const parsed = parsePublishableKey(publishableKey);
  if (!parsed)
    throw new Error(
      "CLERK_PUBLISHABLE_KEY is not a Clerk publishable key (pk_test_… or pk_live_…); copy it from Clerk's dashboard, API keys",
    );
  return parsed.frontendApi;
}

/** The exact policy as a meta element may carry it: lib/http/security-headers.ts's, without frame-ancestors. */
export function metaPolicy(frontendApi: string | null): string {
  return contentSecurityPolicy(frontendApi)
    .split("; ")
    .filter((directive) => !directive.startsWith("frame-ancestors "))
    .join("; ");
}

/** `html` with exactly one CSP meta element, `policy`, right after `<head>` (any earlier one removed). */
export function withPolicyMeta(html: string, policy: string): string {
  let out = html;
  for (let at = out.indexOf(META_START); at >= 0; at = out.indexOf(META_START)) {
    let end = out.indexOf(">", at) + 1;
    if (end === 0) throw new Error("an unterminated Content-Security-Policy meta element");
    if (out[end] === "\n") end++;
    out = out.slice(0, at) + out.slice(end);
  }
  const head = out.toLowerCase().indexOf("<head>");
  if (head < 0) throw new Error("a page without <head>");
  const escaped = policy.replaceAll("&", "&amp;").replaceAll('"', "&quot;");
  const insertAt = head + "<head>".length;
  return `${out.slice(0, insertAt)}\n${META_START} content="${escaped}">${out.slice(insertAt)}`;
}

function htmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...htmlFiles(full));
    else if (entry.endsWith(".html")) out.push(full);
  }
  return out;
}

/** Writes the policy for `frontendApi` into every page under `publicDir` (and its .br/.gz twins); returns the pages. */
export function applyPolicy(publicDir: string, frontendApi: string | null): string[] {
  const policy = metaPolicy(frontendApi);
  const pages = htmlFiles(publicDir);
  for (const page of pages) {
    const html = withPolicyMeta(readFileSync(page, "utf8"), policy);
    writeFileSync(page, html);
    if (existsSync(`${page}.gz`)) writeFileSync(`${page}.gz`, gzipSync(html, { level: 9 }));
    if (existsSync(`${page}.br`)) {
      writeFileSync(`${page}.br`, brotliCompressSync(html, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
    }
  }
  return pages;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const config = loadConfig();
    const frontendApi = frontendApiOf(config.clerk.publishableKey);
    const publicDir = resolve(process.argv[2] ?? "public");
    const pages = applyPolicy(publicDir, frontendApi);
    process.stdout.write(
      `vercel-headers: Content-Security-Policy for ${frontendApi ? `Clerk at https://${frontendApi}` : "no Clerk (CLERK_PUBLISHABLE_KEY is not set)"} written into ${pages.length} page(s)\n`,
    );
  } catch (error) {
    const message = error instanceof ConfigError ? error.issues.join("; ") : error instanceof Error ? error.message : String(error);
    process.stderr.write(`vercel-headers: ${message}\n`);
    process.exit(1);
  }
}
