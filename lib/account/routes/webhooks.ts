/**
 * POST /api/webhooks/clerk — Clerk's webhooks. No Clerk session: a delivery authenticates by
 * its Standard Webhooks signature (lib/account/clerk-webhook.ts), checked on the exact body before
 * anything else. `user.deleted` deletes everything held about that user; other types are
 * acknowledged and ignored.
 */
import { AppError } from "../../http/errors.js";
import { defineRoute, json } from "../../http/route.js";
import { clerkWebhookEvent, webhookResponse, type WebhookResponse } from "../schemas.js";
import { verifyClerkWebhook } from "../clerk-webhook.js";
import { deleteAccountData } from "../account.js";

export const clerkWebhook = defineRoute({
  method: "POST",
  path: "/api/webhooks/clerk",
  operationId: "receiveClerkWebhook",
  summary: "Clerk's webhooks (user.deleted deletes the user's data)",
  description:
    "Register this URL in Clerk's dashboard (Webhooks → Add endpoint) with the `user.deleted` event, and set " +
    "CLERK_WEBHOOK_SIGNING_SECRET to the endpoint's signing secret. Every delivery must carry a valid `svix-id`, " +
    "`svix-timestamp` (within 5 minutes) and `svix-signature`; otherwise 400 `invalid-webhook-signature` and nothing changes. " +
    "`user.deleted` deletes the user's keys, onboarding session, usage, rate-limit and budget rows, keeping one " +
    "`account-delete` audit event; a delivery already processed (same `svix-id`) changes nothing. Other event types: 200, ignored.",
  tags: ["account"],
  auth: false,
  body: {
    schema: clerkWebhookEvent,
    description: "A Clerk webhook event, signed (headers svix-id, svix-timestamp, svix-signature).",
    example: {
      type: "user.deleted",
      object: "event",
      data: { id: "user_2abc", object: "user", deleted: true },
      timestamp: 1767225600000,
      instance_id: "ins_2abc",
    },
    verify: ({ text, request, deps }) => verifyClerkWebhook(deps, request, text),
  },
  responses: {
    200: { description: "Received.", content: { "application/json": { schema: webhookResponse } }, headers: ["Cache-Control"] },
  },
  problems: ["invalid-webhook-signature", "server-misconfigured", "database-unavailable"],
  handler: async ({ request, deps, body }) => {
    const answer = (outcome: WebhookResponse["outcome"]) => json({ received: true, type: body.type, outcome } satisfies WebhookResponse);
    if (body.type !== "user.deleted") {
      deps.logger.info("clerk webhook ignored", { type: body.type.slice(0, 100) });
      return answer("ignored");
    }
    const userId = body.data.id;
    if (!userId) {
      throw new AppError("invalid-request", {
        detail: "a user.deleted event without data.id",
        errors: [{ pointer: "/data/id", message: "required for user.deleted" }],
      });
    }
    // Present and signed: verifyClerkWebhook refused the delivery otherwise.
    const deliveryId = request.headers.get("svix-id")!.trim();
    const result = await deleteAccountData(await deps.database(), {
      userId,
      requestId: deps.requestId,
      serverRequestId: deps.serverRequestId,
      delivery: { id: deliveryId, type: body.type },
    });
    deps.logger.info(result.processed ? "account data deleted" : "clerk webhook already processed", {
      userId,
      via: "clerk-webhook",
      ...(result.processed ? result.removed : {}),
    });
    return answer(result.processed ? "deleted" : "duplicate");
  },
});

export default [clerkWebhook];
