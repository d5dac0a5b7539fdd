/**
 * Per-user key storage. Every statement is scoped by `user_id` through the user's
 * onboarding session, so one user's request can never read, replace or delete another's
 * key: a foreign provider or id simply is not found. Saving is one statement (session
 * upsert, keys and audit rows land together or not at all), which also holds on the Neon
 * HTTP driver that has no interactive transactions.
 */
import { eq, sql, type SQL } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { apiKeys, onboardingSessions } from "../../db/schema.js";
import { decryptKey, encryptKey, keyAad, type Keyring } from "../crypto.js";
import { keyHint, providers, providerInfo, type Provider } from "./providers.js";
import type { KeyStatus } from "./key-status.js";

export interface KeyView {
  provider: Provider;
  hint: string;
  updatedAt: string;
  validated?: boolean;
  /**
   * `ok`: the last upstream call with it succeeded; `rejected`: the provider refused it (it
   * needs replacing); `unreadable`: it no longer decrypts (save it again); `unknown`: never used.
   */
  status: KeyStatus;
  /** When an upstream call last used it. */
  lastUsedAt?: string;
  /** The last failure attributable to the key, as a problem code and time (never upstream text). */
  lastError?: { code: string; at: string };
  /** Only for providers whose key is public by nature (CopilotKit's publishable key). */
  value?: string;
}

export interface SavedKey {
  provider: Provider;
  action: "save" | "replace";
}

const toIso = (value: unknown): string => new Date(value as string | Date).toISOString();

/** Encrypts and stores the given keys for one user in a single atomic statement. */
export async function saveKeys(
  database: Database,
  input: {
    userId: string;
    keys: Partial<Record<Provider, string>>;
    validated: ReadonlySet<Provider>;
    keyring: Keyring;
    requestId: string;
  },
): Promise<SavedKey[]> {
  const entries = providers.filter((p) => input.keys[p] !== undefined);
  if (entries.length === 0) return [];
  const now = new Date().toISOString();
  const values = entries.map((provider) => {
    const plaintext = input.keys[provider]!;
    const ciphertext = encryptKey(input.keyring, plaintext, keyAad(input.userId, provider));
    const validatedAt = input.validated.has(provider) ? now : null;
    // A new key starts with fresh health: `ok` when the provider just accepted it, else unknown.
    const status = validatedAt ? "ok" : null;
    return sql`(${provider}::text, ${ciphertext}::text, ${input.keyring.current.id}::text, ${keyHint(plaintext)}::text, ${validatedAt}::timestamptz, ${status}::text)`;
  });

  const rows = await database.rows<{ provider: Provider; inserted: boolean }>(sql`
    with s as (
      insert into onboarding_sessions (user_id) values (${input.userId})
      on conflict (user_id) do update set updated_at = now()
      returning id
    ),
    input (provider, key_ciphertext, key_version, key_hint, validated_at, status) as (
      values ${sql.join(values, sql`, `)}
    ),
    up as (
      insert into api_keys (session_id, provider, key_ciphertext, key_version, key_hint, validated_at, status, last_used_at)
      select s.id, i.provider, i.key_ciphertext, i.key_version, i.key_hint, i.validated_at, i.status, i.validated_at from s cross join input i
      on conflict (session_id, provider) do update set
        key_ciphertext = excluded.key_ciphertext,
        key_version = excluded.key_version,
        key_hint = excluded.key_hint,
        validated_at = excluded.validated_at,
        status = excluded.status,
        last_used_at = excluded.last_used_at,
        last_error_code = null,
        last_error_at = null,
        updated_at = now()
      returning provider, key_version, (xmax = 0) as inserted
    ),
    audit as (
      insert into key_events (user_id, provider, action, key_version, request_id)
      select ${input.userId}, up.provider, case when up.inserted then 'save' else 'replace' end, up.key_version, ${input.requestId}
      from up
    )
    select provider, inserted from up
  `);
  return rows
    .map((r) => ({ provider: r.provider, action: (r.inserted === true || (r.inserted as unknown) === "t" ? "save" : "replace") as SavedKey["action"] }))
    .sort((a, b) => providers.indexOf(a.provider) - providers.indexOf(b.provider));
}

/**
 * The caller's keys as views: hints and health only, except a provider whose key is public by
 * nature (`withValues: false` leaves that out too, e.g. for the data export). Every key is
 * test-decrypted, so one that no longer decrypts shows as `unreadable`.
 */
export async function listKeys(
  database: Database,
  userId: string,
  keyring: () => Promise<Keyring>,
  options: { withValues?: boolean } = {},
): Promise<KeyView[]> {
  const rows = await keyQueries(database).list.execute({ userId });

  const views: KeyView[] = [];
  for (const row of rows) {
    const provider = row.provider as Provider;
    const decrypted = decryptKey(await keyring(), row.ciphertext, keyAad(userId, provider));
    const view: KeyView = {
      provider,
      hint: row.hint,
      updatedAt: toIso(row.updatedAt),
      status: !decrypted.ok ? "unreadable" : row.status === "ok" || row.status === "rejected" ? row.status : "unknown",
    };
    if (row.validatedAt) view.validated = true;
    if (row.lastUsedAt) view.lastUsedAt = toIso(row.lastUsedAt);
    if (row.lastErrorCode && row.lastErrorAt) view.lastError = { code: row.lastErrorCode, at: toIso(row.lastErrorAt) };
    if (providerInfo[provider].returnsValue && decrypted.ok && options.withValues !== false) view.value = decrypted.value;
    views.push(view);
  }
  return views.sort((a, b) => providers.indexOf(a.provider) - providers.indexOf(b.provider));
}

/** Keys the user must replace: refused by their provider, or no longer decryptable. */
export function keysNeedingReplacement(views: readonly KeyView[]): Provider[] {
  return views.filter((v) => v.status === "rejected" || v.status === "unreadable").map((v) => v.provider);
}

/**
 * Deletes one of the caller's keys, with its audit row, in one statement. `deleted` is false
 * when there was none. With `countRateLimit` (SQL from lib/rate-limit.ts, returning `count` and
 * `reset`) the same statement counts the request and deletes only while `count <= limit`: one
 * round trip for the rate limit and the delete.
 */
export async function deleteKey(
  database: Database,
  input: { userId: string; provider: Provider; requestId: string; rateLimit?: { countSql: SQL; limit: number } },
): Promise<{ deleted: boolean; rateLimitRow?: { count: unknown; reset: unknown } }> {
  const limited = input.rateLimit;
  const [row] = await database.rows<{ deleted: number | string; rl_count: unknown; rl_reset: unknown }>(sql`
    with ${limited ? sql`rl as (${limited.countSql}),` : sql``}
    gone as (
      delete from api_keys k using onboarding_sessions s
      where k.session_id = s.id and s.user_id = ${input.userId} and k.provider = ${input.provider}
        ${limited ? sql`and (select count from rl) <= ${limited.limit}` : sql``}
      returning k.provider, k.key_version
    ),
    audit as (
      insert into key_events (user_id, provider, action, key_version, request_id)
      select ${input.userId}, gone.provider, 'delete', gone.key_version, ${input.requestId} from gone
    )
    select (select count(*) from gone)::int as deleted,
           ${limited ? sql`(select count from rl) as rl_count, (select reset from rl) as rl_reset` : sql`null::int as rl_count, null::int as rl_reset`}
  `);
  return {
    deleted: Number(row?.deleted ?? 0) > 0,
    ...(limited ? { rateLimitRow: { count: row?.rl_count, reset: row?.rl_reset } } : {}),
  };
}

/**
 * The two per-request key queries, built once per database. Both find the user's session as a
 * scalar subquery, `session_id = (select id from onboarding_sessions where user_id = $1)`: one
 * statement, which PostgreSQL plans in about half the CPU time of the equivalent two-table
 * join. Building a query with Drizzle costs more CPU than running it, so the SQL is kept
 * (`.prepare(...)`). With `namedStatements` (node-postgres' default, see lib/env.ts) PostgreSQL
 * also keeps their plans per connection; unnamed statements work behind any pooler. bench/breakdown.ts measures each choice.
 */
function buildKeyQueries({ db, namedStatements }: Database) {
  const name = (n: string) => (namedStatements ? n : "");
  const sessionId = () =>
    db.select({ id: onboardingSessions.id }).from(onboardingSessions).where(eq(onboardingSessions.userId, sql.placeholder("userId")));
  return {
    list: db
      .select({
        provider: apiKeys.provider,
        hint: apiKeys.keyHint,
        updatedAt: apiKeys.updatedAt,
        validatedAt: apiKeys.validatedAt,
        status: apiKeys.status,
        lastUsedAt: apiKeys.lastUsedAt,
        lastErrorCode: apiKeys.lastErrorCode,
        lastErrorAt: apiKeys.lastErrorAt,
        ciphertext: apiKeys.keyCiphertext,
      })
      .from(apiKeys)
      .where(eq(apiKeys.sessionId, sessionId()))
      .prepare(name("byok_list_keys")),
    ciphertexts: db
      // `version` identifies this save of the key, for its health (lib/keys/health.ts).
      .select({ provider: apiKeys.provider, ciphertext: apiKeys.keyCiphertext, version: sql<string>`${apiKeys.updatedAt}::text` })
      .from(apiKeys)
      .where(eq(apiKeys.sessionId, sessionId()))
      .prepare(name("byok_user_ciphertexts")),
  };
}

const builtKeyQueries = new WeakMap<Database["db"], ReturnType<typeof buildKeyQueries>>();

function keyQueries(database: Database): ReturnType<typeof buildKeyQueries> {
  let queries = builtKeyQueries.get(database.db);
  if (!queries) {
    queries = buildKeyQueries(database);
    builtKeyQueries.set(database.db, queries);
  }
  return queries;
}

/**
 * The stored ciphertexts of one user as SQL (`provider`, `ciphertext`, `version`): a CTE of
 * the generation's first statement (lib/blog/start.ts), which reads the keys in the same
 * round trip as its rate limit and budget reservation.
 */
export function userCiphertextsSql(userId: string): SQL {
  return sql`select k.provider, k.key_ciphertext as ciphertext, k.updated_at::text as version from api_keys k
    where k.session_id = (select s.id from onboarding_sessions s where s.user_id = ${userId})`;
}

/** The stored ciphertexts of one user, with their versions, in ONE query (the production key path). */
export async function loadCiphertexts(
  database: Database,
  userId: string,
): Promise<{ provider: Provider; ciphertext: string; version: string }[]> {
  const rows = await keyQueries(database).ciphertexts.execute({ userId });
  return rows.map((r) => ({ provider: r.provider as Provider, ciphertext: r.ciphertext, version: String(r.version) }));
}
