/**
 * Clerk webhook deliveries made in the test, the way Clerk (through Svix) signs them with the
 * Standard Webhooks scheme: `svix-id`, `svix-timestamp` (Unix seconds) and `svix-signature` =
 * `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`, keyed with the base64-decoded
 * part of the `whsec_…` secret. Plain node:crypto, independent of the verifier under test.
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";

/** A signing secret in Clerk's format, fresh per process. */
export const TEST_WEBHOOK_SECRET = `whsec_${randomBytes(24).toString("base64")}`;

export interface WebhookSignature {
  "svix-id": string;
  "svix-timestamp": string;
  "svix-signature": string;
}

/** The three headers for `body` (the exact bytes sent). */
export function signWebhook(
  body: string | Uint8Array,
  options: { secret?: string; id?: string; timestamp?: number } = {},
): WebhookSignature {
  const secret = options.secret ?? TEST_WEBHOOK_SECRET;
  const id = options.id ?? `msg_${randomUUID().replace(/-/g, "")}`;
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), Buffer.from(body)]);
  const signature = createHmac("sha256", key).update(signed).digest("base64");
  return { "svix-id": id, "svix-timestamp": timestamp, "svix-signature": `v1,${signature}` };
}

/** A Clerk `user.deleted` event for `userId`, as Clerk sends it. */
export function userDeletedEvent(userId: string): Record<string, unknown> {
  return {
    type: "user.deleted",
    object: "event",
    data: { id: userId, object: "user", deleted: true },
    timestamp: Date.now(),
    instance_id: "ins_test",
    event_attributes: { http_request: { client_ip: "127.0.0.1", user_agent: "test" } },
  };
}
