/**
 * A gateway call's one database round trip before the upstream call: ONE statement checks a
 * service credential (when the caller has one), counts the call against the caller's
 * `gateway` rate limit, reads the user's stored key for the provider, reserves the call's
 * worst case against their monthly cap (lib/generation/budget.ts `reservationSql`, as the
 * generation's first statement does) and writes the call's audit row. Each step acts only
 * when the ones before it passed, so a refused call counts, reserves and reads nothing it
 * should not. The refusals, in order: 401 (credential), 429 rate-limited, 409
 * missing-provider-key, 402 budget-exceeded; the 402 (the budget as it stands) and a stored
 * key that no longer decrypts (the reservation given back) cost one more round trip, on
 * those error paths only.
 */
import { randomUUID } from "node:crypto";
import { sql, type SQL } from "drizzle-orm";
import { AppError } from "../http/errors.js";
import type { Deps } from "../platform/runtime.js";
import { limitFor, rateLimitCountSql, rateLimitState, type RateLimitState } from "../platform/rate-limit.js";
import { budgetExceeded, budgetStatus, reservationSql, settleGeneration, usd, type Reservation } from "../generation/budget.js";
import { truthy, userCiphertextsSql, type CiphertextRow } from "../keys/store.js";
import { decodeKeyRows, developmentKeys, usesDevelopmentKeys, type KeySource } from "../keys/resolver.js";
import { callerLabel, type Caller } from "./caller.js";
import { credentialValidSql } from "./credentials.js";
import { withNamedStatements } from "./statements.js";

type StartDeps = Pick<Deps, "config" | "logger" | "database" | "keyring" | "once" | "requestId">;

export type GatewayProvider = "gemini" | "exa";

export interface GatewayStartInput {
  caller: Caller;
  provider: GatewayProvider;
  operation: string;
  model: string | null;
  /** The call's worst-case cost (lib/gateway/pricing.ts); 0: a free call, nothing reserved. */
  amountUsd: number;
}

export interface GatewayStart {
  /** The user's key for the provider: injected into the upstream request, never logged. */
  key: string;
  keySource: KeySource;
  /** The stored key's version (production), for its health. */
  version: string | undefined;
  reservation: Reservation | null;
  rateLimit: RateLimitState | null;
  /** The audit row of this call (`gateway_calls.id`). */
  auditId: string;
}

interface StartRow extends CiphertextRow {
  cred_ok: boolean | string | null;
  rl_count: number | string | null;
  rl_reset: number | string | null;
  reserved: number | string;
  audit_id: number | string | null;
}

/** The statement above, and what it decided. Throws the refusals as AppErrors. */
export async function startGatewayCall(deps: StartDeps, input: GatewayStartInput): Promise<GatewayStart> {
  const { config, logger } = deps;
  const { caller, provider } = input;
  const { userId } = caller;
  const limit = limitFor(config.rateLimits, "gateway");
  const reservationId = randomUUID();
  const reserving = input.amountUsd > 0;

  // Only the developer (DEV_USER_ID) runs on the development keys; any other signed-in user, or
  // a service credential acting for one, runs on that user's own saved keys, as in production.
  const dev = usesDevelopmentKeys(config, userId) ? await developmentKeys(deps) : undefined;
  const devKey = dev?.keys[provider];

  const ctes: SQL[] = [];
  let credOk: SQL = sql`true`;
  if (caller.kind === "service") {
    ctes.push(sql`cred as (select ${credentialValidSql(caller.credential)} as ok)`);
    credOk = sql`(select ok from cred)`;
  }
  let withinLimit: SQL = sql`true`;
  if (limit > 0) {
    ctes.push(sql`rl as (${rateLimitCountSql(userId, "gateway", caller.kind === "service" ? credOk : undefined)})`);
    withinLimit = sql`coalesce((select count from rl) <= ${limit}, false)`;
  }
  let keyStored: SQL;
  if (dev) {
    keyStored = devKey ? sql`true` : sql`false`;
  } else {
    ctes.push(sql`k as (select * from (${userCiphertextsSql(userId)}) x where x.provider = ${provider})`);
    keyStored = sql`exists (select 1 from k)`;
  }
  if (reserving) {
    const when = sql`${credOk} and ${withinLimit} and ${keyStored}`;
    ctes.push(sql`res as (${reservationSql(config, { userId, id: reservationId, amount: sql`${usd(input.amountUsd)}::numeric`, when })})`);
  }
  const outcome = sql`case when not ${withinLimit} then 'rate-limited' when not ${keyStored} then 'missing-provider-key'
    ${reserving ? sql`when not exists (select 1 from res) then 'budget-exceeded'` : sql``} else 'started' end`;
  // A refused call is finished as it is recorded; a started one when it settles (lib/gateway/proxy.ts).
  ctes.push(sql`audit as (
    insert into gateway_calls (user_id, caller, provider, operation, model, request_id, outcome, finished_at)
    select ${userId}, ${callerLabel(caller)}, ${provider}, ${input.operation}, ${input.model}, ${deps.requestId}, o.outcome,
           case when o.outcome = 'started' then null else now() end
    from (select ${outcome} as outcome) o
    where ${credOk}
    returning id)`);

  const database = await deps.database();
  const rows = await withNamedStatements(database).rows<StartRow>(sql`
    with ${sql.join(ctes, sql`, `)}
    select ${credOk} as cred_ok,
           ${limit > 0 ? sql`(select count from rl) as rl_count, (select reset from rl) as rl_reset` : sql`null::int as rl_count, null::int as rl_reset`},
           ${reserving ? sql`(select count(*) from res)::int` : sql`0`} as reserved,
           (select id from audit) as audit_id,
           ${dev ? sql`null::text as provider, null::text as ciphertext, null::text as version` : sql`k.provider, k.ciphertext, k.version`}
    from (select 1) as one ${dev ? sql`` : sql`left join k on true`}
  `);
  const first = rows[0];
  if (!first || !truthy(first.cred_ok)) {
    logger.warn("gateway call refused: service credential unknown or revoked", {
      credential: caller.kind === "service" ? caller.credential.id : null,
    });
    throw new AppError("unauthorized", {
      detail: "the service credential is unknown, revoked or not scoped to the gateway",
      action: "issue a credential with npm run gateway:credentials -- issue",
      headers: { "www-authenticate": 'Bearer realm="byok-functions"' },
    });
  }
  const auditId = String(first.audit_id);
  const rateLimit =
    limit > 0 ? rateLimitState(deps, { userId, bucket: "gateway", limit, row: { count: first.rl_count, reset: first.rl_reset } }) : null;
  const reserved = Number(first.reserved) > 0;
  const reservation = reserved ? { id: reservationId, amountUsd: input.amountUsd } : null;

  let key: string | undefined;
  let version: string | undefined;
  let keySource: KeySource;
  if (dev) {
    key = devKey;
    version = dev.versions[provider];
    keySource = "env";
  } else {
    const decoded = await decodeKeyRows(deps, userId, rows, new Set([provider]));
    key = decoded.keys[provider];
    version = decoded.versions[provider];
    keySource = "database";
    if (!key && decoded.unreadable.includes(provider)) {
      // Stored but no longer decrypts: give back what was reserved (error path only).
      await settleGeneration(database, {
        userId,
        reservationId,
        chargeUsd: 0,
        usage: [],
        health: [],
        also: sql`update gateway_calls set outcome = 'missing-provider-key', finished_at = now() where id = ${auditId}`,
      });
    }
  }
  deps.logger.redactAlso(key);
  if (!key) {
    throw new AppError("missing-provider-key", {
      detail: dev ? `no ${provider} key in the .env file; save one through onboarding` : `no ${provider} key saved for this user`,
      action: "POST /api/onboarding/api-keys",
      extra: { provider },
    });
  }
  if (reserving && !reservation) {
    const status = await budgetStatus(database, config, userId);
    logger.info("gateway call refused: monthly budget", { userId, estimateUsd: input.amountUsd, remainingUsd: status.remainingUsd });
    throw budgetExceeded(status, input.amountUsd, "this call");
  }
  return { key, keySource, version, reservation, rateLimit, auditId };
}
