/**
 * A user's whole account here: deleting everything held about them (DELETE /api/me, and
 * Clerk's `user.deleted` webhook) and exporting it (GET /api/me/export).
 *
 * Deletion is ONE statement: keys, onboarding session, usage, rate-limit rows, the budget's
 * cap choice and the key audit rows go together, and one `account-delete` audit event (no key
 * material: user id, request id, time) is left in their place, so the trail says the deletion
 * happened and nothing else. What stays until the month ends is the month's spend (and open
 * reservations) on the `budgets` row, under the user id: the operator's caps
 * (BUDGET_DEFAULT_USD, BUDGET_MAX_USD) hold for an account deleted and created again
 * (docs/security.md "Deleting and exporting an account"). A webhook delivery's id is recorded in the same statement; a replay of
 * that id finds it and changes nothing.
 */
import { getOnboardingState } from "../onboarding/session.js";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import type { Deps } from "../platform/runtime.js";
import { budgetStatus } from "../generation/budget.js";
import { accountKeyDeletionSql, listKeyEvents, listKeys } from "../keys/store.js";
import { providers } from "../providers/registry.js";
import { envMirror } from "../keys/env-mirror.js";
import { roundUsd } from "../generation/usage.js";
import type { AccountExport } from "./schemas.js";

/** The current UTC month on the database's clock, as budgets.period_start holds it. */
const THIS_MONTH = sql`(date_trunc('month', now() at time zone 'UTC'))::date`;

/** How long processed webhook ids are kept (Clerk/Svix retries a delivery for about 3 days). */
export const WEBHOOK_ID_RETENTION_DAYS = 30;

export interface AccountDeletion {
  /** False when `delivery` was already processed: nothing was changed. */
  processed: boolean;
  /** Rows removed, per kind (counts only). */
  removed: { keys: number; sessions: number; usageEvents: number; rateLimits: number; budgets: number; auditEvents: number };
}

/**
 * Deletes every row held about `userId` (see the file comment). With `delivery` (a Clerk
 * webhook), only if that delivery id was never processed.
 */
export async function deleteAccountData(
  database: Database,
  input: { userId: string; requestId: string; serverRequestId?: string; delivery?: { id: string; type: string } },
): Promise<AccountDeletion> {
  const { userId, delivery } = input;
  const gate = delivery
    ? sql`
      delivery as (
        insert into webhook_deliveries (id, event_type) values (${delivery.id}, ${delivery.type})
        on conflict (id) do nothing
        returning id
      ),
      pruned as (
        delete from webhook_deliveries where received_at < now() - make_interval(days => ${WEBHOOK_ID_RETENTION_DAYS}::int)
      ),
      gate as (select exists (select 1 from delivery) as go),`
    : sql`gate as (select true as go),`;
  const keyRows = accountKeyDeletionSql({
    userId,
    requestId: input.requestId,
    serverRequestId: input.serverRequestId,
    when: sql`(select go from gate)`,
  });
  const [row] = await database.rows<
    Record<"processed" | "keys" | "sessions" | "usage_events" | "rate_limits" | "budgets" | "audit_events", unknown>
  >(sql`
    with ${gate}
    keys as (${keyRows.keys}),
    sessions as (delete from onboarding_sessions s using gate where gate.go and s.user_id = ${userId} returning s.id),
    usage as (delete from usage_events u using gate where gate.go and u.user_id = ${userId} returning u.id),
    limits as (delete from rate_limits r using gate where gate.go and r.user_id = ${userId} returning r.bucket),
    -- The gateway's audit rows of the user's calls (lib/gateway): who called, which route and model.
    calls as (delete from gateway_calls g using gate where gate.go and g.user_id = ${userId}),
    -- This month's spend outlives the account (the operator's caps must hold for a re-created
    -- account): the row keeps only the month, the spend and open reservations; the user's cap
    -- choice goes. A row with nothing to keep is deleted, as are rows whose month is over and
    -- that hold no choice and no reservation, whoever they belong to (they carry nothing).
    kept as (
      update budgets b set user_set = false, monthly_usd = null, updated_at = now()
      from gate
      where gate.go and b.user_id = ${userId} and b.period_start = ${THIS_MONTH}
        and (b.spent_usd > 0 or b.reservations <> '[]'::jsonb)
      returning b.user_id
    ),
    budget as (
      delete from budgets b using gate
      where gate.go and b.user_id = ${userId} and b.user_id not in (select user_id from kept)
      returning b.user_id
    ),
    stale as (
      delete from budgets b using gate
      where gate.go and b.user_id <> ${userId} and not b.user_set and b.period_start < ${THIS_MONTH} and b.reservations = '[]'::jsonb
    ),
    audit as (${keyRows.audit}),
    tombstone as (${keyRows.tombstone})
    select (select go from gate) as processed,
           (select count(*)::int from keys) as keys, (select count(*)::int from sessions) as sessions,
           (select count(*)::int from usage) as usage_events, (select count(*)::int from limits) as rate_limits,
           (select count(*)::int from budget) as budgets, (select count(*)::int from audit) as audit_events
  `);
  const processed = row?.processed === true || row?.processed === "t";
  return {
    processed,
    removed: {
      keys: Number(row?.keys ?? 0),
      sessions: Number(row?.sessions ?? 0),
      usageEvents: Number(row?.usage_events ?? 0),
      rateLimits: Number(row?.rate_limits ?? 0),
      budgets: Number(row?.budgets ?? 0),
      auditEvents: Number(row?.audit_events ?? 0),
    },
  };
}

/**
 * DELETE /api/me: the caller's data, and in development the keys in the .env files too (they
 * are the caller's copies there, as when deleting one key).
 */
export async function deleteOwnAccount(deps: Deps, userId: string): Promise<AccountDeletion> {
  const result = await deleteAccountData(await deps.database(), {
    userId,
    requestId: deps.requestId,
    serverRequestId: deps.serverRequestId,
  });
  await envMirror(deps).remove(providers);
  deps.logger.info("account data deleted", { userId, via: "api", ...result.removed });
  return result;
}

const iso = (value: unknown): string => new Date(value as string | Date).toISOString();
const isoOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : iso(value));

/**
 * Everything held about `userId`, as JSON: onboarding session, key hints and health, budget,
 * every usage row, every audit event, rate-limit windows, the gateway's audit rows. Never a key or a ciphertext (not
 * even the publishable CopilotKit key the key list returns).
 */
export async function exportAccountData(deps: Deps, userId: string): Promise<AccountExport> {
  const database = await deps.database();
  const [sessions, usage, auditEvents, limits, calls] = await Promise.all([
    database.rows<{ current_step: number; progress: number; created_at: unknown; updated_at: unknown }>(
      sql`select current_step, progress, created_at, updated_at from onboarding_sessions where user_id = ${userId}`,
    ),
    database.rows<{
      provider: string;
      operation: string;
      model: string | null;
      input_tokens: number;
      output_tokens: number;
      cost_usd: string | number;
      request_id: string | null;
      server_request_id: string | null;
      created_at: unknown;
    }>(sql`
      select provider, operation, model, input_tokens, output_tokens, cost_usd, request_id, server_request_id, created_at
      from usage_events where user_id = ${userId} order by created_at, id`),
    listKeyEvents(database, userId),
    database.rows<{ bucket: string; window_start: unknown; count: number }>(
      sql`select bucket, window_start, count from rate_limits where user_id = ${userId} order by bucket`,
    ),
    database.rows<{
      caller: string;
      provider: string;
      operation: string;
      model: string | null;
      outcome: string;
      upstream_status: number | null;
      cost_usd: string | number | null;
      request_id: string | null;
      created_at: unknown;
      finished_at: unknown;
    }>(sql`
      select caller, provider, operation, model, outcome, upstream_status, cost_usd, request_id, created_at, finished_at
      from gateway_calls where user_id = ${userId} order by created_at, id`),
  ]);
  const keys = await listKeys(database, userId, () => deps.keyring(), { withValues: false });
  const budget = await budgetStatus(database, deps.config, userId);
  const { steps } = await getOnboardingState(database, userId);
  const session = sessions[0];
  return {
    userId,
    exportedAt: new Date().toISOString(),
    session: session
      ? {
          currentStep: Number(session.current_step),
          progress: Number(session.progress),
          createdAt: iso(session.created_at),
          updatedAt: iso(session.updated_at),
        }
      : null,
    keys,
    budget,
    usage: usage.map((u) => ({
      provider: u.provider,
      operation: u.operation,
      model: u.model,
      inputTokens: Number(u.input_tokens),
      outputTokens: Number(u.output_tokens),
      costUsd: roundUsd(Number(u.cost_usd)),
      requestId: u.request_id,
      serverRequestId: u.server_request_id,
      createdAt: iso(u.created_at),
    })),
    auditEvents,
    rateLimits: limits.map((l) => ({ bucket: l.bucket, windowStart: isoOrNull(l.window_start) ?? "", count: Number(l.count) })),
    gatewayCalls: calls.map((c) => ({
      caller: c.caller,
      provider: c.provider,
      operation: c.operation,
      model: c.model,
      outcome: c.outcome,
      upstreamStatus: c.upstream_status === null ? null : Number(c.upstream_status),
      costUsd: c.cost_usd === null ? null : roundUsd(Number(c.cost_usd)),
      requestId: c.request_id,
      createdAt: iso(c.created_at),
      finishedAt: isoOrNull(c.finished_at),
    })),
    onboardingSteps: steps,
  };
}
