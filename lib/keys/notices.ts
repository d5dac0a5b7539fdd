/**
 * Lifecycle notices: what a user should know about a saved key before it fails, shown in the
 * key list (GET /api/onboarding/api-keys) and the web app until the key is replaced. Derived
 * from the key itself when the list decrypts it, so nothing more is stored.
 */
import { geminiKeyKind, type Provider } from "../providers/registry.js";

export interface KeyNotice {
  /** Stable, kebab-case: clients may key translations or UI on it. */
  code: "gemini-standard-key-retiring";
  message: string;
  /** What to do, in words. */
  action: string;
}

/**
 * Google is retiring standard Gemini keys ("AIza…"): unrestricted ones are rejected since
 * 2026-06-19 and all of them from September 2026; AI Studio creates only authorization keys
 * ("AQ.…") (ai.google.dev/gemini-api/docs/api-key, read 2026-12-07; docs/provider-facts.md).
 */
const standardKeyRetiring: KeyNotice = Object.freeze({
  code: "gemini-standard-key-retiring",
  message: "Google is retiring standard Gemini API keys (AIza…): this key stops working when Google rejects standard keys.",
  action: "Create a new key in Google AI Studio (aistudio.google.com/apikey) and save it here.",
});

/** The notices for one stored key (its plaintext, never returned). */
export function keyNotices(provider: Provider, key: string): KeyNotice[] {
  if (provider === "gemini" && geminiKeyKind(key) === "standard") return [standardKeyRetiring];
  return [];
}
