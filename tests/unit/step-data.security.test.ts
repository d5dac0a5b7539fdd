/**
 * lib/onboarding/step-data.ts, value by value: what step data may be stored (the app-level
 * reproductions are tests/onboarding/step-data.security.test.ts).
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  hasLoneSurrogate,
  MAX_STEP_DATA_CHARS,
  MAX_STEP_DATA_DEPTH,
  refineStepData,
  stepDataProblems,
} from "../../lib/onboarding/step-data.js";
import { sampleKeys } from "../helpers/runtime.js";

const keys = sampleKeys(4242);
const pointers = (data: unknown, skip?: string[]) => stepDataProblems(data, { skip }).map((p) => p.pointer);

/** `levels` nested one-member objects around `inner`. */
function nested(levels: number, inner: unknown = 1): unknown {
  let value = inner;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

describe("stepDataProblems", () => {
  it("takes ordinary step data", () => {
    for (const data of [
      {},
      { website_url: "https://example.com", tags: ["a", "b"], n: 3, ok: true, none: null },
      { persona: { tone: "friendly", emoji: "😀 ✓ é", lines: ["x\ny"] } },
      nested(MAX_STEP_DATA_DEPTH - 1),
      [1, "two", { three: [3] }],
      "just text",
      42,
      null,
    ]) {
      expect(stepDataProblems(data), JSON.stringify(data)).toEqual([]);
    }
  });

  it("refuses NUL and lone surrogates in values and names, naming where", () => {
    expect(pointers({ a: "x\u0000y" })).toEqual(["/a"]);
    expect(pointers({ a: ["ok", "\ud800"] })).toEqual(["/a/1"]);
    expect(pointers({ a: { b: "\udc00x" } })).toEqual(["/a/b"]);
    expect(pointers({ a: { "n\u0000me": 1 } })).toEqual(["/a"]); // a bad name: reported at its parent
    expect(pointers({ "\ud83d": 1 })).toEqual([""]);
    const [nul] = stepDataProblems({ a: "\u0000" });
    expect(nul!.message).toMatch(/NUL/);
    expect(nul!.path).toEqual(["a"]);
    const [lone] = stepDataProblems({ a: "\ud800" });
    expect(lone!.message).toMatch(/lone surrogate/);
  });

  it("refuses key-shaped values and names anywhere, never echoing them", () => {
    const data = {
      gemini_api_key: keys.gemini,
      deep: { list: [{ token: `Bearer ${keys.exa}` }] },
      standard: `AIza${"S".repeat(35)}`,
      copilot: keys.copilotkit,
      jwt: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl",
      clerk: "sk_live_0123456789abcdef",
      [keys.gemini]: "name",
    };
    const problems = stepDataProblems(data);
    expect(problems.map((p) => p.pointer).sort()).toEqual([
      "",
      "/clerk",
      "/copilot",
      "/deep/list/0/token",
      "/gemini_api_key",
      "/jwt",
      "/standard",
    ]);
    for (const problem of problems) {
      expect(problem.message).toMatch(/shaped like an API key or secret; send keys in data.api_keys/);
      for (const key of Object.values(keys)) expect(JSON.stringify(problem)).not.toContain(key);
    }
  });

  it("skips the top-level members it is told to (data.api_keys, which the key service takes), only there", () => {
    expect(pointers({ api_keys: { gemini: keys.gemini } }, ["api_keys"])).toEqual([]);
    expect(pointers({ api_keys: { gemini: keys.gemini } })).toEqual(["/api_keys/gemini"]);
    expect(pointers({ inner: { api_keys: { gemini: keys.gemini } } }, ["api_keys"])).toEqual(["/inner/api_keys/gemini"]);
  });

  it("bounds the depth (5,000 levels gave a 500), once, without recursion", () => {
    expect(pointers(nested(MAX_STEP_DATA_DEPTH))).toEqual([]);
    const tooDeep = stepDataProblems(nested(MAX_STEP_DATA_DEPTH + 1));
    expect(tooDeep).toHaveLength(1);
    expect(tooDeep[0]!.message).toMatch(new RegExp(`at most ${MAX_STEP_DATA_DEPTH} levels`));
    expect(tooDeep[0]!.pointer).toBe("/a".repeat(MAX_STEP_DATA_DEPTH));
    let arrays: unknown = [];
    for (let i = 0; i < 100_000; i++) arrays = [arrays];
    expect(stepDataProblems(arrays)).toHaveLength(1);
    expect(stepDataProblems({ x: nested(50), y: nested(50) })).toHaveLength(1);
  });

  it("bounds the size", () => {
    const fits = { text: "x".repeat(MAX_STEP_DATA_CHARS - '{"text":""}'.length) };
    expect(JSON.stringify(fits)).toHaveLength(MAX_STEP_DATA_CHARS);
    expect(stepDataProblems(fits)).toEqual([]);
    const over = { text: `${fits.text}x` };
    expect(stepDataProblems(over).map((p) => [p.pointer, p.message])).toEqual([
      ["", `the step's data may be at most ${MAX_STEP_DATA_CHARS} characters of JSON`],
    ]);
  });

  it("escapes pointer segments (RFC 6901)", () => {
    expect(pointers({ "a/b": { "c~d": "\u0000" } })).toEqual(["/a~1b/c~0d"]);
  });
});

describe("hasLoneSurrogate", () => {
  it("finds unpaired halves only", () => {
    for (const text of ["", "abc", "😀", "a😀b😀", "\ud83d\ude00", "ｘ\uffff\ue000", "\udbff\udc00", "\ud800\udc00", "\ud800\udfff"]) {
      expect(hasLoneSurrogate(text), JSON.stringify(text)).toBe(false);
    }
    for (const text of [
      "\ud800",
      "\udc00",
      "a\ud800b",
      "\ud800\ud800",
      "😀\ud83d",
      "\ude00\ud83d",
      "x\udfff",
      "\ud800\ue000",
      "\udbff\ud7ff",
      "\udc00\udc01",
    ]) {
      expect(hasLoneSurrogate(text), JSON.stringify(text)).toBe(true);
    }
  });
});

describe("exact messages, paths and edges", () => {
  it("says what was wrong and where, as a path of names and array indexes", () => {
    expect(stepDataProblems({ a: ["ok", "x\u0000"] })).toEqual([
      { path: ["a", 1], pointer: "/a/1", message: "a value contains a NUL character (\\u0000)" },
    ]);
    expect(stepDataProblems({ "b\u0000": 1 })).toEqual([
      { path: [], pointer: "", message: "a property name contains a NUL character (\\u0000)" },
    ]);
    expect(stepDataProblems({ c: "\ud800" })[0]!.message).toBe("a value contains a lone surrogate (not Unicode text)");
    expect(stepDataProblems({ d: keys.exa })[0]!.message).toBe(
      "a value is shaped like an API key or secret; send keys in data.api_keys (stored encrypted), never as step data (stored and exported as text)",
    );
  });

  it("nothing at all (undefined) has no problem", () => {
    expect(stepDataProblems(undefined)).toEqual([]);
  });
});

describe("refineStepData", () => {
  it("adds custom issues", () => {
    const parsed = z.looseObject({}).superRefine(refineStepData()).safeParse({ a: "\u0000" });
    expect(parsed.error!.issues.map((i) => [i.code, i.path, i.message])).toEqual([
      ["custom", ["a"], "a value contains a NUL character (\\u0000)"],
    ]);
  });

  it("turns each problem into a zod issue at its path", () => {
    const schema = z.object({ data: z.looseObject({}).superRefine(refineStepData({ skip: ["api_keys"] })) });
    const parsed = schema.safeParse({ data: { a: { b: "\u0000" }, api_keys: { gemini: keys.gemini }, c: "\ud800" } });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues.map((i) => i.path.join("/")).sort()).toEqual(["data/a/b", "data/c"]);
    expect(schema.safeParse({ data: { fine: "yes" } }).success).toBe(true);
  });
});
