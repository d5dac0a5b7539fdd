/**
 * The browser the web app's tests drive: Debian's `chromium` through playwright-core (no
 * browser download). `CHROMIUM_PATH` overrides the places looked at.
 */
import { existsSync } from "node:fs";

const candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium"];

/** The Chromium executable, or undefined when none is installed. */
export function chromiumPath(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) return existsSync(configured) ? configured : undefined;
  return candidates.find((path) => existsSync(path));
}

/** What a Chromium launched for tests needs: no sandbox as root in containers, no GPU. */
export const chromiumArgs = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];

/**
 * A stand-in for ClerkJS (`window.Clerk`), installed with Playwright's `addInitScript` before
 * the page's own scripts run: `session.getToken()` answers `window.__testToken`, which the
 * test sets (and replaces with an expired token to sign the user out); `mountSignIn` leaves
 * a marker the test looks for. Runs in the page: no closures over Node values.
 */
export function clerkStandIn(input: { token: string; userId: string }): void {
  const w = window as unknown as Record<string, unknown>;
  w.__testToken = input.token;
  w.Clerk = {
    load: async () => {},
    user: { id: input.userId, primaryEmailAddress: { emailAddress: `${input.userId}@example.test` } },
    session: { getToken: async () => (w.__testToken as string | null) ?? null },
    mountSignIn: (element: HTMLElement) => {
      element.textContent = "Stand-in Clerk sign-in";
      element.dataset.standIn = "mounted";
    },
    addListener: () => {},
    signOut: async () => {},
  };
}
