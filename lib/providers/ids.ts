/**
 * The providers a user can bring a key for, and nothing else: no zod, no imports, so
 * db/schema.ts (loaded by drizzle-kit and by every function that touches the database) can
 * build its check constraint from it. lib/providers/registry.ts re-exports both.
 */
export const providers = ["gemini", "exa", "copilotkit"] as const;
export type Provider = (typeof providers)[number];
