/**
 * A generation's first and only database round trip before any upstream call (issue 13):
 * ONE statement counts the request against the rate limit, reads the caller's stored keys
 * and reserves the generation's worst-case cost against their monthly cap. On Neon each
 * round trip costs milliseconds (tens across regions); three sequential statements cost
 * three times that before the first byte.
 *
 * The reservation is made only when the request is within its rate limit and a Gemini key
 * is stored, so a refused request reserves nothing. Its amount depends on whether research
 * will run (an Exa key is stored and the request did not turn research off), which the
 * statement decides from the keys it reads. The order of refusals is the route's: 429
 * rate-limited, 409 missing-provider-key, 402 budget-exceeded. Each refusal that needs more
 * (the budget as it stands for the 402, releasing the reservation when the stored Gemini key
 * no longer decrypts) costs its extra round trip on that error path only.
 *
 * Data-modifying CTEs share one snapshot and each touches its own table (rate_limits,
 * budgets), so combining them changes nothing of lib/generation/budget.ts's concurrency argument: the
 * budget upsert still decides on the user's row's latest version under its row lock.
 */
import { randomUUID } from "node:crypto";
import { sql, type SQL } from "drizzle-orm";
import type { Deps } from "../platform/runtime.js";
import { limitFor, rateLimitCountSql, rateLimitState, type RateLimitState } from "../platform/rate-limit.js";
import { budgetStatus, reservationSql, settleGeneration, usd, type BudgetStatus, type Reservation } from "./budget.js";
import { userCiphertextsSql, type CiphertextRow } from "../keys/store.js";
import { decodeKeyRows, developmentKeys, usesDevelopmentKeys, type UserKeys } from "../keys/resolver.js";
import type { Provider } from "../providers/registry.js";

type StartDeps = Pick<Deps, "config" | "logger" | "database" | "keyring" | "once">;

export type GenerationStart =
  | { ok: true; keys: UserKeys; rateLimit: RateLimitState | null; reservation: Reservation; research: boolean }
  | { ok: false; reason: "missing-gemini"; keys: UserKeys; rateLimit: RateLimitState | null }
  | { ok: false; reason: "budget"; keys: UserKeys; rateLimit: RateLimitState | null; status: BudgetStatus; amountUsd: number };

/** The providers a generation uses: only their keys are decrypted. */
const GENERATION_PROVIDERS: ReadonlySet<Provider> = new Set(["gemini", "exa"]);

/** One row per stored key (the key columns of `userCiphertextsSql`, null without any), with the counts repeated. */
interface StartRow extends CiphertextRow {
  rl_count: number | string | null;
  rl_reset: number | string | null;
  reserved: number | string;
}

/**
 * Rate limit, keys and budget reservation in one round trip (see the file comment).
 * `estimate(research)` is the worst-case USD cost with or without research. Throws 429
 * rate-limited; other refusals are results, for the caller to phrase.
 */
export async function startGeneration(
  deps: StartDeps,
  input: { userId: string; researchRequested: boolean; estimate: (research: boolean) => number },
): Promise<GenerationStart> {
  const { config } = deps;
  const { userId } = input;
  const limit = limitFor(config.rateLimits, "generate");
  const id = randomUUID();
  const withResearch = input.researchRequested ? input.estimate(true) : input.estimate(false);
  const withoutResearch = input.estimate(false);

  // Development reads its keys from the .env file (no database): the statement only counts
  // and reserves, with research decided here.
  const dev = usesDevelopmentKeys(config, userId) ? await developmentKeys(deps) : undefined;

  const ctes: SQL[] = [];
  const conditions: SQL[] = [];
  if (limit > 0) {
    ctes.push(sql`rl as (${rateLimitCountSql(userId, "generate")})`);
    conditions.push(sql`(select count from rl) <= ${limit}`);
  }
  let amount: SQL;
  let amountOf: (researchUsed: boolean) => number;
  if (dev) {
    const research = input.researchRequested && Boolean(dev.keys.exa);
    const usdAmount = research ? withResearch : withoutResearch;
    amount = sql`${usd(usdAmount)}::numeric`;
    amountOf = () => usdAmount;
    // No Gemini key in .env: nothing is reserved (the 409 follows).
    conditions.push(dev.keys.gemini ? sql`true` : sql`false`);
  } else {
    ctes.push(sql`k as (${userCiphertextsSql(userId)})`);
    conditions.push(sql`exists (select 1 from k where k.provider = 'gemini')`);
    amount = sql`case when exists (select 1 from k where k.provider = 'exa') then ${usd(withResearch)}::numeric else ${usd(withoutResearch)}::numeric end`;
    amountOf = (researchUsed) => (researchUsed ? withResearch : withoutResearch);
  }
  ctes.push(sql`res as (${reservationSql(config, { userId, id, amount, when: sql.join(conditions, sql` and `) })})`);

  const database = await deps.database();
  const rows = await database.rows<StartRow>(sql`
    with ${sql.join(ctes, sql`, `)}
    select ${limit > 0 ? sql`rl.count as rl_count, rl.reset as rl_reset` : sql`null::int as rl_count, null::int as rl_reset`},
           (select count(*) from res)::int as reserved,
           ${dev ? sql`null::text as provider, null::text as ciphertext, null::text as version` : sql`k.provider, k.ciphertext, k.version`}
    from ${limit > 0 ? sql`rl` : sql`(select 1) as one`} ${dev ? sql`` : sql`left join k on true`}
  `);

  const first = rows[0];
  const rateLimit =
    limit > 0 ? rateLimitState(deps, { userId, bucket: "generate", limit, row: { count: first?.rl_count, reset: first?.rl_reset } }) : null;
  const reserved = Number(first?.reserved ?? 0) > 0;

  let keys: UserKeys;
  if (dev) {
    keys = dev;
  } else {
    // The key columns are decoded where every read of stored keys is (lib/keys/resolver.ts).
    keys = await decodeKeyRows(deps, userId, rows, GENERATION_PROVIDERS);
    const storedExa = rows.some((r) => r.provider === "exa" && r.ciphertext !== null);
    if (reserved && !keys.keys.gemini) {
      // The stored Gemini key no longer decrypts: give the reservation back (error path only).
      await settleGeneration(database, { userId, reservationId: id, chargeUsd: 0, usage: [], health: [] });
      return { ok: false, reason: "missing-gemini", keys, rateLimit };
    }
    if (!keys.keys.gemini) return { ok: false, reason: "missing-gemini", keys, rateLimit };
    const amountUsd = amountOf(input.researchRequested && storedExa);
    if (!reserved) return { ok: false, reason: "budget", keys, rateLimit, status: await budgetStatus(database, config, userId), amountUsd };
    // Research runs only with a readable Exa key; the reservation (made for a stored one) stays the bound.
    return { ok: true, keys, rateLimit, reservation: { id, amountUsd }, research: input.researchRequested && Boolean(keys.keys.exa) };
  }
  if (!keys.keys.gemini) return { ok: false, reason: "missing-gemini", keys, rateLimit };
  const research = input.researchRequested && Boolean(keys.keys.exa);
  const amountUsd = amountOf(research);
  if (!reserved) return { ok: false, reason: "budget", keys, rateLimit, status: await budgetStatus(database, config, userId), amountUsd };
  return { ok: true, keys, rateLimit, reservation: { id, amountUsd }, research };
}
