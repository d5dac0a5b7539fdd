/**
 * lib/account/clerk-webhook.ts in process, answer by answer: what each refusal says (to the
 * caller and in the log), and that nothing but a delivery signed with this endpoint's secret
 * passes. Written from StrykerJS's surviving mutants (docs/mutation-testing.md).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyClerkWebhook } from "../../lib/account/clerk-webhook.js";
import { AppError } from "../../lib/http/errors.js";
import { loadConfig } from "../../lib/platform/env.js";
import { createLogger, memorySink } from "../../lib/platform/log.js";
import { signWebhook, TEST_WEBHOOK_SECRET, userDeletedEvent } from "../../testkit/webhooks.js";

const body = JSON.stringify(userDeletedEvent("user_webhook_unit"));

function setup(secret: string | undefined) {
  const { sink, lines } = memorySink();
  const deps = { config: loadConfig({ CLERK_WEBHOOK_SIGNING_SECRET: secret }), logger: createLogger({ sink }) };
  return { deps, lines };
}

async function refusal(
  secret: string | undefined,
  headers: Record<string, string>,
  text = body,
): Promise<{ error: AppError; lines: string[] }> {
  const { deps, lines } = setup(secret);
  const request = new Request("http://localhost/api/webhooks/clerk", { method: "POST", headers, body: text });
  try {
    await verifyClerkWebhook(deps, request, text);
  } catch (error) {
    if (error instanceof AppError) return { error, lines };
    throw error;
  }
  throw new Error("the delivery was accepted");
}

describe("verifyClerkWebhook", () => {
  it("passes a delivery signed with the secret", async () => {
    const { deps } = setup(TEST_WEBHOOK_SECRET);
    const request = new Request("http://localhost/api/webhooks/clerk", { method: "POST", headers: { ...signWebhook(body) }, body });
    await expect(verifyClerkWebhook(deps, request, body)).resolves.toBeUndefined();
  });

  it("without a secret: 500 server-misconfigured, said so in the log", async () => {
    const { error, lines } = await refusal(undefined, { ...signWebhook(body) });
    expect([error.code, error.detail, error.action]).toEqual([
      "server-misconfigured",
      "webhooks are not configured on this deployment",
      "the operator must set CLERK_WEBHOOK_SIGNING_SECRET to the endpoint's signing secret from Clerk's dashboard",
    ]);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: "error",
      msg: "clerk webhook refused: no CLERK_WEBHOOK_SIGNING_SECRET configured",
    });
  });

  it("each refusal names its reason, to the caller and in the log", async () => {
    const signed = signWebhook(body);
    const cases: [Record<string, string>, string][] = [
      [{}, "missing svix-id, svix-timestamp or svix-signature header"],
      [{ ...signed, "svix-signature": "v1,AAAA" }, "no svix-signature matches this body"],
      [{ ...signWebhook(body, { timestamp: Math.floor(Date.now() / 1000) - 3600 }) }, "the svix-timestamp is more than 5 minutes from now"],
      [{ ...signed, "svix-timestamp": "not-a-time" }, "the svix-timestamp is not a Unix time"],
    ];
    for (const [headers, reason] of cases) {
      const { error, lines } = await refusal(TEST_WEBHOOK_SECRET, headers);
      expect(error.code, reason).toBe("invalid-webhook-signature");
      expect(error.detail).toBe(`the webhook could not be verified: ${reason}`);
      expect(error.action).toBe("Clerk signs its deliveries itself; check that CLERK_WEBHOOK_SIGNING_SECRET is this endpoint's secret");
      expect(JSON.parse(lines.at(-1)!)).toMatchObject({ level: "info", msg: "clerk webhook refused", reason });
    }
  });
});

describe("verifyClerkWebhook when the library fails in a way it does not name", () => {
  // @clerk/backend/webhooks replaced for these cases only: today's library never throws these,
  // but a new version might, and the answer must still be the generic reason (never the message).
  afterEach(() => {
    vi.doUnmock("@clerk/backend/webhooks");
  });

  const unnamed: [string, unknown][] = [
    ["an Error with a message none of the known ones match", new Error("svix: something new went wrong")],
    // Not an Error, so its message is not read, even one that would match a known reason.
    ["a thrown object shaped like an Error", { message: "No matching signature found" }],
    ["a thrown string", "Missing required webhook headers"],
    ["a thrown undefined", undefined],
  ];
  for (const [name, thrown] of unnamed) {
    it(`${name}: 400 "the signature could not be checked"`, async () => {
      vi.doMock("@clerk/backend/webhooks", () => ({
        verifyWebhook: async () => {
          throw thrown;
        },
      }));
      const reason = "the signature could not be checked";
      const { error, lines } = await refusal(TEST_WEBHOOK_SECRET, { ...signWebhook(body) });
      expect(error.code).toBe("invalid-webhook-signature");
      expect(error.detail).toBe(`the webhook could not be verified: ${reason}`);
      expect(JSON.parse(lines.at(-1)!)).toMatchObject({ level: "info", msg: "clerk webhook refused", reason });
    });
  }

  it("the mock is gone afterwards: a signed delivery passes again", async () => {
    const { deps } = setup(TEST_WEBHOOK_SECRET);
    const request = new Request("http://localhost/api/webhooks/clerk", { method: "POST", headers: { ...signWebhook(body) }, body });
    await expect(verifyClerkWebhook(deps, request, body)).resolves.toBeUndefined();
  });
});
