/**
 * Clerk publishable keys (`pk_test_…` / `pk_live_…`): the prefix, then base64 of the
 * instance's Frontend API host followed by `$`. Public by nature (every page that signs users
 * in carries it); decoded here so the web app's Content-Security-Policy and the ClerkJS
 * script URL name exactly that host.
 */

export interface PublishableKey {
  /** `pk_test_…` (development instance) or `pk_live_…` (production instance). */
  instance: "test" | "live";
  /** The Frontend API host, e.g. `clerk.example.com` or `happy-hippo-1.clerk.accounts.dev`. */
  frontendApi: string;
}

/** One DNS label: letters, digits and inner hyphens, 1 to 63 characters. */
function isLabel(label: string): boolean {
  if (label.length === 0 || label.length > 63 || label.startsWith("-") || label.endsWith("-")) return false;
  for (const ch of label) {
    const ok = (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || ch === "-";
    if (!ok) return false;
  }
  return true;
}

/** A host name with at least two labels (no port, no IP-literal brackets, no path). */
function isHostName(host: string): boolean {
  if (host.length > 253) return false;
  const labels = host.split(".");
  return labels.length >= 2 && labels.every(isLabel);
}

/** The decoded key, or null when `key` is not a well-formed Clerk publishable key. */
export function parsePublishableKey(key: string): PublishableKey | null {
  let instance: PublishableKey["instance"];
  if (key.startsWith("pk_test_")) instance = "test";
  else if (key.startsWith("pk_live_")) instance = "live";
  else return null;
  const encoded = key.slice("pk_test_".length);
  if (encoded.length === 0 || encoded.length > 400) return null;
  for (const ch of encoded) {
    const ok = (ch >= "A" && ch <= "Z") || (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || ch === "+" || ch === "/" || ch === "=";
    if (!ok) return null;
  }
  const decoded = Buffer.from(encoded, "base64").toString("latin1");
  if (!decoded.endsWith("$")) return null;
  const frontendApi = decoded.slice(0, -1).toLowerCase();
  return isHostName(frontendApi) ? { instance, frontendApi } : null;
}

/** A publishable key for `frontendApi` (tests and documentation). */
export function publishableKeyFor(frontendApi: string, instance: PublishableKey["instance"] = "test"): string {
  return `pk_${instance}_${Buffer.from(`${frontendApi}$`).toString("base64")}`;
}

/**
 * Where ClerkJS is loaded from, as Clerk documents for a publishable key: the instance's own
 * Frontend API serves the browser bundle (major version pinned).
 */
export function clerkJsUrl(frontendApi: string): string {
  return `https://${frontendApi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`;
}
