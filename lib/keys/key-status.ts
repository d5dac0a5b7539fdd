/**
 * The health a saved key shows (lib/keys/health.ts): no imports, so lib/schemas.ts (loaded by
 * every function) can build its enum from it without loading the health SQL.
 */
export const keyStatuses = ["ok", "rejected", "unreadable", "unknown"] as const;
export type KeyStatus = (typeof keyStatuses)[number];
