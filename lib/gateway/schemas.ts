/**
 * The gateway's wire shapes: the provider paths it serves (the allow-list), and the parts of
 * the providers' request bodies it checks before anything is reserved or sent. Bodies are
 * otherwise the providers' own: what is not known to be safe to meter is refused (fail
 * closed): a Gemini `fileData` part, `cachedContent` or a tool other than function
 * declarations (their tokens or fees are not bounded by the body), more than one candidate,
 * Exa `subpages` or a streamed answer.
 */
import { z } from "zod";

/** The Gemini methods served under models/{model}:{method}. */
export const geminiMethods = ["generateContent", "streamGenerateContent", "countTokens"] as const;
export type GeminiMethod = (typeof geminiMethods)[number];

/** The Exa endpoints served. */
export const exaOperations = ["search", "findSimilar", "contents", "answer"] as const;
export type ExaOperation = (typeof exaOperations)[number];

/** Longest model name taken (Google's are about 30 characters). */
const MAX_MODEL_CHARS = 100;

/** `gemini-3.5-flash:streamGenerateContent` → its model and method, or undefined. A scan, no regex. */
export function splitGeminiAction(action: string): { model: string; method: GeminiMethod } | undefined {
  const colon = action.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const model = action.slice(0, colon);
  const method = action.slice(colon + 1);
  if (model.length > MAX_MODEL_CHARS || !(geminiMethods as readonly string[]).includes(method)) return undefined;
  for (const ch of model) {
    const ok = (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || ch === "-" || ch === ".";
    if (!ok) return undefined;
  }
  return { model, method: method as GeminiMethod };
}

export const geminiActionParams = z.strictObject({
  action: z
    .string()
    .max(MAX_MODEL_CHARS + 30)
    .refine((value) => splitGeminiAction(value) !== undefined, `must be {model}:{method} with method one of ${geminiMethods.join(", ")}`)
    .describe("`{model}:{method}`, e.g. `gemini-3.5-flash:streamGenerateContent`"),
});

/** What Vercel's prefix rewrite (vercel.json `/api/gateway/:path*`) appends to the query: ignored. */
export const rewritePath = z.string().max(4_096).optional().describe("added by Vercel's rewrite to the gateway's function; ignored");

export const streamQuery = z.strictObject({
  alt: z.literal("sse").optional().describe("`sse` for streamGenerateContent (what the SDKs send)"),
  path: rewritePath,
});

const part = z.strictObject({
  text: z.string().optional(),
  inlineData: z.strictObject({ mimeType: z.string().max(200), data: z.string() }).optional(),
  functionCall: z.looseObject({}).optional(),
  functionResponse: z.looseObject({}).optional(),
  thought: z.boolean().optional(),
  thoughtSignature: z.string().optional(),
});
const content = z.strictObject({ role: z.string().max(20).optional(), parts: z.array(part).max(1_000) });

/** GenerateContentRequest as the gateway takes it (see the file comment). */
export const geminiGenerateBody = z.strictObject({
  contents: z.array(content).min(1).max(1_000),
  systemInstruction: z.union([z.string(), content]).optional(),
  generationConfig: z
    .looseObject({
      maxOutputTokens: z.number().int().min(1).optional(),
      candidateCount: z.literal(1).optional(),
    })
    .optional(),
  safetySettings: z.array(z.looseObject({})).max(20).optional(),
  tools: z
    .array(z.strictObject({ functionDeclarations: z.array(z.looseObject({})).max(512) }))
    .max(20)
    .optional(),
  toolConfig: z.looseObject({}).optional(),
});
export type GeminiGenerateBody = z.output<typeof geminiGenerateBody>;

/** CountTokensRequest: `contents`, or a whole `generateContentRequest` (what @google/generative-ai sends). Free at Google. */
export const geminiCountTokensBody = z.union([
  z.strictObject({ contents: z.array(content).max(1_000) }),
  z.strictObject({ generateContentRequest: z.looseObject({ contents: z.array(content).max(1_000) }) }),
]);

/** What the route itself parses: any JSON object; each method's schema above is applied by the handler. */
export const geminiBody = z.looseObject({}).describe("Gemini's GenerateContentRequest, or CountTokensRequest for countTokens");

const numResults = z.number().int().min(1).max(100).optional();
const contentsOptions = z.union([z.literal(false), z.looseObject({ subpages: z.literal(0).optional() })]);
const url = z.string().min(1).max(2_048);

export const exaBodies = {
  search: z.looseObject({
    query: z.string().min(1).max(2_000),
    numResults,
    contents: contentsOptions.optional(),
    subpages: z.literal(0).optional(),
    stream: z.literal(false).optional(),
  }),
  findSimilar: z.looseObject({ url, numResults, contents: contentsOptions.optional(), subpages: z.literal(0).optional() }),
  contents: z
    .looseObject({
      urls: z.array(url).min(1).max(100).optional(),
      ids: z.array(url).min(1).max(100).optional(),
      subpages: z.literal(0).optional(),
    })
    .refine((body) => (body.urls?.length ?? 0) + (body.ids?.length ?? 0) > 0, "send urls (or ids)"),
  answer: z.looseObject({ query: z.string().min(1).max(2_000), stream: z.literal(false).optional() }),
} as const satisfies Record<ExaOperation, z.ZodType>;

/** A provider's own answer, passed through as it came (errors with the key scrubbed out). */
export const providerAnswer = { type: "object", description: "The provider's own answer, as it sent it." } as const;
