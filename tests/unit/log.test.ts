/**
 * The logger's second line of defence: a secret logged on purpose comes out as "[redacted]".
 * Real secrets, not look-alikes: a Gemini-shaped key, a Clerk session token from the test
 * signer and a ciphertext as lib/crypto.ts stores it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createLogger, MAX_LOG_FIELD_CHARS, memorySink, redact } from "../../lib/log.js";
import { encryptKey, generateKeyringEntry, keyAad, parseKeyring } from "../../lib/crypto.js";
import { createTestSigner } from "../../testkit/clerk.js";
import { sampleKeys } from "../helpers/runtime.js";

const signer = createTestSigner();

function secrets() {
  const gemini = sampleKeys(913).gemini;
  const token = signer.sign({ sub: "user_log_test" });
  const keyring = parseKeyring(generateKeyringEntry("logtest"));
  if (!keyring.ok) throw new Error(keyring.error);
  const stored = encryptKey(keyring.value, gemini, keyAad("user_log_test", "gemini"));
  return { gemini, token, stored };
}

describe("the logger scrubs secrets logged on purpose", () => {
  it("a Gemini key, a Clerk session token and a stored ciphertext, in fields, lists, the message and child fields", () => {
    const { gemini, token, stored } = secrets();
    expect(token.split(".")).toHaveLength(3);
    expect(stored.split(":")).toHaveLength(3);
    const { sink, lines } = memorySink();
    const logger = createLogger({ level: "debug", sink }).child({ requestId: "req_logtest" });

    logger.info("fields", { gemini, token, stored });
    logger.warn("a list", { all: [gemini, token, stored] });
    logger.error(`in the message: Bearer ${token} and ${stored} and key=${gemini}`);
    logger.child({ token, stored }).debug("child fields", { header: `authorization: Bearer ${token}` });

    expect(lines).toHaveLength(4);
    const [fields, list, message, child] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(fields).toMatchObject({ msg: "fields", requestId: "req_logtest", gemini: "[redacted]", token: "[redacted]", stored: "[redacted]" });
    expect(list).toMatchObject({ all: ["[redacted]", "[redacted]", "[redacted]"] });
    expect(message!.msg).toBe("in the message: Bearer [redacted] and [redacted] and key=[redacted]");
    expect(child).toMatchObject({ token: "[redacted]", stored: "[redacted]", header: "authorization: Bearer [redacted]" });
    // No piece of any of them either: the token's payload and signature, the ciphertext's body.
    const pieces = [gemini, token, stored, ...token.split("."), stored.split(":")[2]!];
    for (const line of lines) for (const piece of pieces) expect(line).not.toContain(piece);
  });

  it("cuts a long field before redacting it, and still redacts what is kept", () => {
    const { token } = secrets();
    const { sink, lines } = memorySink();
    const logger = createLogger({ sink });
    logger.info("long", { value: `${token} ${"x".repeat(10_000)}`, list: ["y".repeat(5_000)] });
    const line = JSON.parse(lines[0]!) as { value: string; list: string[] };
    expect(line.value.startsWith("[redacted] xxx")).toBe(true);
    expect(line.value.length).toBeLessThan(MAX_LOG_FIELD_CHARS + 100);
    expect(line.value).toMatch(/…\[\d+ more characters\]$/);
    expect(line.list[0]!.length).toBeLessThan(MAX_LOG_FIELD_CHARS + 100);
  });
});

describe("redact()", () => {
  it("finds JWTs exactly where the former single regex found them (and in linear time, see linear-regex.test.ts)", () => {
    const jwtPattern = /eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*/g;
    const text = fc
      .array(fc.constantFrom("eyJ", "a", "Zz", "0", ".", "-", "_", " ", '"', "=", "eyJhbGciOi"), { maxLength: 60 })
      .map((parts) => parts.join(""));
    fc.assert(
      fc.property(text, (s) => {
        expect(redact(s)).toBe(s.replace(jwtPattern, "[redacted]"));
      }),
      { numRuns: 5_000 },
    );
  });

  it("redacts a whole token even when a key-shaped piece sits inside it", () => {
    const token = signer.sign({ sub: "user_x" });
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const odd = `${header}.${payload}AIzaSyAAAAAAAAAAAAAA.${signature}`;
    expect(redact(`token ${odd} end`)).toBe("token [redacted] end");
  });
});
