/**
 * The provider registry: which providers a user can bring a key for, where each key goes in
 * a `.env` file, whether its owner may read it back, and what a well-formed key looks like.
 *
 * Validation messages say what is wrong and how to fix it, never what was sent: a
 * mistyped key is still (most of) a key.
 */
import { z } from "zod";
import { err, ok, type Result } from "../http/errors.js";
import { providers, type Provider } from "./provider-ids.js";

export { providers, type Provider };

export interface ProviderInfo {
  readonly id: Provider;
  /** Human name for messages, e.g. "Gemini". */
  readonly label: string;
  /** Variable the key is written to in the backend `.env` file (development). */
  readonly envVar: string;
  /** Variable the key is also written to in the frontend `.env` file (development), if any. */
  readonly frontendEnvVar: string | undefined;
  /** Whether the full key is returned to its owner (only publishable frontend keys). */
  readonly returnsValue: boolean;
  /** What a valid key looks like, in words (for messages and OpenAPI descriptions). */
  readonly format: string;
  /** The shape of a trimmed, valid key. */
  readonly pattern: RegExp;
  /** A well-formed made-up key for documentation (never a real one). */
  readonly example: string;
}

export const providerInfo: Readonly<Record<Provider, ProviderInfo>> = Object.freeze({
  gemini: Object.freeze({
    id: "gemini",
    label: "Gemini",
    envVar: "GEMINI_API_KEY",
    frontendEnvVar: undefined,
    returnsValue: false,
    format: '"AIza" followed by 30-100 letters, digits, "_" or "-"',
    pattern: /^AIza[0-9A-Za-z_-]{30,100}$/,
    example: "AIzaSyExampleExampleExampleExample0000",
  }),
  exa: Object.freeze({
    id: "exa",
    label: "Exa",
    envVar: "EXA_API_KEY",
    frontendEnvVar: undefined,
    returnsValue: false,
    format: "a UUID (8-4-4-4-12 hexadecimal digits)",
    pattern: /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/,
    example: "3f2b8c1e-7d4a-4b9e-9c21-0a5e6f7d8c90",
  }),
  copilotkit: Object.freeze({
    id: "copilotkit",
    label: "CopilotKit",
    envVar: "COPILOTKIT_API_KEY",
    frontendEnvVar: "REACT_APP_COPILOTKIT_API_KEY",
    returnsValue: true,
    format: '"ck_pub_" followed by 20-100 letters, digits, "_" or "-"',
    pattern: /^ck_pub_[0-9A-Za-z_-]{20,100}$/,
    example: "ck_pub_exampleexampleexample0000",
  }),
});

export function isProvider(value: unknown): value is Provider {
  return typeof value === "string" && (providers as readonly string[]).includes(value);
}

/**
 * The first thing wrong with a trimmed key, as a message that does not contain the key;
 * `undefined` when the key is well-formed. The character-class checks come before the
 * format check so the message points at the actual mistake (a pasted `KEY=value` line, a
 * quoted value, a line break...).
 */
function keyProblem(info: ProviderInfo, key: string): string | undefined {
  const name = `${info.label} key`;
  if (key === "") return `${name} is empty`;
  if (/\p{Cc}/u.test(key)) return `${name} contains a control character (such as a line break or tab); paste only the key`;
  if (/\s/u.test(key)) return `${name} contains whitespace; paste only the key`;
  if (/["'`]/.test(key)) return `${name} contains a quote character; paste the key without quotes`;
  if (/[=#]/.test(key)) return `${name} contains "=" or "#"; paste only the key, not a KEY=value line or a comment`;
  if (!info.pattern.test(key)) return `${name} must be ${info.format}`;
  return undefined;
}

function keySchema(info: ProviderInfo): z.ZodType<string> {
  return z
    .string({ error: `${info.label} key must be a string` })
    .trim()
    .superRefine((key, ctx) => {
      const problem = keyProblem(info, key);
      if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe(`${info.label} API key: ${info.format}`);
}

/**
 * zod schemas for each provider's key: trim, then validate. Their issues never carry the
 * input (zod 4 leaves it out unless `reportInput` is set, and our messages never embed it).
 */
export const providerKeySchemas: Readonly<Record<Provider, z.ZodType<string>>> = Object.freeze({
  gemini: keySchema(providerInfo.gemini),
  exa: keySchema(providerInfo.exa),
  copilotkit: keySchema(providerInfo.copilotkit),
});

/** Validates a raw key for `provider`: the trimmed key, or a message that does not contain it. */
export function validateProviderKey(provider: Provider, raw: unknown): Result<string, string> {
  const parsed = providerKeySchemas[provider].safeParse(raw);
  if (parsed.success) return ok(parsed.data);
  return err(parsed.error.issues[0]?.message ?? `${providerInfo[provider].label} key is invalid`);
}

/**
 * What a key may be shown as: "…" + its last 4 characters. Keys under 12 characters (never
 * valid, but possible in old rows) get just "…", so a hint never reveals most of a key.
 */
export function keyHint(key: string): string {
  return key.length >= 12 ? `…${key.slice(-4)}` : "…";
}

/**
 * A value shaped like a hint ("…" and at most 4 more characters): what a form that shows saved
 * keys as hints (ALwrity's) sends back untouched. Never a valid key of any provider.
 */
export function isHintShaped(value: string): boolean {
  return value.startsWith("…") && value.length <= 5;
}
