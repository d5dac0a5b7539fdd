/**
 * lib/platform/log.ts shape by shape and rule by rule: every secret pattern at its boundary, the
 * JWT finder's limits, the cut of long fields, exact-value scrubbing in raw and JSON-escaped
 * form, levels, sinks and scopes. Written from StrykerJS's surviving mutants
 * (docs/mutation-testing.md): the Exa pattern, for one, could be broken without any test noticing.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger, MAX_LOG_FIELD_CHARS, memorySink, redact, truncate, type LogLevel } from "../../lib/platform/log.js";

const R = "[redacted]";

describe("redact: each shape at its boundary", () => {
  const cases: [label: string, secret: string, notSecret: string][] = [
    ["Gemini standard key", `AIza${"a".repeat(10)}`, `AIza${"a".repeat(9)}`],
    ["Gemini authorization key (AQ.)", `AQ.${"b".repeat(16)}`, `AQ.${"b".repeat(15)}`],
    ["Gemini authorization key (IQ.)", `IQ.${"Z9_-".repeat(4)}`, `iq.${"Z9_-".repeat(4)}`],
    ["CopilotKit key", `ck_pub_${"c".repeat(6)}`, `ck_pub_${"c".repeat(5)}`],
    ["Exa key (a UUID)", "0a1b2c3d-4e5f-4a6b-8c7d-0123456789ab", "0a1b2c3-4e5f-4a6b-8c7d-0123456789ab"],
    ["Exa key in capitals", "0A1B2C3D-4E5F-4A6B-8C7D-0123456789AB", "0A1B2C3D-4E5F-4A6B-8C7D-0123456789A"],
    ["stored ciphertext", `k1:${"n".repeat(16)}:${"c".repeat(20)}`, `k1:${"n".repeat(15)}:${"c".repeat(20)}`],
    ["Clerk secret key", `sk_live_${"d".repeat(8)}`, `sk_live_${"d".repeat(7)}`],
    ["Clerk publishable key", `pk_test_${"E".repeat(8)}`, `pk_prod_${"E".repeat(8)}`],
    ["JWT", `eyJ${"h".repeat(5)}.${"p".repeat(5)}.sig`, `eyJ${"h".repeat(4)}.${"p".repeat(5)}.sig`],
    ["JWT with a short payload is no JWT", `eyJ${"h".repeat(5)}.${"p".repeat(5)}.`, `eyJ${"h".repeat(5)}.${"p".repeat(4)}.sig`],
  ];
  for (const [label, secret, notSecret] of cases) {
    it(`${label}: redacted, and just short of it kept`, () => {
      expect(redact(`before ${secret} after`)).toBe(`before ${R} after`);
      expect(redact(`before ${notSecret} after`)).toBe(`before ${notSecret} after`);
    });
  }

  it("every part of a UUID must be there, in hex", () => {
    for (const broken of [
      "0a1b2c3d-4e5-4a6b-8c7d-0123456789ab",
      "0a1b2c3d-4e5f-4a6-8c7d-0123456789ab",
      "0a1b2c3d-4e5f-4a6b-8c7-0123456789ab",
      "0a1b2c3d-4e5f-4a6b-8c7d-0123456789a",
      "0a1b2c3g-4e5f-4a6b-8c7d-0123456789ab",
      "0a1b2c3d-4e5g-4a6b-8c7d-0123456789ab",
      "0a1b2c3d-4e5f-4a6g-8c7d-0123456789ab",
      "0a1b2c3d-4e5f-4a6b-8c7g-0123456789ab",
      "0a1b2c3d-4e5f-4a6b-8c7d-0123456789ag",
    ]) {
      expect(redact(broken), broken).toBe(broken);
    }
  });

  it("a JWT goes from its eyJ to the end of its signature; what precedes it in the run stays", () => {
    expect(redact(`x.eyJ${"h".repeat(5)}.${"p".repeat(5)}.sig.tail`)).toBe(`x.${R}.tail`);
    expect(redact(`abceyJ${"h".repeat(5)}.${"p".repeat(5)}.s`)).toBe(`abc${R}`);
    expect(redact(`zz.${"y".repeat(20)}.${"w".repeat(20)}`)).toBe(`zz.${"y".repeat(20)}.${"w".repeat(20)}`);
    expect(redact(`eyJ${"h".repeat(5)}.${"p".repeat(5)}`)).toBe(`eyJ${"h".repeat(5)}.${"p".repeat(5)}`); // two segments only
    // Five characters must follow the eyJ itself, not merely be somewhere in its segment.
    expect(redact(`aaaaaaaaeyJab.${"p".repeat(5)}.sig`)).toBe(`aaaaaaaaeyJab.${"p".repeat(5)}.sig`);
  });
});

describe("truncate", () => {
  it("keeps text of at most max characters and marks what it cut", () => {
    expect(truncate("abcd", 4)).toBe("abcd");
    expect(truncate("abcde", 4)).toBe("abcd…[1 more characters]");
    expect(truncate("abcdefghij", 3)).toBe("abc…[7 more characters]");
  });
});

describe("createLogger", () => {
  const logged = (level: LogLevel | undefined, write: (log: ReturnType<typeof createLogger>) => void) => {
    const { sink, lines } = memorySink();
    write(createLogger({ level, sink }));
    return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  };

  it("each method writes its level; the minimum level (default info) drops the lower ones", () => {
    const all = (log: ReturnType<typeof createLogger>) => {
      log.debug("d");
      log.info("i");
      log.warn("w");
      log.error("e");
    };
    expect(logged(undefined, all).map((l) => [l.level, l.msg])).toEqual([
      ["info", "i"],
      ["warn", "w"],
      ["error", "e"],
    ]);
    expect(logged("debug", all).map((l) => l.level)).toEqual(["debug", "info", "warn", "error"]);
    expect(logged("warn", all).map((l) => l.level)).toEqual(["warn", "error"]);
    expect(logged("error", all).map((l) => l.level)).toEqual(["error"]);
  });

  it("cuts long fields (strings, and each long string of a list) to MAX_LOG_FIELD_CHARS, leaving the rest and the caller's object alone", () => {
    const long = "x".repeat(MAX_LOG_FIELD_CHARS + 1);
    const exact = "y".repeat(MAX_LOG_FIELD_CHARS);
    const fields = { long, exact, list: ["short", long], shortList: ["a", "b"], n: 5, flag: true, none: null };
    const [line] = logged("info", (log) => log.info("m", fields));
    expect(line!.long).toBe(truncate(long, MAX_LOG_FIELD_CHARS));
    expect(line!.exact).toBe(exact);
    expect(line!.list).toEqual(["short", truncate(long, MAX_LOG_FIELD_CHARS)]);
    expect(line!.shortList).toEqual(["a", "b"]);
    expect(line).toMatchObject({ n: 5, flag: true, none: null });
    expect(fields.long).toBe(long);
    const [message] = logged("info", (log) => log.info(long));
    expect(message!.msg).toBe(truncate(long, MAX_LOG_FIELD_CHARS));
  });

  it("keeps the base fields of a child and a scope beside the line's own", () => {
    const { sink, lines } = memorySink();
    const log = createLogger({ sink, fields: { service: "s" } });
    log.child({ requestId: "r1" }).info("a", { x: 1 });
    log.scope({ requestId: "r2" }).info("b");
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ service: "s", requestId: "r1", x: 1, msg: "a" }),
      expect.objectContaining({ service: "s", requestId: "r2", msg: "b" }),
    ]);
  });

  it("redactAlso: values of 8 characters or more, raw or JSON-escaped, in the logger and its children; a scope has its own", () => {
    const { sink, lines } = memorySink();
    const log = createLogger({ sink });
    const child = log.child({});
    const scope = log.scope({});
    child.redactAlso("plainsecret1", 'quo"ted\\secret', "short12", undefined);
    log.info("m", { a: "plainsecret1", b: 'quo"ted\\secret', c: "short12" });
    scope.info("m", { a: "plainsecret1" });
    scope.redactAlso("scopedsecret");
    log.info("m", { s: "scopedsecret" });
    scope.info("m", { s: "scopedsecret" });
    expect(JSON.parse(lines[0]!)).toMatchObject({ a: R, b: R, c: "short12" });
    expect(JSON.parse(lines[1]!)).toMatchObject({ a: "plainsecret1" });
    expect(JSON.parse(lines[2]!)).toMatchObject({ s: "scopedsecret" });
    expect(JSON.parse(lines[3]!)).toMatchObject({ s: R });
    const eight = createLogger({ sink });
    eight.redactAlso("8chars!!");
    eight.info("8chars!!");
    expect(JSON.parse(lines[4]!).msg).toBe(R);
  });
});

describe("the default sink", () => {
  afterEach(() => vi.restoreAllMocks());
  it("writes warnings and errors to stderr, the rest to stdout, one line each", () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const log = createLogger({ level: "debug" });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    const msgs = (spy: typeof out) => spy.mock.calls.map(([text]) => String(text)).map((t) => [JSON.parse(t).msg, t.endsWith("}\n")]);
    expect(msgs(out)).toEqual([
      ["d", true],
      ["i", true],
    ]);
    expect(msgs(err)).toEqual([
      ["w", true],
      ["e", true],
    ]);
  });
});
