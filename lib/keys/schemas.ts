/**
 * The request and response schemas of /api/onboarding/api-keys. Endpoints validate with them and the OpenAPI document is
 * generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { modeSchema, providerSchema } from "../http/schemas.js";
import { isHintShaped, providerKeySchemas, validateProviderKey } from "../providers/registry.js";
import { keyStatuses } from "./key-status.js";
import { keyRejectionReasons, type KeyRejectionReason } from "../providers/rejections.js";

export const saveKeysBody = z
  .strictObject({
    gemini: providerKeySchemas.gemini.optional(),
    exa: providerKeySchemas.exa.optional(),
    copilotkit: providerKeySchemas.copilotkit.optional(),
    validate: z.boolean().optional(),
  })
  .refine((b) => b.gemini !== undefined || b.exa !== undefined || b.copilotkit !== undefined, {
    message: "send at least one of gemini, exa, copilotkit",
    path: [],
  });
export type SaveKeysBody = z.output<typeof saveKeysBody>;

/**
 * ALwrity's one-key form (frontend/src/api/onboarding.ts `saveApiKey`): one provider per call.
 * `api_key` is a well-formed key of that provider, or the hint this service showed for the
 * saved one ("…abcd", meaning unchanged). `description` is accepted and not kept.
 */
export const oneKeyBody = z
  .strictObject({
    provider: providerSchema,
    api_key: z.string().trim().max(200).describe("The whole key, or the hint shown for the saved key (unchanged)"),
    description: z.string().max(500).optional(),
  })
  .superRefine((body, ctx) => {
    if (isHintShaped(body.api_key)) return;
    const checked = validateProviderKey(body.provider, body.api_key);
    if (!checked.ok) ctx.addIssue({ code: "custom", path: ["api_key"], message: checked.error });
  });
export type OneKeyBody = z.output<typeof oneKeyBody>;

/** Both forms of POST /api/onboarding/api-keys. */
export const saveKeysRequest = z.union([saveKeysBody, oneKeyBody]);

/** Which form a parsed body is meant as: one naming `provider` or `api_key` is the one-key form. */
export function saveKeysForm(data: unknown): z.ZodType {
  return typeof data === "object" && data !== null && ("provider" in data || "api_key" in data) ? oneKeyBody : saveKeysBody;
}

export const deleteKeyQuery = z.strictObject({ provider: providerSchema });

export const keyStatusSchema = z.enum(keyStatuses);

export const keyView = z.object({
  provider: providerSchema,
  hint: z.string(),
  updatedAt: z.iso.datetime(),
  validated: z.boolean().optional(),
  status: keyStatusSchema,
  lastUsedAt: z.iso.datetime().optional(),
  lastError: z
    .object({
      code: z.string(),
      at: z.iso.datetime(),
      reason: z
        .enum(Object.keys(keyRejectionReasons) as [KeyRejectionReason, ...KeyRejectionReason[]])
        .optional()
        .describe("why the provider refused the key"),
      action: z.string().optional().describe("what to do about it"),
    })
    .optional(),
  notices: z
    .array(z.object({ code: z.enum(["gemini-standard-key-retiring"]), message: z.string(), action: z.string() }))
    .optional()
    .describe("what to know about the key before it fails, e.g. Google retiring standard (AIza…) keys; shown until it is replaced"),
  value: z.string().optional(),
  source: z
    .enum(["env-file", "process-env", "database"])
    .optional()
    .describe(
      "where the key in force comes from: production, always the database; development, the first of the .env file, the server's environment (as started), the database: exactly the key a generation uses",
    ),
});

export const saveKeysResponse = z.object({
  userId: z.string(),
  mode: modeSchema,
  saved: z.array(providerSchema),
  /** Sent but equal to the stored key (or its hint): nothing was written. */
  unchanged: z.array(providerSchema),
  storage: z.array(z.enum(["database", "env"])),
  keys: z.array(keyView),
});
export type SaveKeysResponse = z.output<typeof saveKeysResponse>;

export const listKeysResponse = z.object({
  userId: z.string(),
  mode: modeSchema,
  keys: z.array(keyView),
  missing: z.array(providerSchema),
  /** Saved keys that must be replaced: `rejected` by their provider or `unreadable`. */
  needsReplacement: z.array(providerSchema),
});
export type ListKeysResponse = z.output<typeof listKeysResponse>;
