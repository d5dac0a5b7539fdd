/**
 * The request and response schemas of the HTTP contract (DESIGN.md). Endpoints validate
 * with them and the OpenAPI document is generated from them, so the two cannot drift.
 */
import { z } from "zod";
import { providerKeySchemas, providers } from "./keys/providers.js";

export const providerSchema = z.enum(providers);

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

export const deleteKeyQuery = z.strictObject({ provider: providerSchema });

export const keyView = z.object({
  provider: providerSchema,
  hint: z.string(),
  updatedAt: z.iso.datetime(),
  validated: z.boolean().optional(),
  value: z.string().optional(),
});

export const modeSchema = z.enum(["development", "production"]);

export const saveKeysResponse = z.object({
  userId: z.string(),
  mode: modeSchema,
  saved: z.array(providerSchema),
  storage: z.array(z.enum(["database", "env"])),
  keys: z.array(keyView),
});
export type SaveKeysResponse = z.output<typeof saveKeysResponse>;

export const listKeysResponse = z.object({
  userId: z.string(),
  mode: modeSchema,
  keys: z.array(keyView),
  missing: z.array(providerSchema),
});
export type ListKeysResponse = z.output<typeof listKeysResponse>;

export const sessionBody = z.strictObject({
  currentStep: z.number().int().min(1).max(6),
  progress: z.number().min(0).max(100),
});
export type SessionBody = z.output<typeof sessionBody>;

export const sessionResponse = z.object({
  userId: z.string(),
  currentStep: z.number().int(),
  progress: z.number(),
  apiKeysComplete: z.boolean(),
});
export type SessionResponse = z.output<typeof sessionResponse>;

export const healthResponse = z.object({
  status: z.enum(["ok", "degraded"]),
  mode: modeSchema,
  database: z.enum(["ok", "unavailable"]),
  driver: z.enum(["pglite", "pg", "neon-http", "neon-ws"]),
  warnings: z.array(z.string()),
  version: z.string(),
});
export type HealthResponse = z.output<typeof healthResponse>;

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string(),
  requestId: z.string(),
  action: z.string().optional(),
  errors: z.array(z.object({ pointer: z.string(), message: z.string() })).optional(),
});
