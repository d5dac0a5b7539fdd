/**
 * The gateway passes a provider's error body on to the caller: `scrubKey` must take out the
 * user's own key whatever its shape (raw, or as JSON escapes it), not only the shapes the log
 * scrubber knows.
 */
import { describe, expect, it } from "vitest";
import { scrubKey } from "../../lib/gateway/proxy.js";

describe("scrubKey", () => {
  // Shaped like no known provider key, so only the exact-key rule can catch it.
  const key = "plain-looking-secret-0123456789-abcdefghij";

  it("removes the exact key from an upstream body", () => {
    const body = JSON.stringify({ error: { message: `API key ${key} is not valid`, status: "INVALID_ARGUMENT" } });
    const out = scrubKey(body, key);
    expect(out).not.toContain(key);
    expect(out).toContain("[redacted]");
    expect(out).toContain("INVALID_ARGUMENT");
  });

  it("removes the key as JSON escapes it", () => {
    const odd = 'quote"and\\backslash-secret-0123456789abcdef';
    const body = JSON.stringify({ error: `bad key ${odd}` });
    const out = scrubKey(body, odd);
    expect(out).not.toContain(JSON.stringify(odd).slice(1, -1));
    expect(out).toContain("[redacted]");
  });

  it("still removes other key shapes (the log scrubber's patterns)", () => {
    const other = `AQ.${"Ab8RN6".repeat(9)}xx`;
    expect(scrubKey(`echo ${other}`, key)).not.toContain(other);
  });
});
