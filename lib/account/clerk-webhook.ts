/**
 * Clerk's webhooks (POST /api/webhooks/clerk), signed with the Standard Webhooks scheme that
 * Clerk sends through Svix: `svix-id`, `svix-timestamp` (Unix seconds) and `svix-signature`
 * (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` keyed with the base64 part of the
 * `whsec_…` secret). `verifyWebhook` from `@clerk/backend/webhooks` checks it, and refuses a
 * timestamp more than 5 minutes from now, so an old delivery cannot be replayed later; a
 * replay within those minutes is caught by the delivery ids kept in `webhook_deliveries`.
 */
import { AppError } from "../http/errors.js";
import type { Deps } from "../platform/runtime.js";

/** Why a delivery was refused, in words safe to log and answer (never the secret or the body). */
function refusalReason(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  if (/Missing required webhook headers/i.test(message)) return "missing svix-id, svix-timestamp or svix-signature header";
  if (/timestamp too (old|new)/i.test(message)) return "the svix-timestamp is more than 5 minutes from now";
  if (/Invalid Signature Headers/i.test(message)) return "the svix-timestamp is not a Unix time";
  if (/No matching signature/i.test(message)) return "no svix-signature matches this body";
  return "the signature could not be checked";
}

/**
 * Checks the signature of `text` (the exact body received) with `request`'s headers; throws
 * 400 invalid-webhook-signature when it does not hold, 500 server-misconfigured when no
 * signing secret is configured. Nothing is read or written before this passes.
 */
export async function verifyClerkWebhook(deps: Pick<Deps, "config" | "logger">, request: Request, text: string): Promise<void> {
  const secret = deps.config.clerk.webhookSigningSecret;
  if (!secret) {
    deps.logger.error("clerk webhook refused: no CLERK_WEBHOOK_SIGNING_SECRET configured");
    throw new AppError("server-misconfigured", {
      detail: "webhooks are not configured on this deployment",
      action: "the operator must set CLERK_WEBHOOK_SIGNING_SECRET to the endpoint's signing secret from Clerk's dashboard",
    });
  }
  // Loaded here only: the other functions never pay for it at cold start.
  const { verifyWebhook } = await import("@clerk/backend/webhooks");
  // verifyWebhook reads the body itself: it gets the exact text with the original headers.
  const copy = new Request(request.url, { method: "POST", headers: request.headers, body: text });
  try {
    // Always with the secret from our config: without it, the library would read process.env.
    await verifyWebhook(copy, { signingSecret: secret });
  } catch (error) {
    const reason = refusalReason(error);
    deps.logger.info("clerk webhook refused", { reason });
    throw new AppError("invalid-webhook-signature", {
      detail: `the webhook could not be verified: ${reason}`,
      action: "Clerk signs its deliveries itself; check that CLERK_WEBHOOK_SIGNING_SECRET is this endpoint's secret",
    });
  }
}
