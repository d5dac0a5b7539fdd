/**
 * Headers of every page and asset of the web app (public/): a strict Content-Security-Policy
 * (scripts from this origin only, no inline script, no eval; Clerk's origins only when a
 * publishable key names a Frontend API), no MIME sniffing, no referrer to other origins, no
 * framing. `npm start` sends them (lib/server/static.ts); vercel.json states the same for
 * Vercel's static output (tests/web/static.security.test.ts keeps the two in step).
 */

/** Cloudflare Turnstile: Clerk's bot protection on sign-up runs in this frame. */
const CLERK_CHALLENGES = "https://challenges.cloudflare.com";
/** Clerk serves avatars and logos from here. */
const CLERK_IMAGES = "https://img.clerk.com";

/** The Content-Security-Policy for `clerkFrontendApi` (null: no Clerk, development or unconfigured). */
export function contentSecurityPolicy(clerkFrontendApi: string | null): string {
  const clerk = clerkFrontendApi ? `https://${clerkFrontendApi}` : null;
  const directives: Record<string, string[]> = {
    "default-src": ["'self'"],
    "script-src": ["'self'", ...(clerk ? [clerk, CLERK_CHALLENGES] : [])],
    // Clerk's components style themselves at run time; without Clerk no inline style either.
    "style-src": ["'self'", ...(clerk ? ["'unsafe-inline'"] : [])],
    "img-src": ["'self'", "data:", ...(clerk ? [CLERK_IMAGES] : [])],
    "connect-src": ["'self'", ...(clerk ? [clerk] : [])],
    "frame-src": clerk ? [CLERK_CHALLENGES] : ["'none'"],
    "worker-src": ["'self'", ...(clerk ? ["blob:"] : [])],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
  };
  return Object.entries(directives)
    .map(([name, values]) => `${name} ${values.join(" ")}`)
    .join("; ");
}

/** Every header a page or asset of the web app carries (besides caching and encoding). */
export function securityHeaders(clerkFrontendApi: string | null): Record<string, string> {
  return {
    "content-security-policy": contentSecurityPolicy(clerkFrontendApi),
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
  };
}
