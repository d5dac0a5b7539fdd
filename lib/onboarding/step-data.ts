/**
 * Step data: the free-form JSON an onboarding wizard (ALwrity's) sends with a step and reads back
 * later (`data` of `POST /api/onboarding/step/{step}/complete`; exported by `GET /api/me/export`).
 * It is stored as `jsonb`, as text the caller chose, so before it is stored it must be:
 *
 * - small and shallow: at most MAX_STEP_DATA_CHARS of JSON and MAX_STEP_DATA_DEPTH levels
 *   (5,000 levels overflowed the database's stack: a 500);
 * - storable text: no NUL (`\u0000`, which `jsonb` refuses) and no lone surrogate (`\ud800`,
 *   not Unicode) in any string or property name;
 * - free of secrets: no value or property name shaped like a provider key, a token or a stored
 *   ciphertext (the log scrubber's shapes, lib/platform/log.ts: Gemini and CopilotKit keys, Exa
 *   keys (any UUID), JWTs, Clerk keys). Keys go in `data.api_keys`, which the key service
 *   encrypts; anywhere else they would be stored and exported as plain text.
 *
 * `stepDataProblems` names each problem by JSON Pointer (never echoing the value; a bad property
 * name is reported at its parent); `refineStepData` is the same check as a zod `superRefine`.
 * The walk is iterative, so no depth of input can overflow the stack here either.
 */
import type { z } from "zod";
import { redact } from "../platform/log.js";

/** Most characters of JSON a step's data may hold: 12 KiB, since ALwrity's step 3 carries the website analysis with the competitors (under the 16 KiB body limit). */
export const MAX_STEP_DATA_CHARS = 12 * 1024;
/** Deepest nesting of objects and arrays in a step's data (`{"a": {"b": 1}}` is 2). */
export const MAX_STEP_DATA_DEPTH = 16;

export interface StepDataProblem {
  /** Where, as path segments from the data's root (the parent, for a bad property name). */
  path: (string | number)[];
  /** RFC 6901 pointer of `path`, relative to the data (`""` is the data itself). */
  pointer: string;
  message: string;
}

export interface StepDataOptions {
  /** Top-level members checked elsewhere and skipped here (ALwrity's `api_keys`, which the key service takes). */
  skip?: readonly string[];
}

const KEY_SHAPED =
  "is shaped like an API key or secret; send keys in data.api_keys (stored encrypted), never as step data (stored and exported as text)";

/** Does `text` hold a surrogate code unit without its pair? (String#isWellFormed, which the TS lib here lacks.) */
export function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    const next = text.charCodeAt(i + 1); // NaN past the end
    if (unit > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return true;
    i++; // a high surrogate and its low one
  }
  return false;
}

/** What is wrong with one string of step data, or undefined. */
function stringProblem(text: string, what: "value" | "property name"): string | undefined {
  if (text.includes("\u0000")) return `a ${what} contains a NUL character (\\u0000)`;
  if (hasLoneSurrogate(text)) return `a ${what} contains a lone surrogate (not Unicode text)`;
  if (redact(text) !== text) return `a ${what} ${KEY_SHAPED}`;
  return undefined;
}

function pointerOf(path: readonly (string | number)[]): string {
  return path.map((p) => `/${String(p).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

/** Every problem of `data` (a parsed JSON value); empty when it may be stored. */
export function stepDataProblems(data: unknown, options: StepDataOptions = {}): StepDataProblem[] {
  const problems: StepDataProblem[] = [];
  const add = (path: (string | number)[], message: string) => problems.push({ path, pointer: pointerOf(path), message });
  const skip = new Set(options.skip ?? []);
  // Depth-first, with an explicit stack: [value, path, depth of the value's container level].
  const stack: [unknown, (string | number)[], number][] = [[data, [], 0]];
  let tooDeep = false;
  while (stack.length > 0) {
    const [value, path, depth] = stack.pop()!;
    if (typeof value === "string") {
      const problem = stringProblem(value, "value");
      if (problem) add(path, problem);
      continue;
    }
    if (value === null || typeof value !== "object") continue;
    if (depth >= MAX_STEP_DATA_DEPTH) {
      if (!tooDeep) add(path, `the step's data may nest at most ${MAX_STEP_DATA_DEPTH} levels of objects and arrays`);
      tooDeep = true;
      continue;
    }
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], [...path, i], depth + 1]);
      continue;
    }
    const entries = Object.entries(value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [name, member] = entries[i]!;
      if (path.length === 0 && skip.has(name)) continue;
      const problem = stringProblem(name, "property name");
      if (problem) add(path, problem);
      else stack.push([member, [...path, name], depth + 1]);
    }
  }
  if (problems.length === 0) {
    const chars = JSON.stringify(data)?.length ?? 0;
    if (chars > MAX_STEP_DATA_CHARS) add([], `the step's data may be at most ${MAX_STEP_DATA_CHARS} characters of JSON`);
  }
  return problems;
}

/**
 * `stepDataProblems` as a zod refinement: `schema.superRefine(refineStepData({ skip: ["api_keys"] }))`.
 * Each problem becomes an issue at its path, so the 400 names it by pointer (`/data/site/token`).
 */
export function refineStepData(options: StepDataOptions = {}) {
  return (data: unknown, ctx: z.RefinementCtx): void => {
    for (const problem of stepDataProblems(data, options)) ctx.addIssue({ code: "custom", message: problem.message, path: problem.path });
  };
}
