/**
 * Every regex in lib/ that sees outside input (requests, upstream answers, the model's output)
 * runs in linear time: a 64 KiB worst case may take about 4× a 16 KiB one, not 16× (quadratic).
 * Ratios, not times: each size is timed over fresh inputs, the best of several rounds kept.
 *
 * The inventory below classifies every regex literal, `RegExp(...)` and string pattern in
 * lib/**\/*.ts, found by parsing the sources: a new or changed one fails the first test until
 * it is classified here (with a worst case when it sees outside input). The last block runs
 * the code paths that feed outside input to them (redact, the title of a generated post, the
 * not-found and preflight answers, unknown body and query names, log fields).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { createLogger, redact } from "../../lib/platform/log.js";
import { extractTitle } from "../../lib/generation/generate.js";
import { issuesToErrors, readQuery } from "../../lib/http/request.js";
import { createApp } from "../../lib/app.js";
import { routes } from "../../lib/routes.js";
import { loadConfig } from "../../lib/platform/env.js";
import { createRuntime } from "../../lib/platform/runtime.js";
import { extractSessionToken } from "../../lib/platform/auth/token.js";
import { notLocalReason } from "../../lib/platform/dev/local-only.js";

const SMALL = 16 * 1024;
const LARGE = 64 * 1024;
/** Linear is ~4; quadratic ~16. */
const MAX_RATIO = 8;

/** `unit` repeated to about `n` characters, between `prefix` and `suffix`. */
function fill(n: number, unit: string, prefix = "", suffix = ""): string {
  return prefix + unit.repeat(Math.max(1, Math.floor((n - prefix.length - suffix.length) / unit.length))) + suffix;
}

type Classification = { sees: "outside input"; what: string; worst: (n: number) => string } | { sees: "no outside input"; what: string };

const outside = (what: string, worst: (n: number) => string): Classification => ({ sees: "outside input", what, worst });
const inside = (what: string): Classification => ({ sees: "no outside input", what });

/** Keyed by file and pattern as written in the source. */
const inventory: Record<string, Classification> = {
  "lib/account/clerk-webhook.ts /Missing required webhook headers/i": inside(
    "the webhook verifier's own error messages (no regex sees the request)",
  ),
  "lib/account/clerk-webhook.ts /timestamp too (old|new)/i": inside(
    "the webhook verifier's own error messages (no regex sees the request)",
  ),
  "lib/account/clerk-webhook.ts /Invalid Signature Headers/i": inside(
    "the webhook verifier's own error messages (no regex sees the request)",
  ),
  "lib/account/clerk-webhook.ts /No matching signature/i": inside("the webhook verifier's own error messages (no regex sees the request)"),
  "lib/platform/env.ts /^https?$/": inside("URL schemes of the environment's base URLs"),
  "lib/platform/env.ts /^\\d{1,6}(\\.\\d{1,8})?$/": inside("the environment"),
  "lib/platform/env.ts /^whsec_[A-Za-z0-9+/]{16,}={0,2}$/": inside("the environment"),
  "lib/platform/env.ts /^127\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}$/": inside("host names of the environment's base URLs"),
  "lib/platform/dev/env-file.ts /^(\\s*)((?:export\\s+)?)([\\w.-]+)(\\s*=\\s*?|:\\s+?)(\\s*'(?:\\\\'|[^'])*'|\\s*\"(?:\\\\\"|[^\"])*\"|\\s*`(?:\\\\`|[^`])*`|[^#\\r\\n]+)?\\s*(?:#.*)?$/dgm":
    inside(
      "the developer's own .env file (dotenv's line grammar); values the API writes into it are checked first and hold no blank, quote or newline",
    ),
  "lib/platform/dev/env-file.ts /\\s/": inside("the developer's .env file"),
  "lib/platform/dev/env-file.ts /[\\u2028\\u2029]/": inside("the developer's .env file"),
  "lib/platform/dev/env-file.ts /^[ \\t]*(?:export[ \\t]+)?$/": inside("the developer's .env file"),
  "lib/platform/dev/env-file.ts /^\\s*export\\s/": inside("the developer's .env file"),
  "lib/platform/dev/env-file.ts /\\r\\n|\\r|\\n/": inside("the developer's .env file"),
  "lib/platform/dev/env-file.ts /[\\r\\n]$/": inside("the developer's .env file"),
  "lib/http/middleware/request-id.ts /-/g": inside("randomUUID()"),
  "lib/http/middleware/request-id.ts /^[A-Za-z0-9._:-]{8,128}$/": outside("x-request-id header", (n) => fill(n, "a", "", "!")),
  "lib/platform/auth/jwks.ts /\\/+$/": inside("CLERK_API_URL"),
  "lib/platform/auth/pem.ts /-----BEGIN ([A-Z0-9 ]+)-----([\\s\\S]*?)-----END \\1-----/": inside("CLERK_JWT_KEY"),
  "lib/platform/auth/pem.ts /\\\\r\\\\n|\\\\n|\\\\r/g": inside("CLERK_JWT_KEY"),
  "lib/platform/auth/pem.ts /\\r\\n?/g": inside("CLERK_JWT_KEY"),
  "lib/platform/auth/pem.ts /\\s+/g": inside("CLERK_JWT_KEY"),
  "lib/platform/auth/pem.ts /.{1,64}/g": inside("CLERK_JWT_KEY"),
  "lib/platform/auth/token.ts /^Bearer[ \\t]+(\\S+)[ \\t]*$/i": outside("Authorization header", (n) => fill(n, "a ", "Bearer ")),
  "lib/platform/auth/token.ts /^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$/": outside("session token (cut at 16 KiB first)", (n) =>
    fill(n, "a."),
  ),
  "lib/generation/generate.ts /^(utm_|fbclid$|gclid$)/i": outside("query names of Exa's result URLs", (n) => fill(n, "x", "gclid")),
  "lib/generation/generate.ts /^www\\./": outside("host names of Exa's result URLs", (n) => fill(n, "w")),
  "lib/generation/generate.ts /\\/$/": outside("Exa's result URLs", (n) => fill(n, "/", "", "a")),
  "lib/platform/crypto.ts /^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$/": inside(
    "key ids of KEY_ENCRYPTION_KEYS and of stored values (the database)",
  ),
  "lib/platform/crypto.ts /^(?:[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?)$/": inside("KEY_ENCRYPTION_KEYS"),
  "lib/platform/crypto.ts /^[A-Za-z0-9_-]+$/": inside("stored values (the database)"),
  "lib/platform/dev/env-file.ts /^[A-Za-z_][A-Za-z0-9_]*$/": inside("variable names the service writes"),
  "lib/platform/dev/env-file.ts /[\\x00-\\x1F\\x7F]/": outside("key values written to .env", (n) => fill(n, "a")),
  "lib/platform/dev/env-file.ts /\\s/u": outside("key values written to .env", (n) => fill(n, "a")),
  "lib/platform/dev/env-file.ts /[^\\x21-\\x7E]/": outside("key values written to .env", (n) => fill(n, "a")),
  "lib/platform/dev/env-file.ts /[\"'`]/": outside("key values written to .env", (n) => fill(n, "a")),
  "lib/platform/env.ts /^(1|true|yes|on)$/i": inside("the environment"),
  "lib/platform/env.ts /^\\d+$/": inside("the environment"),
  "lib/http/request.ts /^application\\/([\\w.+-]+\\+)?json\\b/i": outside("Content-Type header", (n) => fill(n, "a+", "application/")),
  "lib/providers/registry.ts /^[0-9A-Za-z][0-9A-Za-z._-]{29,127}$/": outside("a Gemini key sent to be saved", (n) =>
    fill(n, "a", "AQ.", "!"),
  ),
  "lib/providers/registry.ts /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/": outside(
    "an Exa key sent to be saved",
    (n) => fill(n, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa!"),
  ),
  "lib/providers/registry.ts /^ck_pub_[0-9A-Za-z_-]{20,100}$/": outside("a CopilotKit key sent to be saved", (n) =>
    fill(n, "a", "ck_pub_", "!"),
  ),
  "lib/providers/registry.ts /\\p{Cc}/u": outside("keys sent to be saved", (n) => fill(n, "a")),
  "lib/providers/registry.ts /\\s/u": outside("keys sent to be saved", (n) => fill(n, "a")),
  "lib/providers/registry.ts /[\"'`]/": outside("keys sent to be saved", (n) => fill(n, "a")),
  "lib/providers/registry.ts /[=#]/": outside("keys sent to be saved", (n) => fill(n, "a")),
  "scripts/keys-reencrypt.ts /^--batch-size(?:=(.*))?$/": inside("the operator's command line"),
  "scripts/keys-reencrypt.ts /^[1-9]\\d{0,5}$/": inside("the operator's command line"),
  "scripts/bundling.ts /^(@electric-sql\\/pglite|drizzle-orm\\/pglite)(\\/.*)?$/": inside("module paths esbuild resolves"),
  "scripts/bundling.ts /.*/": inside("module paths esbuild resolves"),
  "scripts/bundle-functions.ts /\\.func$/": inside("folder names vercel build wrote"),
  "scripts/bundle-functions.ts /\\//g": inside("folder names vercel build wrote"),
  "scripts/build-web.ts /\\.(js|css)$/": inside("the web app's own file names"),
  "scripts/build-web.ts /\\.(br|gz)$/": inside("the web app's own file names"),
  "scripts/build-web.ts /\\{\\{([a-z.-]+)\\}\\}/g": inside("the web app's own HTML template"),
  "lib/platform/log.ts /AIza[0-9A-Za-z_-]{10,}/g": outside("log lines and echoed names", (n) => fill(n, "AIzaaaaaaaaaa!")),
  "lib/platform/log.ts /\\b[A-Z]{2}\\.[0-9A-Za-z_-]{16,}/g": outside("log lines and echoed names", (n) => fill(n, "AQ.aaaaaaaaaaaaa!")),
  "lib/platform/log.ts /ck_pub_[0-9A-Za-z_-]{6,}/g": outside("log lines and echoed names", (n) => fill(n, "ck_pub_aaaaa!")),
  "lib/platform/log.ts /\\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\b/gi": outside("log lines and echoed names", (n) =>
    fill(n, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa!"),
  ),
  "lib/platform/log.ts /\\b[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/_-]{16}:[A-Za-z0-9+/=_-]{20,}/g": outside("log lines and echoed names", (n) =>
    fill(n, `${"a".repeat(32)}:${"b".repeat(16)}:${"c".repeat(19)}!`),
  ),
  "lib/platform/log.ts /(sk|pk)_(live|test)_[0-9A-Za-z]{8,}/g": outside("log lines and echoed names", (n) => fill(n, "sk_live_aaaaaaa!")),
  "lib/platform/log.ts /[0-9A-Za-z_.-]{15,}/g": outside("log lines and echoed names", (n) => fill(n, "eyJaaaaaaa.bbb!")),
  "lib/openapi.ts /[^A-Za-z0-9]+(.)?/g": inside("route paths"),
  "lib/providers/gemini-errors.ts /^[A-Z_]{3,64}$/": outside("Gemini's ErrorInfo.reason", (n) => fill(n, "A", "", "a")),
  "lib/providers/gemini-errors.ts /^(\\d+(?:\\.\\d+)?)s$/": outside("Gemini's RetryInfo.retryDelay", (n) => fill(n, "1", "1.", "x")),
  "lib/providers/gemini.ts /^models\\//": inside("GEMINI_MODEL"),
  "lib/providers/upstream.ts /^[\\x21-\\x7e]+$/": outside("a user's saved key", (n) => fill(n, "a", "", " ")),
  "lib/providers/upstream.ts /^\\d+$/": outside("an upstream's Retry-After header", (n) => fill(n, "1", "", "x")),
  "lib/generation/routes/generate.ts /application\\/json/i": outside("Accept header", (n) => fill(n, "application/jso")),
  "lib/generation/routes/generate.ts /text\\/event-stream/i": outside("Accept header", (n) => fill(n, "text/event-strea")),
  "lib/generation/schemas.ts /\\p{Cc}/u": outside("topic, keywords and tone of a generation", (n) => fill(n, "a")),
  "lib/generation/schemas.ts /[\\n\\t]/g": outside("topic, keywords and tone of a generation", (n) => fill(n, "a")),
  "lib/server/lambda.ts /^text\\/|[/+](json|xml)\\s*(;|$)/i": inside("content types of the app's own responses"),
  "lib/providers/prices.ts /^models\\//": inside("GEMINI_MODEL"),
  "lib/providers/prices.ts /-(latest|\\d{3})$/": inside("GEMINI_MODEL"),
};

const root = join(import.meta.dirname, "../..");

/** Every regex in lib/**\/*.ts as `file pattern`: literals, `RegExp(...)` calls, string patterns of match/matchAll/search. */
function regexesInLib(): Map<string, number> {
  const found = new Map<string, number>();
  const add = (key: string) => found.set(key, (found.get(key) ?? 0) + 1);
  // lib/ and the command-line entry points in scripts/ (they read the operator's arguments).
  const files = ["lib", "scripts"].flatMap((dir) =>
    (readdirSync(join(root, dir), { recursive: true }) as string[]).filter((f) => f.endsWith(".ts")).map((f) => join(dir, f)),
  );
  for (const file of files) {
    const path = join(root, file);
    const name = relative(root, path).split("\\").join("/");
    const source = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) add(`${name} ${(node as ts.RegularExpressionLiteral).text}`);
      if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && node.expression.getText(source) === "RegExp") {
        add(`${name} ${node.getText(source)}`);
      }
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        ["match", "matchAll", "search"].includes(node.expression.name.text) &&
        node.arguments[0] !== undefined &&
        (ts.isStringLiteralLike(node.arguments[0]) || ts.isTemplateExpression(node.arguments[0]))
      ) {
        add(`${name} ${node.getText(source)}`); // a string argument is compiled as a regex
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

/** The literal `/source/flags` as a RegExp. */
function compile(literal: string): RegExp {
  const slash = literal.lastIndexOf("/");
  return new RegExp(literal.slice(1, slash), literal.slice(slash + 1));
}

/** Milliseconds per call of `run` over `inputs`, cycled `calls` times. */
function perCall(run: (input: string) => unknown, inputs: string[], calls: number): number {
  const started = performance.now();
  for (let i = 0; i < calls; i++) run(inputs[i % inputs.length]!);
  return (performance.now() - started) / calls;
}

/**
 * Time of `run` on a LARGE worst case over its time on a SMALL one, measured in rounds of
 * one small and one large sample back to back (each over fresh inputs, so no engine cache
 * can answer, with enough calls for ~40 ms); the best round's ratio counts, so a round
 * slowed down by other processes on the machine does not.
 */
function growth(run: (input: string) => unknown, worst: (n: number) => string): { ratio: number; smallMs: number; largeMs: number } {
  const first = perCall(run, [worst(SMALL)], 1); // also compiles and warms up
  let calls = Math.min(1 << 15, Math.max(1, Math.ceil(40 / Math.max(first, 0.001))));
  while (calls < 1 << 15 && perCall(run, [worst(SMALL)], calls) * calls < 40) calls *= 2;
  const largeCalls = Math.max(1, calls >> 2);
  let best = { ratio: Infinity, smallMs: 0, largeMs: 0 };
  const began = performance.now();
  // Up to 7 rounds, fewer when a quadratic case has already spent 20 s (a budget, not an assertion).
  for (let round = 0; round < 7 && best.ratio >= MAX_RATIO && performance.now() - began < 20_000; round++) {
    const smallMs = perCall(
      run,
      Array.from({ length: Math.min(4, calls) }, () => worst(SMALL)),
      calls,
    );
    const largeMs = perCall(
      run,
      Array.from({ length: Math.min(4, largeCalls) }, () => worst(LARGE)),
      largeCalls,
    );
    if (largeMs / smallMs < best.ratio) best = { ratio: largeMs / smallMs, smallMs, largeMs };
  }
  return best;
}

function expectLinear(label: string, run: (input: string) => unknown, worst: (n: number) => string): void {
  expect(worst(SMALL).length, `${label}: worst case size`).toBeGreaterThan(SMALL * 0.9);
  const { ratio, smallMs, largeMs } = growth(run, worst);
  expect(ratio, `${label}: 64 KiB took ${largeMs.toFixed(3)} ms, 16 KiB ${smallMs.toFixed(3)} ms (×${ratio.toFixed(1)})`).toBeLessThan(
    MAX_RATIO,
  );
}

describe("regexes in lib/", () => {
  it("are all classified: a new or changed one must say whether it sees outside input", () => {
    const found = regexesInLib();
    const unclassified = [...found.keys()].filter((key) => !(key in inventory));
    const gone = Object.keys(inventory).filter((key) => !found.has(key));
    expect({ unclassified, gone }).toEqual({ unclassified: [], gone: [] });
  });

  const outsideInput = Object.entries(inventory).filter(
    (entry): entry is [string, Extract<Classification, { sees: "outside input" }>] => entry[1].sees === "outside input",
  );
  it.each(outsideInput)("%s runs in linear time", { timeout: 60_000 }, (key, { worst }) => {
    const literal = key.slice(key.indexOf(" ") + 1);
    const regex = compile(literal);
    const run = regex.global ? (input: string) => input.replace(regex, "") : (input: string) => regex.exec(input);
    expectLinear(key, run, worst);
  });
});

describe("code paths that feed outside input to regexes run in linear time", () => {
  const worstForRedact: Record<string, (n: number) => string> = {
    "eyJ repeated (the JWT shape without dots)": (n) => fill(n, "eyJ"),
    "JWT headers without a second dot": (n) => fill(n, "eyJaaaaa.bbbbb!"),
    "one long dotted run of short segments": (n) => fill(n, "eyJaaaaa.b."),
    "AIza repeated": (n) => fill(n, "AIza"),
    "key ids and colons": (n) => fill(n, "a:"),
    "near-miss ciphertexts": (n) => fill(n, `${"a".repeat(32)}:${"b".repeat(16)}:${"c".repeat(19)}!`),
    "near-miss UUIDs": (n) => fill(n, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa-"),
  };
  it.each(Object.entries(worstForRedact))("redact(): %s", { timeout: 60_000 }, (label, worst) => {
    expectLinear(`redact: ${label}`, redact, worst);
  });

  it("extractTitle(): blank lines, and long lines that are almost headings", { timeout: 60_000 }, () => {
    expectLinear(
      "newlines",
      (md) => extractTitle(md, "fallback"),
      (n) => fill(n, "\n", "", "x"),
    );
    expectLinear(
      "spaces and newlines",
      (md) => extractTitle(md, "fallback"),
      (n) => fill(n, " \n"),
    );
    expectLinear(
      "one heading of blanks",
      (md) => extractTitle(md, "fallback"),
      (n) => fill(n, " ", "# a", "b"),
    );
    expectLinear(
      "one heading of hashes",
      (md) => extractTitle(md, "fallback"),
      (n) => fill(n, "# ", "# a"),
    );
    expectLinear(
      "many empty headings",
      (md) => extractTitle(md, "fallback"),
      (n) => fill(n, "# #\n"),
    );
  });

  it("the log: a field holding an outside string", { timeout: 60_000 }, () => {
    const logger = createLogger({ level: "debug", sink: () => {} });
    expectLinear(
      "log field",
      (value) => logger.info("request", { value }),
      (n) => fill(n, "eyJ"),
    );
  });

  it("unknown field names of a body and of a query string", { timeout: 60_000 }, () => {
    const strict = z.strictObject({ a: z.string().optional() });
    expectLinear(
      "body field name",
      (name) => issuesToErrors(strict.safeParse({ [name]: 1 }).error!.issues),
      (n) => fill(n, "eyJ"),
    );
    const query = (qs: string) => {
      try {
        readQuery(new Request(`http://localhost/api/usage?${qs}`), strict);
      } catch {
        // the 400 is expected; only the time matters
      }
    };
    expectLinear("query name", query, (n) => fill(n, "eyJ", "", "=1"));
    // Half the size each: the query string is the worst case (node's URL parser slows down past 64 KiB).
    expectLinear(
      "repeated query name",
      (qs) => query(qs),
      (n) => `${fill(n / 2 - 2, "eyJ")}=1&${fill(n / 2 - 2, "eyJ")}=2`,
    );
  });

  it("request headers: Authorization, Host and forwarding headers", { timeout: 60_000 }, () => {
    const withHeader = (name: string) => (value: string) => new Request("http://localhost/api/health", { headers: { [name]: value } });
    expectLinear(
      "Authorization",
      (v) => extractSessionToken(withHeader("authorization")(v)),
      (n) => fill(n, "a ", "Bearer "),
    );
    expectLinear(
      "Host",
      (v) => notLocalReason(withHeader("host")(v)),
      (n) => fill(n, "[", "localhost:"),
    );
    expectLinear(
      "X-Forwarded-For",
      (v) => notLocalReason(withHeader("x-forwarded-for")(v)),
      (n) => fill(n, "127.0.0.1,"),
    );
    expectLinear(
      "Forwarded",
      (v) => notLocalReason(withHeader("forwarded")(v)),
      (n) => fill(n, "for=127.0.0.1;"),
    );
  });

  it("the app: unknown paths and preflights of long, slash-heavy or token-shaped paths", { timeout: 120_000 }, async () => {
    const runtime = createRuntime(
      loadConfig({ DEPLOY_ENV: "production", CLERK_JWT_KEY: "unused", ALLOWED_ORIGINS: "https://app.example" }),
      { database: () => Promise.reject(new Error("no database in this test")), logSink: () => {} },
    );
    const app = createApp(routes, { runtime });
    // app.fetch is asynchronous: time whole batches of awaited requests instead of single calls.
    const timeRequests = async (make: (n: number) => Request, n: number, count: number) => {
      const requests = Array.from({ length: count }, () => make(n));
      const started = performance.now();
      for (const request of requests) await (await app.fetch(request)).arrayBuffer();
      return (performance.now() - started) / count;
    };
    const cases: Record<string, (n: number) => Request> = {
      "GET of eyJ repeated (the issue's reproduction)": (n) => new Request(`http://localhost/${fill(n, "eyJ")}`),
      "preflight of a run of slashes": (n) =>
        new Request(`http://localhost/${fill(n, "/", "", "a")}`, {
          method: "OPTIONS",
          headers: { origin: "https://app.example", "access-control-request-method": "GET" },
        }),
      "DELETE of a run of slashes after a route": (n) =>
        new Request(`http://localhost/api/health${fill(n, "/", "", "/")}`, { method: "DELETE" }),
    };
    for (const [label, make] of Object.entries(cases)) {
      await timeRequests(make, SMALL, 2); // warm up
      let smallMs = Infinity;
      let largeMs = Infinity;
      let ratio = Infinity;
      for (let round = 0; round < 7 && ratio >= MAX_RATIO; round++) {
        const small = await timeRequests(make, SMALL, 8);
        const large = await timeRequests(make, LARGE, 2);
        if (large / small < ratio) [ratio, smallMs, largeMs] = [large / small, small, large];
      }
      expect(ratio, `${label}: 64 KiB took ${largeMs.toFixed(2)} ms, 16 KiB ${smallMs.toFixed(2)} ms`).toBeLessThan(MAX_RATIO);
    }
  });
});
