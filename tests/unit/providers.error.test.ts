import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  isProvider,
  keyHint,
  providerInfo,
  providerKeySchemas,
  providers,
  validateProviderKey,
  type Provider,
} from "../../lib/providers/registry.js";

const valid: Record<Provider, string> = {
  // An AI Studio authorization key's shape: "AQ." and 50 more (docs/provider-facts.md).
  gemini: "AQ.Ab8RN6Jx1b2C3d4E5f6G7h8I9j0K_l-MnOpQrStUvWxYz01234",
  exa: "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
  copilotkit: "ck_pub_0123456789abcdefABCDEF_-xyz",
};

/** Asserts a failure message and the whole zod error say nothing of the input. */
function expectNoEcho(text: string, input: string) {
  expect(text).not.toContain(input.trim());
  // Nor a recognisable piece of it (the part after the fixed prefix).
  const core = input.trim().replace(/^(AIza|AQ\.|ck_pub_)/, "");
  for (let i = 0; i + 8 <= core.length; i++) {
    expect(text.includes(core.slice(i, i + 8)), `${text} echoes the input`).toBe(false);
  }
}

describe("registry", () => {
  it("lists the providers and where their keys go", () => {
    expect(providers).toEqual(["gemini", "exa", "copilotkit"]);
    expect(providerInfo.gemini).toMatchObject({ envVar: "GEMINI_API_KEY", frontendEnvVar: undefined, returnsValue: false });
    expect(providerInfo.exa).toMatchObject({ envVar: "EXA_API_KEY", frontendEnvVar: undefined, returnsValue: false });
    expect(providerInfo.copilotkit).toMatchObject({
      envVar: "COPILOTKIT_API_KEY",
      frontendEnvVar: "REACT_APP_COPILOTKIT_API_KEY",
      returnsValue: true,
    });
    for (const p of providers) expect(providerInfo[p].id).toBe(p);
  });

  it("only copilotkit is returned in full", () => {
    expect(providers.filter((p) => providerInfo[p].returnsValue)).toEqual(["copilotkit"]);
  });

  it("isProvider", () => {
    expect(isProvider("gemini")).toBe(true);
    expect(isProvider("openai")).toBe(false);
    expect(isProvider("toString")).toBe(false);
    expect(isProvider(undefined)).toBe(false);
  });
});

describe("validateProviderKey", () => {
  it("accepts valid keys and returns them trimmed", () => {
    for (const p of providers) {
      expect(validateProviderKey(p, valid[p])).toEqual({ ok: true, value: valid[p] });
      expect(validateProviderKey(p, `  ${valid[p]}\n`)).toEqual({ ok: true, value: valid[p] });
      expect(validateProviderKey(p, `\t${valid[p]}\r\n`)).toEqual({ ok: true, value: valid[p] });
    }
  });

  it("enforces the length bounds", () => {
    const ok = (p: Provider, key: string) => validateProviderKey(p, key).ok;
    // Authorization keys ("AQ.", "IQ."): 53 characters, longer accepted up to 128.
    expect(ok("gemini", "AQ." + "a".repeat(50))).toBe(true);
    expect(ok("gemini", "AQ." + "a".repeat(49))).toBe(false);
    expect(ok("gemini", "IQ." + "a".repeat(49))).toBe(false);
    expect(ok("gemini", "AQ." + "a".repeat(125))).toBe(true);
    expect(ok("gemini", "AQ." + "a".repeat(126))).toBe(false);
    // A prefix Google has not used yet: charset and 30-128 characters.
    expect(ok("gemini", "Zk9" + "a".repeat(27))).toBe(true);
    expect(ok("gemini", "Zk9" + "a".repeat(26))).toBe(false);
    // Standard keys are exactly 39 characters.
    expect(ok("gemini", "AIza" + "a".repeat(35))).toBe(true);
    expect(ok("gemini", "AIza" + "a".repeat(34))).toBe(false);
    expect(ok("gemini", "AIza" + "a".repeat(36))).toBe(false);
    expect(ok("copilotkit", "ck_pub_" + "a".repeat(20))).toBe(true);
    expect(ok("copilotkit", "ck_pub_" + "a".repeat(100))).toBe(true);
    expect(ok("copilotkit", "ck_pub_" + "a".repeat(19))).toBe(false);
    expect(ok("copilotkit", "ck_pub_" + "a".repeat(101))).toBe(false);
  });

  it("checks prefixes and shapes", () => {
    const ok = (p: Provider, key: string) => validateProviderKey(p, key).ok;
    // Every key shape Google issues today, and the older one (docs/provider-facts.md).
    expect(ok("gemini", "AQ.Ab8RN6" + "x".repeat(44))).toBe(true);
    expect(ok("gemini", "IQ.Ab8RN6" + "x".repeat(44))).toBe(true);
    expect(ok("gemini", "AIzaSyA1b2C3d4E5f6G7h8I9j0K_l-MnOpQrStU")).toBe(true);
    expect(ok("gemini", "aiza" + "a".repeat(35))).toBe(false);
    expect(ok("gemini", "AIZA" + "a".repeat(35))).toBe(false);
    expect(ok("gemini", "AQ." + "a".repeat(49) + "!")).toBe(false);
    expect(ok("gemini", "AQ." + "a".repeat(49) + "é")).toBe(false);
    expect(ok("gemini", ".AQ" + "a".repeat(50))).toBe(false);
    expect(ok("gemini", valid.exa)).toBe(false);
    expect(ok("gemini", valid.copilotkit)).toBe(false);
    for (const foreign of ["sk-proj-", "sk-ant-api03-", "sk_live_", "pk_test_", "ghp_", "ya29.", "eyJhbGciOi", "GOCSPX-", "AKIA"]) {
      expect(ok("gemini", foreign + "a1B2c3D4".repeat(5)), foreign).toBe(false);
    }
    expect(ok("exa", valid.exa.toUpperCase())).toBe(true);
    expect(ok("exa", valid.exa.replaceAll("-", ""))).toBe(false);
    expect(ok("exa", valid.exa.replace(/^3/, "g"))).toBe(false);
    expect(ok("exa", `{${valid.exa}}`)).toBe(false);
    expect(ok("exa", valid.exa + "0")).toBe(false);
    expect(ok("copilotkit", "ck_live_" + "a".repeat(25))).toBe(false);
    expect(ok("copilotkit", "ck_pub" + "a".repeat(25))).toBe(false);
    expect(ok("copilotkit", valid.gemini)).toBe(false);
  });

  it("rejects non-strings and empty keys", () => {
    for (const p of providers) {
      for (const bad of [undefined, null, 42, {}, [valid[p]], "", "   ", "\n"]) {
        expect(validateProviderKey(p, bad).ok, `${p} ${JSON.stringify(bad)}`).toBe(false);
      }
    }
    expect(validateProviderKey("gemini", 42)).toEqual({ ok: false, error: "Gemini key must be a string" });
    expect(validateProviderKey("gemini", " ")).toEqual({ ok: false, error: "Gemini key is empty" });
  });

  // Each dangerous class, inside an otherwise valid key, with the message that names it.
  const inside: Array<[string, string, RegExp]> = [
    ["newline", "\n", /control character/],
    ["carriage return", "\r", /control character/],
    ["tab", "\t", /control character/],
    ["NUL", "\0", /control character/],
    ["escape", "\x1b", /control character/],
    ["DEL", "\x7f", /control character/],
    ["C1 control", "\x85", /control character/],
    ["space", " ", /whitespace/],
    ["no-break space", "\u00a0", /whitespace/],
    ["line separator", "\u2028", /whitespace/],
    ["ideographic space", "\u3000", /whitespace/],
    ["double quote", '"', /quote/],
    ["single quote", "'", /quote/],
    ["backtick", "`", /quote/],
    ["equals", "=", /"=" or "#"/],
    ["hash", "#", /"=" or "#"/],
    ["dollar", "$", /must be/],
    ["backslash", "\\", /must be/],
  ];

  for (const [name, char, message] of inside) {
    it(`rejects a ${name} inside a key without echoing it`, () => {
      for (const p of providers) {
        const key = valid[p].slice(0, 12) + char + valid[p].slice(12);
        const result = validateProviderKey(p, key);
        expect(result.ok, `${p} with ${name}`).toBe(false);
        if (result.ok) continue;
        expect(result.error).toMatch(message);
        expect(result.error).toContain(providerInfo[p].label);
        expectNoEcho(result.error, key);
        const parsed = providerKeySchemas[p].safeParse(key);
        expect(parsed.success).toBe(false);
        if (!parsed.success) {
          expectNoEcho(JSON.stringify(parsed.error.issues), key);
          expectNoEcho(parsed.error.message, key);
          expectNoEcho(z.prettifyError(parsed.error), key);
        }
      }
    });
  }

  it("explains a pasted KEY=value line or quoted key", () => {
    expect(validateProviderKey("gemini", `GEMINI_API_KEY=${valid.gemini}`)).toEqual({
      ok: false,
      error: 'Gemini key contains "=" or "#"; paste only the key, not a KEY=value line or a comment',
    });
    expect(validateProviderKey("exa", `"${valid.exa}"`)).toMatchObject({ ok: false, error: expect.stringMatching(/quote/) });
    expect(validateProviderKey("copilotkit", `${valid.copilotkit} # frontend`)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/whitespace/),
    });
  });

  it("gives a format message without the input for a wrong-shaped key, saying what a Gemini key looks like today", () => {
    const wrong = "Zq9".repeat(5);
    const result = validateProviderKey("gemini", wrong);
    expect(result).toEqual({ ok: false, error: `Gemini key must be ${providerInfo.gemini.format}` });
    expect(providerInfo.gemini.format).toContain("AQ.");
    expect(providerInfo.gemini.format).toContain("aistudio.google.com/apikey");
    expectNoEcho(JSON.stringify(result), wrong);
  });

  it("names the mistake: another provider's key, another service's secret, a standard key cut short", () => {
    expect(validateProviderKey("gemini", valid.exa)).toEqual({
      ok: false,
      error: "Gemini key looks like an Exa key; paste it in the Exa field",
    });
    expect(validateProviderKey("gemini", valid.copilotkit)).toEqual({
      ok: false,
      error: "Gemini key looks like a CopilotKit key; paste it in the CopilotKit field",
    });
    expect(validateProviderKey("gemini", "sk-proj-" + "a1B2c3D4".repeat(5))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/OpenAI or Anthropic secret key, not a Gemini API key; create one in Google AI Studio/),
    });
    expect(validateProviderKey("gemini", "AIza" + "a".repeat(30))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/exactly 39 characters/),
    });
    expect(validateProviderKey("gemini", "AQ.Ab8R" + "a".repeat(30))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/AI Studio key \("AQ\.…"\), which has 53 characters/),
    });
  });
});

describe("providerKeySchemas in a strict object", () => {
  const body = z
    .object({
      gemini: providerKeySchemas.gemini.optional(),
      exa: providerKeySchemas.exa.optional(),
      copilotkit: providerKeySchemas.copilotkit.optional(),
    })
    .strict();

  it("trims values", () => {
    expect(body.parse({ gemini: ` ${valid.gemini} `, exa: valid.exa })).toEqual({ gemini: valid.gemini, exa: valid.exa });
  });

  it("reports each bad field at its path, with no input anywhere in the error", () => {
    const input = { gemini: `${valid.gemini}\n#`, exa: "not-a-uuid-but-a-secret-ish-thing", copilotkit: `'${valid.copilotkit}'` };
    const parsed = body.safeParse(input);
    expect(parsed.success).toBe(false);
    if (parsed.success) return;
    expect(parsed.error.issues.map((i) => i.path)).toEqual([["gemini"], ["exa"], ["copilotkit"]]);
    const everything = JSON.stringify(parsed.error.issues) + parsed.error.message + z.prettifyError(parsed.error);
    for (const value of Object.values(input)) expectNoEcho(everything, value);
    for (const issue of parsed.error.issues) expect(issue).not.toHaveProperty("input");
  });
});

describe("keyHint", () => {
  it("shows only the last 4 characters", () => {
    expect(keyHint(valid.gemini)).toBe("…1234");
    expect(keyHint(valid.exa)).toBe("…3301");
    expect(keyHint(valid.copilotkit)).toBe("…-xyz");
  });

  it("reveals nothing of a short value", () => {
    expect(keyHint("abc")).toBe("…");
    expect(keyHint("abcdefghijk")).toBe("…");
    expect(keyHint("abcdefghijkl")).toBe("…ijkl");
  });
});
