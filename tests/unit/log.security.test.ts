/**
 * The logger's second line of defence: a secret logged on purpose comes out as "[redacted]".
 * Real secrets, not look-alikes: a Gemini-shaped key, a Clerk session token from the test
 * signer and a ciphertext as lib/platform/crypto.ts stores it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createLogger, MAX_LOG_FIELD_CHARS, memorySink, redact } from "../../lib/platform/log.js";
import { encryptKey, generateKeyringEntry, keyAad, parseKeyring } from "../../lib/platform/crypto.js";
import { createTestSigner } from "../../testkit/clerk.js";
import { sampleKeys } from "../helpers/runtime.js";
import { validateProviderKey } from "../../lib/providers/registry.js";
import { testSeed } from "../helpers/seed.js";

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
    expect(fields).toMatchObject({
      msg: "fields",
      requestId: "req_logtest",
      gemini: "[redacted]",
      token: "[redacted]",
      stored: "[redacted]",
    });
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

describe("every Gemini key shape accepted today is scrubbed from upstream errors (docs/provider-facts.md)", () => {
  // Each shape validateProviderKey accepts: the authorization keys AI Studio issues, another
  // prefix of the same family, the older standard keys, and a shape no pattern knows.
  const shapes = {
    "authorization (AQ.)": "AQ.Ab8RN6LkZ3qv0yTfWm1xPcR7sJdUe9HgBn2aKo4iVt5lYw8QzX",
    "authorization (IQ.)": "IQ.Cd3kT9pXw2LmQa7ZrV1bNe6HsJu0Yf4GoK8tRi5WcDxMh3nPqA",
    "standard (AIza)": "AIzaSyD4nQ8rT2vW6xZ0bC3eF7gH1jK5mN9pQrS",
    "unknown prefix, charset only": "Zk9Ht7Lm_wX7pN9fM3kLj6tRq2bGhA8yE5cZvD4sT",
  } as const;

  for (const [shape, key] of Object.entries(shapes)) {
    it(`${shape}: accepted by the key check and absent from every line`, () => {
      expect(validateProviderKey("gemini", key)).toEqual({ ok: true, value: key });
      const { sink, lines } = memorySink();
      const request = createLogger({ level: "debug", sink }).scope({ requestId: "req_shapes" });
      // What the request handles is registered; the upstream quotes it back in its error.
      request.redactAlso(key);
      const upstream = `gemini answered HTTP 403: Permission denied: Consumer 'api_key:${key}' has been suspended.`;
      const child = request.child({ step: "writing" });
      child.error("generation failed", { cause: upstream, message: upstream });
      child.warn(upstream);
      request.info("done", { list: [upstream, key] });
      const out = lines.join("\n");
      expect(lines).toHaveLength(3);
      expect(out).not.toContain(key);
      expect(out).not.toContain(key.slice(4, 24));
      expect(out).toContain("[redacted]");
    });
  }

  it("the patterns alone (no redactAlso) catch every shape Google uses: AQ., IQ. and AIza keys", () => {
    for (const key of [shapes["authorization (AQ.)"], shapes["authorization (IQ.)"], shapes["standard (AIza)"]]) {
      expect(redact(`x-goog-api-key: ${key}, again ${key}.`)).toBe("x-goog-api-key: [redacted], again [redacted].");
    }
  });

  it("a key registered in one request is scrubbed in that request only, and values too short to be keys are ignored", () => {
    const { sink, lines } = memorySink();
    const root = createLogger({ sink });
    const one = root.scope({ requestId: "req_one" });
    const two = root.scope({ requestId: "req_two" });
    one.redactAlso(shapes["unknown prefix, charset only"], "short", undefined);
    one.info(`one ${shapes["unknown prefix, charset only"]} short`);
    two.info(`two ${shapes["unknown prefix, charset only"]}`);
    expect(lines[0]).toContain("one [redacted] short");
    // Registered in request one only: the other request's lines are not its concern (and its set stays its own).
    expect(lines[1]).toContain(shapes["unknown prefix, charset only"]);
  });
});

describe("redact()", () => {
  it("finds JWTs exactly where the former single regex found them (and in linear time, see linear-regex.security.test.ts)", () => {
    const jwtPattern = /eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*/g;
    const text = fc
      .array(fc.constantFrom("eyJ", "a", "Zz", "0", ".", "-", "_", " ", '"', "=", "eyJhbGciOi"), { maxLength: 60 })
      .map((parts) => parts.join(""));
    fc.assert(
      fc.property(text, (s) => {
        expect(redact(s)).toBe(s.replace(jwtPattern, "[redacted]"));
      }),
      { seed: testSeed("log redact() JWT parity"), numRuns: 5_000 },
    );
  });

  it("redacts a whole token even when a key-shaped piece sits inside it", () => {
    const token = signer.sign({ sub: "user_x" });
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const odd = `${header}.${payload}AIzaSyAAAAAAAAAAAAAA.${signature}`;
    expect(redact(`token ${odd} end`)).toBe("token [redacted] end");
  });
});
