/**
 * Monthly spending caps that hold under concurrency and across instances.
 *
 * Before any upstream call, a generation reserves its worst-case cost (lib/generation/generate.ts
 * `generationWorstCaseUsd`) with ONE conditional upsert on the user's `budgets` row; after
 * the calls, ONE statement settles it: the reservation is replaced by the real cost, the
 * usage rows are written and the keys' health recorded. A failed or abandoned generation
 * settles too (what completed is charged, the rest released), and a reservation whose
 * instance crashed stops counting at its `exp`.
 *
 * Why everything lives in one row: under READ COMMITTED a statement reads other tables as of
 * its start, so a check that summed a separate reservations table could miss a reservation
 * committed a moment earlier by another instance. `INSERT … ON CONFLICT DO UPDATE … WHERE`
 * locks the user's row and evaluates its WHERE on the row's latest version, so when every
 * number the check needs (cap, spend this month, open reservations) is in that row, two
 * concurrent reservations are serialised by the row lock and the second sees the first.
 * PostgreSQL, PGlite and both Neon drivers run it as one statement, no transaction needed.
 *
 * Months are UTC months on the database's clock (instances' clocks may disagree).
 */
import { sql, type SQL } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import type { Config } from "../platform/env.js";
import { AppError } from "../http/errors.js";
import type { KeyHealthUpdate } from "../keys/health.js";
import { keyHealthUpdateSql } from "../keys/store.js";
import { roundUsd, type UsageRecord } from "./usage.js";

/**
 * How long a reservation counts when its generation never settles (the instance crashed or
 * was frozen). Longer than any generation runs: Vercel and Lambda stop generation at 300 s.
 */
export const RESERVATION_TTL_SECONDS = 15 * 60;

export interface BudgetStatus {
  userId: string;
  /** The cap in force this month (null: none). */
  monthlyUsd: number | null;
  /** Whether the user chose the cap (`user`) or it is the operator's default (`default`). */
  source: "user" | "default";
  /** The operator's maximum (BUDGET_MAX_USD); null when there is none. */
  maxMonthlyUsd: number | null;
  /** Settled spend this UTC month. */
  spentUsd: number;
  /** Worst-case costs of generations in flight. */
  reservedUsd: number;
  /** `monthlyUsd - spentUsd - reservedUsd`, at least 0; null without a cap. */
  remainingUsd: number | null;
  /** When the month (and the spend) resets: the first instant of next month, UTC. */
  resetsAt: string;
}

type BudgetConfig = Pick<Config, "budget">;

/** The UTC month on the database's clock, as a date and as its first instant. */
const MONTH = sql`(date_trunc('month', now() at time zone 'UTC'))::date`;
const MONTH_START = sql`(date_trunc('month', now() at time zone 'UTC') at time zone 'UTC')`;

/** USD as a numeric literal parameter (8 decimals, the columns' scale), or null. */
export const usd = (n: number | null) => (n === null ? null : n.toFixed(8));

/** The reservations of a row that still count (not expired), as jsonb. */
const liveReservations = (column: SQL) =>
  sql`(select coalesce(jsonb_agg(r), '[]'::jsonb) from jsonb_array_elements(${column}) r where (r->>'exp')::timestamptz > now())`;
/** Their total. */
const liveReservedUsd = (column: SQL) =>
  sql`(select coalesce(sum((r->>'usd')::numeric), 0) from jsonb_array_elements(${column}) r where (r->>'exp')::timestamptz > now())`;

/** The cap in force for a row (`least` ignores nulls: no cap chosen and no maximum → null). */
const capOf = (config: BudgetConfig) =>
  sql`least(case when b.user_set then b.monthly_usd else ${usd(config.budget.defaultMonthlyUsd)}::numeric end, ${usd(config.budget.maxMonthlyUsd)}::numeric)`;
const spentThisMonth = sql`(case when b.period_start = ${MONTH} then b.spent_usd else 0 end)`;
/** Settled spend this month of a user without a row yet: their usage rows (from before budgets existed). */
const usageThisMonth = (userId: string) =>
  sql`(select coalesce(sum(cost_usd), 0) from usage_events where user_id = ${userId} and created_at >= ${MONTH_START})`;

/** One row of `budgetStatusSql`, as drivers return it. */
export interface BudgetStatusRow {
  user_set: boolean | null;
  cap: string | number | null;
  spent: string | number;
  reserved: string | number;
  resets_on: string;
}

/**
 * The select behind `budgetStatus`: one row (user_set, cap, spent, reserved, resets_on). Also
 * a subquery of GET /api/usage's one statement.
 */
export function budgetStatusSql(config: BudgetConfig, userId: string, source: SQL = sql`budgets`): SQL {
  return sql`
    select b.user_set, ${capOf(config)} as cap,
           case when b.user_id is null then ${usageThisMonth(userId)} else ${spentThisMonth} end as spent,
           case when b.user_id is null then 0 else ${liveReservedUsd(sql`b.reservations`)} end as reserved,
           to_char(${MONTH} + interval '1 month', 'YYYY-MM-DD') as resets_on
    from (select 1) as one left join ${source} b on b.user_id = ${userId}`;
}

/** A `budgetStatusSql` row as the caller's BudgetStatus. */
export function toBudgetStatus(config: BudgetConfig, userId: string, row: BudgetStatusRow | undefined): BudgetStatus {
  if (!row) throw new Error("budget status query returned no row");
  const monthlyUsd = row.cap === null ? null : roundUsd(Number(row.cap));
  const spentUsd = roundUsd(Number(row.spent));
  const reservedUsd = roundUsd(Number(row.reserved));
  return {
    userId,
    monthlyUsd,
    source: row.user_set === true || (row.user_set as unknown) === "t" ? "user" : "default",
    maxMonthlyUsd: config.budget.maxMonthlyUsd,
    spentUsd,
    reservedUsd,
    remainingUsd: monthlyUsd === null ? null : Math.max(0, roundUsd(monthlyUsd - spentUsd - reservedUsd)),
    resetsAt: `${row.resets_on}T00:00:00.000Z`,
  };
}

/** What the caller's budget looks like now. One query. */
export async function budgetStatus(database: Database, config: BudgetConfig, userId: string): Promise<BudgetStatus> {
  const [row] = await database.rows<BudgetStatusRow>(budgetStatusSql(config, userId));
  return toBudgetStatus(config, userId, row);
}

/**
 * Sets the caller's monthly cap (`null`: none). Above BUDGET_MAX_USD, or `null` while there
 * is a maximum: 400 invalid-request, nothing changes.
 */
export async function setMonthlyCap(
  database: Database,
  config: BudgetConfig,
  userId: string,
  monthlyUsd: number | null,
): Promise<BudgetStatus> {
  const max = config.budget.maxMonthlyUsd;
  if (max !== null && (monthlyUsd === null || monthlyUsd > max)) {
    throw new AppError("invalid-request", {
      detail:
        monthlyUsd === null
          ? `this service requires a monthly cap of at most ${max} USD; send a number`
          : `the monthly cap may be at most ${max} USD on this service`,
      errors: [{ pointer: "/monthlyUsd", message: monthlyUsd === null ? `a cap is required (at most ${max})` : `must be at most ${max}` }],
    });
  }
  // One statement: the upsert, and the status computed from the row it returns (a CTE's
  // changes are invisible to the rest of its statement except through RETURNING).
  const [row] = await database.rows<BudgetStatusRow>(sql`
    with up as (
      insert into budgets as b (user_id, user_set, monthly_usd, period_start, spent_usd)
      values (${userId}, true, ${usd(monthlyUsd)}::numeric, ${MONTH}, ${usageThisMonth(userId)})
      on conflict (user_id) do update set user_set = true, monthly_usd = excluded.monthly_usd, updated_at = now()
      returning b.user_id, b.user_set, b.monthly_usd, b.period_start, b.spent_usd, b.reservations
    )
    ${budgetStatusSql(config, userId, sql`up`)}
  `);
  return toBudgetStatus(config, userId, row);
}

export interface Reservation {
  id: string;
  amountUsd: number;
}

/**
 * The conditional upsert that reserves `amount` (a numeric SQL expression) against the
 * caller's cap (see the file comment), returning one row when it fits and none when it does
 * not. A statement alone, or a CTE of a bigger one: the generation's first statement
 * (lib/generation/start.ts) reserves in the same round trip as its rate limit and key read, and
 * `when` (SQL, boolean) lets it reserve only when those passed.
 */
export function reservationSql(
  config: BudgetConfig,
  input: { userId: string; id: string; amount: SQL; ttlSeconds?: number; when?: SQL },
): SQL {
  const ttl = input.ttlSeconds ?? RESERVATION_TTL_SECONDS;
  const defaultCap = sql`least(${usd(config.budget.defaultMonthlyUsd)}::numeric, ${usd(config.budget.maxMonthlyUsd)}::numeric)`;
  // On conflict the amount is read back from the proposed row (`excluded`): it is stated once.
  const proposed = sql`(excluded.reservations->0->>'usd')::numeric`;
  return sql`
    insert into budgets as b (user_id, user_set, monthly_usd, period_start, spent_usd, reservations)
    select ${input.userId}, false, null, ${MONTH}, m.spent,
           jsonb_build_array(jsonb_build_object('id', ${input.id}::text, 'usd', m.amount, 'exp', now() + make_interval(secs => ${ttl}::int)))
    -- The usage sum is only needed for a user without a row (their first metered call): with a
    -- row, CASE skips it, so a call never reads the month's usage rows (they grow with every call).
    from (select exists (select 1 from budgets where user_id = ${input.userId}) as has_row,
                 (${input.amount})::numeric as amount) e,
         lateral (select e.amount, case when e.has_row then 0 else ${usageThisMonth(input.userId)} end as spent) m
    -- A user without a row (as this statement sees the table) gets one only if the amount fits
    -- the default cap; with a row, ON CONFLICT below decides on its latest version.
    where ${input.when ?? sql`true`}
      and (e.has_row
        or ${defaultCap} is null
        or m.spent + m.amount <= ${defaultCap})
    on conflict (user_id) do update set
      period_start = ${MONTH},
      spent_usd = ${spentThisMonth},
      reservations = ${liveReservations(sql`b.reservations`)} || excluded.reservations,
      updated_at = now()
    where ${capOf(config)} is null
       or ${spentThisMonth} + ${liveReservedUsd(sql`b.reservations`)} + ${proposed} <= ${capOf(config)}
    returning 1 as reserved`;
}

/** The 402 a generation (or another metered call: `subject`) gets when its worst case does not fit. */
export function budgetExceeded(status: BudgetStatus, estimateUsd: number, subject = "this generation"): AppError {
  const left = status.remainingUsd ?? 0;
  return new AppError("budget-exceeded", {
    detail:
      `${subject} could cost up to ${estimateUsd.toFixed(4)} USD, and ${left.toFixed(4)} USD of the ` +
      `${(status.monthlyUsd ?? 0).toFixed(2)} USD monthly cap is left until ${status.resetsAt} (UTC)`,
    action: "PUT /api/usage/budget to raise the cap, or wait until the month resets",
    extra: {
      monthlyUsd: status.monthlyUsd ?? 0,
      spentUsd: status.spentUsd,
      reservedUsd: status.reservedUsd,
      remainingUsd: left,
      estimateUsd: roundUsd(estimateUsd),
      resetsAt: status.resetsAt,
    },
  });
}

export interface Settlement {
  userId: string;
  reservationId: string;
  /** What the budget is charged: the real cost of the calls that completed. */
  chargeUsd: number;
  usage: UsageRecord[];
  health: KeyHealthUpdate[];
  /** Another data-modifying statement run in the same round trip (the gateway's audit row, lib/gateway/proxy.ts). */
  also?: SQL;
}

/**
 * Settles a generation in ONE statement: the reservation is dropped and `chargeUsd` added to
 * this month's spend, the usage rows are inserted, the keys' health recorded. Usage is only
 * written while the budget row exists: an account deleted meanwhile stays deleted.
 */
export async function settleGeneration(database: Database, settlement: Settlement): Promise<void> {
  const { userId } = settlement;
  const usageRows = settlement.usage.map(
    (r) =>
      sql`(${r.userId}::text, ${r.provider}::text, ${r.operation}::text, ${r.model ?? null}::text, ${r.inputTokens ?? 0}::int, ${r.outputTokens ?? 0}::int, ${r.costUsd.toFixed(8)}::numeric, ${r.requestId}::text, ${r.serverRequestId ?? null}::text, ${r.partial ?? false}::boolean, ${r.tokensEstimated ?? false}::boolean)`,
  );
  const health = keyHealthUpdateSql(userId, settlement.health);
  await database.rows(sql`
    with settled as (
      update budgets b set
        spent_usd = ${spentThisMonth} + ${usd(settlement.chargeUsd)}::numeric,
        period_start = ${MONTH},
        reservations = (select coalesce(jsonb_agg(r), '[]'::jsonb) from jsonb_array_elements(b.reservations) r
                        where r->>'id' <> ${settlement.reservationId} and (r->>'exp')::timestamptz > now()),
        updated_at = now()
      where b.user_id = ${userId}
      returning b.user_id
    )
    ${
      usageRows.length > 0
        ? sql`, usage as (
      insert into usage_events (user_id, provider, operation, model, input_tokens, output_tokens, cost_usd, request_id, server_request_id, partial, tokens_estimated)
      select v.* from (values ${sql.join(usageRows, sql`, `)}) as v (user_id, provider, operation, model, input_tokens, output_tokens, cost_usd, request_id, server_request_id, partial, tokens_estimated)
      where exists (select 1 from settled)
    )`
        : sql``
    }
    ${health ? sql`, health as (${health})` : sql``}
    ${settlement.also ? sql`, also as (${settlement.also})` : sql``}
    select count(*)::int as settled from settled
  `);
}
