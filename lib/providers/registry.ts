/**
 * The provider registry: which providers a user can bring a key for, where each key goes in
 * a `.env` file, whether its owner may read it back, and what a well-formed key looks like.
 *
 * Validation messages say what is wrong and how to fix it, never what was sent: a
 * mistyped key is still (most of) a key.
 */
import { z } from "zod";
import { err, ok, type Result } from "../http/errors.js";
import { providers, type Provider } from "./ids.js";

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
  /** What an empty input shows: the start of a key of today's shape. */
  readonly placeholder: string;
}

export const providerInfo: Readonly<Record<Provider, ProviderInfo>> = Object.freeze({
  gemini: Object.freeze({
    id: "gemini",
    label: "Gemini",
    envVar: "GEMINI_API_KEY",
    frontendEnvVar: undefined,
    returnsValue: false,
    format:
      'the key from Google AI Studio (aistudio.google.com/apikey): an authorization key such as "AQ.Ab8R…" (53 characters) ' +
      'or an older standard key "AIza…" (39); 30-128 letters, digits, ".", "_" or "-"',
    // No fixed prefix: Google changed it once (AIza → AQ.; IQ. has been seen too) and may again.
    pattern: /^[0-9A-Za-z][0-9A-Za-z._-]{29,127}$/,
    example: "AQ.Ab8RN6ExampleExampleExampleExampleExampleExample00",
    placeholder: "AQ.Ab8R… (from AI Studio)",
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
    placeholder: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
  }),
  copilotkit: Object.freeze({
    id: "copilotkit",
    label: "CopilotKit",
    envVar: "COPILOTKIT_API_KEY",
    frontendEnvVar: "REACT_APP_COPILOTKIT_API_KEY",
    returnsValue: true,
    format: 'the public key from cloud.copilotkit.ai: "ck_pub_" followed by 20-100 letters, digits, "_" or "-"',
    pattern: /^ck_pub_[0-9A-Za-z_-]{20,100}$/,
    example: "ck_pub_exampleexampleexample0000",
    placeholder: "ck_pub_…",
  }),
});

/**
 * The two kinds of Gemini key Google issues (ai.google.dev/gemini-api/docs/api-key, read
 * 2026-12-07): `standard` keys ("AIza…", tied to a Cloud project; rejected when unrestricted
 * since 2026-06-19 and all of them from September 2026) and `authorization` keys ("AQ.…",
 * bound to a service account; the only kind AI Studio creates since 2026). Anything that is
 * not "AIza…" counts as an authorization key: Google chose the prefix and may add others.
 */
export type GeminiKeyKind = "standard" | "authorization";

export function geminiKeyKind(key: string): GeminiKeyKind {
  return key.startsWith("AIza") ? "standard" : "authorization";
}

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
  const lookalike = otherProviderShape(info.id, key);
  if (lookalike) {
    const other = providerInfo[lookalike].label;
    return `${name} looks like ${"AEIOU".includes(other.charAt(0)) ? "an" : "a"} ${other} key; paste it in the ${other} field`;
  }
  if (info.id === "gemini") {
    const foreign = foreignKeyShapes.find((shape) => key.startsWith(shape.prefix));
    if (foreign) return `${name} looks like ${foreign.what}, not a Gemini API key; ${GEMINI_KEY_SOURCE}`;
    if (key.slice(0, 4).toLowerCase() === "aiza" && !key.startsWith("AIza"))
      return `${name} starts with "${key.slice(0, 4)}": standard Gemini keys start with "AIza" (case matters)`;
    if (key.startsWith("AIza") && key.length !== STANDARD_GEMINI_KEY_CHARS) {
      return `${name} starts like a standard Gemini key ("AIza…"), which is exactly ${STANDARD_GEMINI_KEY_CHARS} characters; copy the whole key`;
    }
    if (isAuthorizationKeyShaped(key) && key.length < AUTHORIZATION_GEMINI_KEY_CHARS) {
      return `${name} starts like an AI Studio key ("${key.slice(0, 3)}…"), which has ${AUTHORIZATION_GEMINI_KEY_CHARS} characters; copy the whole key`;
    }
  }
  if (!info.pattern.test(key)) return `${name} must be ${info.format}`;
  return undefined;
}

const GEMINI_KEY_SOURCE = "create one in Google AI Studio (aistudio.google.com/apikey)";

/** Google's standard API keys ("AIza" and 35 more) are always 39 characters long. */
const STANDARD_GEMINI_KEY_CHARS = 39;

/**
 * AI Studio's authorization keys ("AQ." and 50 more) are 53 characters (d4rkmen/M5Gemini#15,
 * 2026-09-06; docs/provider-facts.md). Shorter ones of that family are refused (a half-typed
 * key saved by a form that saves as you type); longer ones are accepted up to the general
 * bound, in case Google lengthens them.
 */
const AUTHORIZATION_GEMINI_KEY_CHARS = 53;

/** Two capital letters and a dot: the prefix family of Google's authorization keys ("AQ.", "IQ."). */
function isAuthorizationKeyShaped(key: string): boolean {
  const [a, b, dot] = key;
  return dot === "." && a !== undefined && b !== undefined && a >= "A" && a <= "Z" && b >= "A" && b <= "Z";
}

/**
 * Secrets of other services that pass Gemini's charset-and-length check but are not Gemini
 * keys: pasting one is the usual mistake, and the message can say which it looks like.
 */
const foreignKeyShapes: readonly { prefix: string; what: string }[] = [
  { prefix: "sk-", what: "an OpenAI or Anthropic secret key" },
  { prefix: "sk_", what: "a Clerk or Stripe secret key" },
  { prefix: "pk_", what: "a publishable key (Clerk, Stripe)" },
  { prefix: "ghp_", what: "a GitHub token" },
  { prefix: "github_pat_", what: "a GitHub token" },
  { prefix: "xox", what: "a Slack token" },
  { prefix: "ya29.", what: "a Google OAuth access token" },
  { prefix: "GOCSPX-", what: "a Google OAuth client secret" },
  { prefix: "eyJ", what: "a JSON Web Token" },
  { prefix: "AKIA", what: "an AWS access key" },
];

/**
 * The provider whose key `key` is shaped like, when that is not `provider`: Gemini's check is
 * a charset and length (no fixed prefix), which an Exa UUID or a CopilotKit key also passes.
 */
function otherProviderShape(provider: Provider, key: string): Provider | undefined {
  if (provider !== "gemini") return undefined;
  return (["exa", "copilotkit"] as const).find((other) => providerInfo[other].pattern.test(key));
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
