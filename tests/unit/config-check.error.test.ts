/**
 * Configuration that should not pass (issue 9, item 6) and the one list of configuration
 * problems (lib/platform/config-check.ts) that `npm start`, `/api/health` and `npm run check-config`
 * share. Health and the CLI are exercised in tests/platform/health-config.error.test.ts.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateKeyringEntry, lowEntropyReason, parseKeyring } from "../../lib/platform/crypto.js";
import { ConfigError, loadConfig, type RawEnv } from "../../lib/platform/env.js";
import { configProblems, misconfiguredVariables, PRICE_TABLE_MAX_AGE_DAYS, type ConfigProblem } from "../../lib/platform/config-check.js";
import { GEMINI_PRICES_READ } from "../../lib/providers/prices.js";
import { createTestSigner } from "../../testkit/clerk.js";
import { publishableKeyFor } from "../../lib/platform/auth/publishable-key.js";
import { testSeed } from "../helpers/seed.js";

const b64 = (bytes: Uint8Array | number[]) => Buffer.from(bytes).toString("base64");
const repeat = (pattern: number[], length = 32) => Array.from({ length }, (_, i) => pattern[i % pattern.length]!);

/** 32-byte keys a person might paste, each with the shape lowEntropyReason must recognise. */
const weakKeys: [string, number[]][] = [
  ["all zero", repeat([0])],
  ["all 0xff", repeat([0xff])],
  ["one byte repeated (0x07)", repeat([7])],
  ["two bytes alternating", repeat([0xde, 0xad])],
  ["a 15-byte pattern repeated", repeat(Array.from({ length: 15 }, (_, i) => i * 17))],
  [
    "a 16-byte pattern of 16 distinct values repeated",
    repeat([0x91, 0x03, 0xee, 0x5a, 0xc7, 0x18, 0xb2, 0x7f, 0x00, 0xd4, 0x39, 0xa6, 0x6c, 0xf1, 0x8e, 0x25]),
  ],
  ["bytes drawn at random from 8 values (a broken generator)", Array.from(randomBytes(32), (b) => 0x80 + (b % 8))],
  ["a counting sequence 0..31", Array.from({ length: 32 }, (_, i) => i)],
  ["a counting sequence down from 0xff", Array.from({ length: 32 }, (_, i) => 0xff - i)],
  ["a counting sequence by 7 from 200", Array.from({ length: 32 }, (_, i) => (200 + 7 * i) % 256)],
  ["a password", [...Buffer.from("correct horse battery staple 123")]],
  ["32 hex characters (openssl rand -hex 16 taken as the key)", [...Buffer.from(randomBytes(16).toString("hex"))]],
  ["32 base64 characters", [...Buffer.from(randomBytes(24).toString("base64"))]],
];

describe("lowEntropyReason (lib/platform/crypto.ts)", () => {
  for (const [label, bytes] of weakKeys) {
    it(`recognises ${label}`, () => {
      expect(bytes).toHaveLength(32);
      expect(lowEntropyReason(Uint8Array.from(bytes))).toEqual(expect.any(String));
    });
  }

  it("never flags 20,000 keys from the CSPRNG (the tests fail a random key with P < 1e-13)", () => {
    const flagged: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const bytes = randomBytes(32);
      if (lowEntropyReason(bytes) !== undefined) flagged.push(bytes.toString("hex"));
    }
    expect(flagged).toEqual([]);
  });

  it("describes the shape, never the bytes", () => {
    for (const [, bytes] of weakKeys) {
      const reason = lowEntropyReason(Uint8Array.from(bytes))!;
      expect(reason).not.toContain(b64(bytes).slice(0, 8));
      expect(reason).not.toContain(Buffer.from(bytes).toString("hex").slice(0, 8));
      expect(reason).not.toContain(Buffer.from(bytes).toString("latin1").slice(0, 6));
    }
  });
});

describe("parseKeyring marks low-entropy entries by position", () => {
  it("still parses (so rows can be re-encrypted) but lists the weak entries", () => {
    const zero = b64(repeat([0]));
    const ring = parseKeyring(`new:${randomBytes(32).toString("base64")},old:${zero},other:${b64(weakKeys[9]![1])}`);
    expect(ring.ok).toBe(true);
    if (!ring.ok) return;
    expect(ring.value.lowEntropy.map((w) => w.position)).toEqual([2, 3]);
    expect(JSON.stringify(ring.value.lowEntropy)).not.toMatch(/old|other|AAAA/);
  });

  it("lists nothing for generated keys", () => {
    const ring = parseKeyring(`${generateKeyringEntry("a")},${generateKeyringEntry("b")}`);
    expect(ring.ok && ring.value.lowEntropy).toEqual([]);
  });
});

describe("parseKeyring's messages never carry key material", () => {
  it("for any spec of key-ish characters, no 12-character run of the input is in the message", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-:, ";
    const spec = fc.string({ unit: fc.constantFrom(...alphabet.split("")), minLength: 1, maxLength: 200 });
    const withKeys = fc
      .tuple(spec, fc.uint8Array({ minLength: 0, maxLength: 48 }), fc.constantFrom(":", ",", "", " "))
      .map(([text, bytes, sep]) => `${text}${sep}${b64(bytes)}`);
    fc.assert(
      fc.property(fc.oneof(spec, withKeys), (input) => {
        const parsed = parseKeyring(input);
        if (parsed.ok) return;
        for (let i = 0; i + 12 <= input.length; i++) {
          const run = input.slice(i, i + 12);
          if (run.trim().length < 12) continue;
          expect(parsed.error.includes(run), `${parsed.error} quotes ${run}`).toBe(false);
        }
      }),
      { seed: testSeed("parseKeyring messages"), numRuns: 2000 },
    );
  });
});

// ---- upstream base URLs ------------------------------------------------------------------------

describe("GEMINI_BASE_URL, EXA_BASE_URL and CLERK_API_URL", () => {
  const variables = ["GEMINI_BASE_URL", "EXA_BASE_URL", "CLERK_API_URL"] as const;
  const modes: [string, RawEnv][] = [
    ["development", {}],
    ["production", { DEPLOY_ENV: "production" }],
  ];

  /** The ConfigError's issues, or [] when the environment loads. */
  function issues(env: RawEnv): string[] {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.issues;
    }
  }

  const neverSchemes = [
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/plain,AIzaSySecretSecretSecretSecretSecret00",
    "ftp://proxy.example/",
    "ws://127.0.0.1:9000/",
    "gopher://127.0.0.1:70/",
  ];
  for (const variable of variables) {
    for (const [mode, base] of modes) {
      it(`${variable}: refuses every scheme but http(s) in ${mode}, naming the variable, never the value`, () => {
        for (const value of neverSchemes) {
          const found = issues({ ...base, [variable]: value });
          expect(found, value).toEqual([`${variable}: must be an http: or https: URL`]);
          expect(found.join()).not.toContain(value.slice(0, 12));
        }
      });
    }

    it(`${variable}: production takes https anywhere and http only to a loopback host`, () => {
      for (const value of [
        "https://generativelanguage.googleapis.com",
        "https://proxy.example:8443/v1",
        "http://127.0.0.1:9/",
        "http://127.1.2.3/",
        "http://localhost:8080",
        "http://LOCALHOST/",
        "http://[::1]:3000/",
      ]) {
        expect(issues({ DEPLOY_ENV: "production", [variable]: value }), value).toEqual([]);
      }
      for (const value of [
        "http://proxy.example/",
        "http://10.0.0.5:8080/",
        "http://0.0.0.0:9/",
        "http://localhost.attacker.example/",
        "http://127.0.0.1.nip.io/",
        "http://[::ffff:127.0.0.1]/",
      ]) {
        const found = issues({ DEPLOY_ENV: "production", [variable]: value });
        expect(found, value).toHaveLength(1);
        expect(found[0]).toMatch(new RegExp(`^${variable}: must be an https: URL in production`));
        expect(found[0]).not.toContain(new URL(value).host);
      }
    });

    it(`${variable}: development takes plain http anywhere (a proxy on the LAN, the fakes)`, () => {
      expect(issues({ [variable]: "http://proxy.example:8080/" })).toEqual([]);
    });
  }
});

// ---- configProblems ------------------------------------------------------------------------------

describe("configProblems (lib/platform/config-check.ts)", () => {
  const signer = createTestSigner();
  const good = {
    CLERK_JWT_KEY: signer.publicPem,
    CLERK_AUTHORIZED_PARTIES: "https://app.example",
    KEY_ENCRYPTION_KEYS: generateKeyringEntry("k1"),
    DATABASE_URL: "postgres://u@db.example:5432/app",
    CLERK_WEBHOOK_SIGNING_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    CLERK_PUBLISHABLE_KEY: publishableKeyFor("clerk.app.example", "live"),
  };
  const zeroKey = `k0:${b64(repeat([0]))}`;
  const textKey = `k0:${b64([...Buffer.from("correct horse battery staple 123")])}`;
  const brokenPem = "-----BEGIN PUBLIC KEY-----\\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnotakey\\n-----END PUBLIC KEY-----";
  const ecPem = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
  const production = { DEPLOY_ENV: "production" };

  // [label, env, errors (variables, sorted), warnings (variables, sorted)]
  const table: [string, RawEnv, string[], string[]][] = [
    ["production, everything set", { ...production, ...good }, [], []],
    ["development, everything set", good, [], []],
    ["development, nothing set", {}, [], ["CLERK_JWT_KEY", "CLERK_SECRET_KEY"]],
    ["production without Clerk", { ...production, ...good, CLERK_JWT_KEY: undefined }, ["CLERK_JWT_KEY", "CLERK_SECRET_KEY"], []],
    ["production with CLERK_SECRET_KEY only", { ...production, ...good, CLERK_JWT_KEY: undefined, CLERK_SECRET_KEY: "sk_test_x" }, [], []],
    ["production, PEM that does not parse", { ...production, ...good, CLERK_JWT_KEY: brokenPem }, ["CLERK_JWT_KEY"], []],
    ["production, PEM of an EC key", { ...production, ...good, CLERK_JWT_KEY: ecPem }, ["CLERK_JWT_KEY"], []],
    ["production, CLERK_JWT_KEY not a PEM at all", { ...production, ...good, CLERK_JWT_KEY: "sk_live_notapem" }, ["CLERK_JWT_KEY"], []],
    ["development, PEM that does not parse", { ...good, CLERK_JWT_KEY: brokenPem }, ["CLERK_JWT_KEY"], []],
    [
      "production, PEM as one line with literal \\n",
      { ...production, ...good, CLERK_JWT_KEY: signer.publicPem.trim().replace(/\n/g, "\\n") },
      [],
      [],
    ],
    ["production without KEY_ENCRYPTION_KEYS", { ...production, ...good, KEY_ENCRYPTION_KEYS: undefined }, ["KEY_ENCRYPTION_KEYS"], []],
    ["development without KEY_ENCRYPTION_KEYS (generated into .env)", { ...good, KEY_ENCRYPTION_KEYS: undefined }, [], []],
    [
      "production, malformed KEY_ENCRYPTION_KEYS",
      { ...production, ...good, KEY_ENCRYPTION_KEYS: "k1:tooshort" },
      ["KEY_ENCRYPTION_KEYS"],
      [],
    ],
    ["development, malformed KEY_ENCRYPTION_KEYS", { ...good, KEY_ENCRYPTION_KEYS: "no-id-here" }, ["KEY_ENCRYPTION_KEYS"], []],
    ["production, all-zero KEY_ENCRYPTION_KEYS", { ...production, ...good, KEY_ENCRYPTION_KEYS: zeroKey }, ["KEY_ENCRYPTION_KEYS"], []],
    [
      "production, a text key second in the ring",
      { ...production, ...good, KEY_ENCRYPTION_KEYS: `${good.KEY_ENCRYPTION_KEYS},${textKey}` },
      ["KEY_ENCRYPTION_KEYS"],
      [],
    ],
    ["development, all-zero KEY_ENCRYPTION_KEYS", { ...good, KEY_ENCRYPTION_KEYS: zeroKey }, [], ["KEY_ENCRYPTION_KEYS"]],
    [
      "production, CLERK_AUTHORIZED_PARTIES empty",
      { ...production, ...good, CLERK_AUTHORIZED_PARTIES: "" },
      [],
      ["CLERK_AUTHORIZED_PARTIES"],
    ],
    ["production on PGlite", { ...production, ...good, DATABASE_URL: undefined }, [], ["DATABASE_URL"]],
    ["production with DEBUG=true", { ...production, ...good, DEBUG: "true" }, [], ["DEBUG"]],
    [
      "production without CLERK_PUBLISHABLE_KEY",
      { ...production, ...good, CLERK_PUBLISHABLE_KEY: undefined },
      [],
      ["CLERK_PUBLISHABLE_KEY"],
    ],
    ["development without CLERK_PUBLISHABLE_KEY", { ...good, CLERK_PUBLISHABLE_KEY: undefined }, [], []],
    [
      "production, CLERK_PUBLISHABLE_KEY not a publishable key",
      { ...production, ...good, CLERK_PUBLISHABLE_KEY: "sk_live_abc" },
      ["CLERK_PUBLISHABLE_KEY"],
      [],
    ],
    [
      "production, CLERK_PUBLISHABLE_KEY naming no host",
      { ...production, ...good, CLERK_PUBLISHABLE_KEY: `pk_live_${Buffer.from("not a host$").toString("base64")}` },
      ["CLERK_PUBLISHABLE_KEY"],
      [],
    ],
    // The Gemini model and its price (lib/providers/prices.ts): never metered at $0.
    ["production, a current model of the price table", { ...production, ...good, GEMINI_MODEL: "gemini-3.1-flash-lite" }, [], []],
    [
      "production, a model without a price",
      { ...production, ...good, GEMINI_MODEL: "gemini-4-flash" },
      ["GEMINI_MODEL", "GEMINI_PRICE_INPUT_PER_MILLION", "GEMINI_PRICE_OUTPUT_PER_MILLION"],
      [],
    ],
    [
      "development, a model without a price",
      { ...good, GEMINI_MODEL: "gemini-4-flash" },
      [],
      ["GEMINI_MODEL", "GEMINI_PRICE_INPUT_PER_MILLION", "GEMINI_PRICE_OUTPUT_PER_MILLION"],
    ],
    [
      "production, a model without a price and the operator's prices",
      {
        ...production,
        ...good,
        GEMINI_MODEL: "gemini-4-flash",
        GEMINI_PRICE_INPUT_PER_MILLION: "2",
        GEMINI_PRICE_OUTPUT_PER_MILLION: "12.5",
      },
      [],
      [],
    ],
    ["production, a retired model", { ...production, ...good, GEMINI_MODEL: "gemini-2.5-flash" }, ["GEMINI_MODEL"], []],
    ["development, a retired model", { ...good, GEMINI_MODEL: "models/gemini-2.0-flash-001" }, [], ["GEMINI_MODEL"]],
    [
      "production with nothing at all",
      production,
      ["CLERK_JWT_KEY", "CLERK_SECRET_KEY", "KEY_ENCRYPTION_KEYS"],
      ["CLERK_PUBLISHABLE_KEY", "DATABASE_URL"],
    ],
  ];

  const variablesOf = (problems: ConfigProblem[], severity: ConfigProblem["severity"]) =>
    [...new Set(problems.filter((p) => p.severity === severity).flatMap((p) => p.variables))].sort();

  for (const [label, env, errors, warnings] of table) {
    it(`${label}: errors [${errors.join(", ")}], warnings [${warnings.join(", ")}]`, () => {
      const problems = configProblems(loadConfig(env));
      expect(variablesOf(problems, "error")).toEqual(errors);
      expect(variablesOf(problems, "warning")).toEqual(warnings);
      expect(misconfiguredVariables(problems).sort()).toEqual(errors);
      // Errors first; no message repeats a value it was given.
      expect(problems.map((p) => p.severity)).toEqual([...problems.map((p) => p.severity)].sort());
      const text = JSON.stringify(problems);
      for (const value of Object.values(env)) {
        if (value === undefined || value.length < 12) continue;
        for (const part of [value, value.slice(-24), value.split(":")[1] ?? ""]) if (part.length >= 12) expect(text).not.toContain(part);
      }
      expect(text).not.toContain("AAAAAAAAAAAA"); // base64 of the all-zero key
    });
  }

  it("a model without a price names the variables to set; a retired one says when Google shut it down", () => {
    const [unpriced] = configProblems(loadConfig({ ...production, ...good, GEMINI_MODEL: "gemini-4-flash" }));
    expect(unpriced?.message).toMatch(/a model without a price.*GEMINI_PRICE_INPUT_PER_MILLION and GEMINI_PRICE_OUTPUT_PER_MILLION/);
    const [retired] = configProblems(loadConfig({ ...production, ...good, GEMINI_MODEL: "gemini-2.5-flash" }));
    expect(retired?.message).toMatch(/a model Google shut down on 2026-06-17/);
  });

  it("the operator's prices go together: one without the other refuses to load, naming both", () => {
    expect(() => loadConfig({ GEMINI_PRICE_INPUT_PER_MILLION: "2" })).toThrow(
      /GEMINI_PRICE_INPUT_PER_MILLION and GEMINI_PRICE_OUTPUT_PER_MILLION go together/,
    );
    expect(() => loadConfig({ GEMINI_PRICE_OUTPUT_PER_MILLION: "abc", GEMINI_PRICE_INPUT_PER_MILLION: "1" })).toThrow(
      /GEMINI_PRICE_OUTPUT_PER_MILLION/,
    );
    expect(loadConfig({ GEMINI_PRICE_INPUT_PER_MILLION: "2", GEMINI_PRICE_OUTPUT_PER_MILLION: "12.5" }).gemini.price).toEqual({
      inputPerMillion: 2,
      outputPerMillion: 12.5,
    });
  });

  it(`warns when the price table is older than ${PRICE_TABLE_MAX_AGE_DAYS} days (it was read on ${GEMINI_PRICES_READ})`, () => {
    const read = Date.parse(`${GEMINI_PRICES_READ}T00:00:00Z`);
    const day = 86_400_000;
    const stale = (now: number) =>
      configProblems(loadConfig({ ...production, ...good }), new Date(now)).filter((p) => p.message.includes("price table"));
    expect(stale(read + PRICE_TABLE_MAX_AGE_DAYS * day)).toEqual([]);
    expect(stale(read + (PRICE_TABLE_MAX_AGE_DAYS + 1) * day)).toEqual([
      expect.objectContaining({
        severity: "warning",
        variables: ["GEMINI_MODEL"],
        message: expect.stringContaining(`${PRICE_TABLE_MAX_AGE_DAYS + 1} days ago`),
      }),
    ]);
  });

  it("only the DEBUG notice is public: an empty CLERK_AUTHORIZED_PARTIES is the operator's business", () => {
    const problems = configProblems(
      loadConfig({ ...production, ...good, DEBUG: "true", CLERK_AUTHORIZED_PARTIES: "", DATABASE_URL: undefined }),
    );
    expect(problems.filter((p) => p.public).map((p) => p.variables)).toEqual([["DEBUG"]]);
  });
});
