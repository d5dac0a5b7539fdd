/**
 * Drizzle schema. camelCase in TypeScript, snake_case columns, explicit constraint names.
 * Key material lives only in `api_keys.key_ciphertext`, encrypted with AES-256-GCM and bound
 * to `user_id|provider` (lib/platform/crypto.ts); the audit and usage tables never hold any.
 */
import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  date,
  foreignKey,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  real,
  serial,
  smallint,
  text,
  timestamp,
  unique,
} from "drizzle-orm/pg-core";
import { providers } from "../lib/providers/ids.js";

/**
 * `'a', 'b'` for an `in (...)` list inside DDL, where bind parameters are not allowed. Only
 * for constants defined in code (such as `providers`), never for input.
 */
function sqlStringList(values: readonly string[]) {
  return sql.raw(values.map((value) => `'${value.replaceAll("'", "''")}'`).join(", "));
}

const createdAt = () => timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();

export const onboardingSessions = pgTable(
  "onboarding_sessions",
  {
    id: serial("id").primaryKey(),
    userId: text("user_id").notNull(),
    currentStep: integer("current_step").notNull().default(1),
    progress: real("progress").notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique("onboarding_sessions_user_id_unique").on(t.userId),
    check("onboarding_sessions_current_step_check", sql`${t.currentStep} between 1 and 6`),
    check("onboarding_sessions_progress_check", sql`${t.progress} between 0 and 100`),
  ],
);

export const apiKeys = pgTable(
  "api_keys",
  {
    id: serial("id").primaryKey(),
    sessionId: integer("session_id").notNull(),
    provider: text("provider").notNull(),
    /** `keyId:nonce:ciphertext+tag`, additional authenticated data `user_id|provider`. */
    keyCiphertext: text("key_ciphertext").notNull(),
    /** Id of the encryption key that sealed this row (what keys:reencrypt looks for). */
    keyVersion: text("key_version").notNull(),
    keyHint: text("key_hint").notNull(),
    validatedAt: timestamp("validated_at", { withTimezone: true, mode: "date" }),
    /**
     * Key health (lib/keys/health.ts), written after upstream calls with the key: the last
     * verdict (`ok`, `rejected`; null: never used), when it was last used, and the last
     * failure as a problem code and time. Never upstream text. Reset when the key is replaced.
     */
    status: text("status"),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true, mode: "date" }),
    lastErrorCode: text("last_error_code"),
    lastErrorAt: timestamp("last_error_at", { withTimezone: true, mode: "date" }),
    /** Why the provider refused the key, as a code of lib/providers/rejections.ts (never upstream text). */
    lastErrorReason: text("last_error_reason"),
    /**
     * `keyId:HMAC-SHA256` of the key, keyed by a key derived from that encryption key and bound to
     * `user_id|provider` (lib/platform/crypto.ts keyFingerprint): lets one statement tell a save equal to
     * the stored key (a no-op) from a change without decrypting. Never the key; null in rows saved
     * before it existed (their next save is a change).
     */
    keyFingerprint: text("key_fingerprint"),
    /** The same fingerprint of the key without its last character: a one-character typing edit is recognised. */
    keyPrefixFingerprint: text("key_prefix_fingerprint"),
    /**
     * The fingerprint (as `key_fingerprint`) of the key this one replaced; null after a first save.
     * With `key_edit_turns` it tells typing from ping-pong (lib/keys/store.ts saveKeys): whether
     * the last edit added or removed a character, and whether a save goes back to it.
     */
    keyPreviousFingerprint: text("key_previous_fingerprint"),
    /**
     * How the stored key came from the previous one, for typing runs (lib/keys/store.ts saveKeys):
     * null: saved as a write (a new key, another key, an edit after the typing window or beside
     * another key's); 0: a typing edit in the direction of the one before (or a run's first);
     * 1: a typing edit that turned back (a backspace after typing, typing after a backspace);
     * 2: turned back once too often (ping-pong), so counted as a write.
     */
    keyEditTurns: smallint("key_edit_turns"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check("api_keys_status_check", sql`${t.status} in ('ok', 'rejected')`),
    check("api_keys_edit_turns_check", sql`${t.keyEditTurns} between 0 and 2`),
    foreignKey({ name: "api_keys_session_id_fk", columns: [t.sessionId], foreignColumns: [onboardingSessions.id] }).onDelete("cascade"),
    unique("api_keys_session_provider_unique").on(t.sessionId, t.provider),
    check("api_keys_provider_check", sql`${t.provider} in (${sqlStringList(providers)})`),
  ],
);

/**
 * What a frontend's onboarding step carried when it was completed (ALwrity's wizard: website,
 * research preferences, persona...), kept per user and step and given back as sent. Never keys:
 * `api_keys` in a step's data go to `api_keys` through the key service and are left out here.
 */
export const onboardingSteps = pgTable(
  "onboarding_steps",
  {
    sessionId: integer("session_id").notNull(),
    step: integer("step").notNull(),
    data: jsonb("data").notNull(),
    completedAt: timestamp("completed_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: "onboarding_steps_pk", columns: [t.sessionId, t.step] }),
    foreignKey({ name: "onboarding_steps_session_id_fk", columns: [t.sessionId], foreignColumns: [onboardingSessions.id] }).onDelete(
      "cascade",
    ),
    check("onboarding_steps_step_check", sql`${t.step} between 1 and 6`),
  ],
);

export const keyEvents = pgTable(
  "key_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    userId: text("user_id").notNull(),
    /** Null for events about the whole account (`account-delete`). */
    provider: text("provider"),
    action: text("action").notNull(),
    keyVersion: text("key_version"),
    /** The client's x-request-id when it sent a usable one, else the server's own. */
    requestId: text("request_id"),
    /** The id the server made for the request, whatever the client sent (null in rows older than this column). */
    serverRequestId: text("server_request_id"),
    createdAt: createdAt(),
  },
  (t) => [
    index("key_events_user_created_idx").on(t.userId, t.createdAt),
    check("key_events_action_check", sql`${t.action} in ('save', 'replace', 'delete', 'reencrypt', 'account-delete')`),
  ],
);

export const usageEvents = pgTable(
  "usage_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    userId: text("user_id").notNull(),
    provider: text("provider").notNull(),
    operation: text("operation").notNull(),
    model: text("model"),
    inputTokens: integer("input_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    costUsd: numeric("cost_usd", { precision: 14, scale: 8 }).notNull().default("0"),
    requestId: text("request_id"),
    serverRequestId: text("server_request_id"),
    /** The call was cut short (client left, stream failed): billed for what the provider processed. */
    partial: boolean("partial").notNull().default(false),
    /** Some token counts are our estimate (~4 characters a token), not the provider's report. */
    tokensEstimated: boolean("tokens_estimated").notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [index("usage_events_user_created_idx").on(t.userId, t.createdAt)],
);

/** Fixed-window counters shared by every serverless instance (lib/platform/rate-limit.ts). */
export const rateLimits = pgTable(
  "rate_limits",
  {
    userId: text("user_id").notNull(),
    bucket: text("bucket").notNull(),
    windowStart: timestamp("window_start", { withTimezone: true, mode: "date" }).notNull(),
    count: integer("count").notNull(),
  },
  (t) => [primaryKey({ name: "rate_limits_pk", columns: [t.userId, t.bucket] })],
);

/**
 * One row per user with spending state (lib/generation/budget.ts). Everything the atomic reservation
 * checks lives in this one row, so one conditional upsert decides: the cap the user chose,
 * the spend settled in `period_start`'s UTC month, and the open reservations (worst-case
 * costs of generations in flight, each `{id, usd, exp}`; expired ones no longer count).
 */
export const budgets = pgTable(
  "budgets",
  {
    userId: text("user_id").primaryKey(),
    /** Whether the user chose `monthly_usd` (null then means "no cap"); otherwise BUDGET_DEFAULT_USD applies. */
    userSet: boolean("user_set").notNull().default(false),
    monthlyUsd: numeric("monthly_usd", { precision: 14, scale: 8 }),
    /** First day (UTC) of the month `spent_usd` belongs to. */
    periodStart: date("period_start", { mode: "string" }).notNull(),
    spentUsd: numeric("spent_usd", { precision: 14, scale: 8 }).notNull().default("0"),
    reservations: jsonb("reservations").notNull().default(sql`'[]'::jsonb`),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [check("budgets_monthly_usd_check", sql`${t.monthlyUsd} >= 0`)],
);

/** Clerk webhook deliveries already processed (their `svix-id`), so a replay does nothing twice. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    eventType: text("event_type").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [index("webhook_deliveries_received_idx").on(t.receivedAt)],
);

/**
 * Credentials an operator's backend calls the gateway with (lib/gateway/credentials.ts), each
 * scoped to the gateway and acting for the user it names per call. Only a SHA-256 hash of the
 * secret is stored, never the secret; `revoked_at` in the future is a rotation's overlap.
 */
export const serviceCredentials = pgTable(
  "service_credentials",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    /** hex SHA-256 of the whole credential (`bks_<id>_<secret>`). */
    secretHash: text("secret_hash").notNull(),
    scope: text("scope").notNull().default("gateway"),
    createdAt: createdAt(),
    /** From this instant on the credential is refused (null: never). */
    revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [check("service_credentials_scope_check", sql`${t.scope} in ('gateway')`)],
);

/**
 * The gateway's audit trail (lib/gateway/start.ts, lib/gateway/proxy.ts): one row per call,
 * who called for whom, which route and model, and how it ended. Never a body, never a key.
 */
export const gatewayCalls = pgTable(
  "gateway_calls",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    userId: text("user_id").notNull(),
    /** `session` (the user's Clerk session), `dev-user`, or `service:<credential id>`. */
    caller: text("caller").notNull(),
    provider: text("provider").notNull(),
    /** The provider operation, e.g. `streamGenerateContent`, `search`. */
    operation: text("operation").notNull(),
    model: text("model"),
    requestId: text("request_id"),
    /** `started`, then `ok`, `upstream-error`, `cut-short`; or the refusal (`rate-limited`, `missing-provider-key`, `budget-exceeded`). */
    outcome: text("outcome").notNull(),
    upstreamStatus: integer("upstream_status"),
    costUsd: numeric("cost_usd", { precision: 14, scale: 8 }),
    createdAt: createdAt(),
    finishedAt: timestamp("finished_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [index("gateway_calls_user_created_idx").on(t.userId, t.createdAt)],
);

export type OnboardingSession = typeof onboardingSessions.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type NewApiKeyRow = typeof apiKeys.$inferInsert;
export type KeyEvent = typeof keyEvents.$inferInsert;
export type UsageEvent = typeof usageEvents.$inferInsert;
