/**
 * Key health: what the last upstream calls said about each stored key, so a user sees which
 * key is broken and why. Written after the upstream call, in the same statement as the usage
 * rows (lib/generation/budget.ts `settleGeneration` composes lib/keys/store.ts
 * `keyHealthUpdateSql`), so the key path (the read before the call) costs nothing more.
 *
 * Only a verdict and a problem code are kept, never upstream text: Google's errors can quote
 * the key itself ("Consumer 'api_key:AIza…' has been suspended").
 */
import { AppError, type ErrorCode } from "../http/errors.js";
import type { Provider } from "../providers/registry.js";
import { isKeyRejectionReason, type KeyRejectionReason } from "../providers/rejections.js";

/**
 * What one upstream call said about the key:
 * - `ok`: it succeeded (status becomes `ok`);
 * - `rejected`: the provider refused the key (Gemini 401/403 or 400 API_KEY_INVALID, Exa
 *   401/403, and Exa 402: out of credits, which the user must also fix): status `rejected`;
 * - `rate-limited`: the key works but its quota is spent: status unchanged, `lastError` set.
 * Anything else (the provider down, a timeout, the client leaving) says nothing about the key.
 */
export type KeyVerdict = "ok" | "rejected" | "rate-limited";

/** The status a KeyView shows. `unreadable` and `unknown` are computed when listing, never stored. */
export { keyStatuses, type KeyStatus } from "./key-status.js";

export interface KeyHealthUpdate {
  provider: Provider;
  /**
   * The key version the call used (`api_keys.updated_at` as text, from the key path): a key
   * replaced while the call ran keeps its fresh, unknown health.
   */
  version: string;
  verdict: KeyVerdict;
  /** With a `rejected` verdict: why (lib/providers/rejections.ts), shown with what to do. */
  reason?: KeyRejectionReason;
}

/** The verdict an upstream failure carries about the key, if any. */
export function verdictOf(error: unknown): KeyVerdict | undefined {
  if (!(error instanceof AppError)) return undefined;
  if (error.code === "provider-rejected-key") return "rejected";
  if (error.code === "rate-limited") return "rate-limited";
  return undefined;
}

/** Why the provider refused the key, when `error` says so (a `provider-rejected-key` with a reason). */
export function rejectionReasonOf(error: unknown): KeyRejectionReason | undefined {
  if (!(error instanceof AppError) || error.code !== "provider-rejected-key") return undefined;
  const reason = error.extra.reason;
  return isKeyRejectionReason(reason) ? reason : "key-rejected";
}

/** One verdict from several calls with the same key (Exa's concurrent searches): the worst one. */
export function combineVerdicts(verdicts: readonly (KeyVerdict | undefined)[]): KeyVerdict | undefined {
  for (const worst of ["rejected", "rate-limited", "ok"] as const) if (verdicts.includes(worst)) return worst;
  return undefined;
}

const errorCodeOf: Record<KeyVerdict, ErrorCode | null> = { ok: null, rejected: "provider-rejected-key", "rate-limited": "rate-limited" };
const statusOf: Record<KeyVerdict, "ok" | "rejected" | null> = { ok: "ok", rejected: "rejected", "rate-limited": null };

/**
 * What `update` changes on the stored key: its status (null: unchanged) and, for a failure
 * attributable to the key, the problem code and rejection reason. The key store writes it
 * (lib/keys/store.ts `keyHealthUpdateSql`).
 */
export function healthChange(update: KeyHealthUpdate): {
  status: "ok" | "rejected" | null;
  errorCode: ErrorCode | null;
  reason: KeyRejectionReason | null;
} {
  return { status: statusOf[update.verdict], errorCode: errorCodeOf[update.verdict], reason: update.reason ?? null };
}
