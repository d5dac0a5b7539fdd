/**
 * Per-user key storage. Every statement is scoped by `user_id` through the user's
 * onboarding session, so one user's request can never read, replace or delete another's
 * key: a foreign provider or id simply is not found. Saving is one statement (session
 * upsert, keys and audit rows land together or not at all), which also holds on the Neon
 * HTTP driver that has no interactive transactions.
 */
import { eq, sql, type AnyColumn, type SQL } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { apiKeys, onboardingSessions } from "../../db/schema.js";
import { encryptKey, keyAad, keyFingerprint, keyIdPattern, type Keyring } from "../platform/crypto.js";
import { provideSealedKeyCensus } from "../platform/dev/keyring.js";
import { WINDOW_SECONDS } from "../platform/rate-limit.js";
import { keyHint, providers, providerInfo, type Provider } from "../providers/registry.js";
import type { KeyStatus } from "./key-status.js";
import type { KeyNotice } from "./notices.js";
import { storedKeyChecks } from "./decrypt-memo.js";
import { healthChange, type KeyHealthUpdate } from "./health.js";
import { isKeyRejectionReason, keyRejectionReasons, type KeyRejectionReason } from "../providers/rejections.js";

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
  lastError?: { code: string; at: string; reason?: KeyRejectionReason; action?: string };
  /** What the user should know about this key before it fails (lib/keys/notices.ts). */
  notices?: KeyNotice[];
  /** Only for providers whose key is public by nature (CopilotKit's publishable key). */
  value?: string;
  /** Where the key in force comes from (lib/keys/service.ts; development: lib/keys/resolver.ts). */
  source?: "env-file" | "process-env" | "database";
}

export interface SavedKey {
  provider: Provider;
  action: "save" | "replace";
}

/** A rate-limit window as the save statement left it. */
export interface KeyWriteWindow {
  bucket: "key-writes" | "key-edits";
  /** Requests counted in this window (this one included when it was counted). */
  count: number;
  resetSeconds: number;
  /** Whether this request was counted (it changed something). */
  counted: boolean;
}

export interface SaveKeysOutcome {
  saved: SavedKey[];
  /** Providers whose sent key equals the stored one: nothing written, no audit row, not counted. */
  unchanged: Provider[];
  /** The window counted (or, when nothing changed, the current key-writes window); null when limits are off. */
  window: KeyWriteWindow | null;
  /** True when the limit refused the save: nothing was written. */
  limited: boolean;
  /** The user's keys after the save, as the list shows them (from the same statement). */
  keys: KeyView[];
}

/**
 * A typing run: one-character edits of one key, each within this many seconds of that key's
 * last write (lib/keys/store.ts saveKeys). ALwrity auto-saves on every keystroke; a pause this
 * long ends the run, and the next change is a write.
 */
export const TYPING_WINDOW_SECONDS = 10;

const toIso = (value: unknown): string => new Date(value as string | Date).toISOString();
/**
 * A timestamp as the API writes it. The list query formats its timestamps in SQL (`isoTimestamp`),
 * so they arrive as the final strings (no Date parsed by the driver, none formatted here); the
 * save statement's JSON rows still carry PostgreSQL's own format and go through `toIso`.
 */
const isoOf = (value: unknown): string =>
  typeof value === "string" && value.length === 24 && value.charCodeAt(23) === 90 /* Z */ ? value : toIso(value);
/** `to_char` in UTC with milliseconds, truncated like JavaScript's Date: exactly `Date#toISOString()`. */
const isoTimestamp = (column: SQL | AnyColumn) =>
  sql<string | null>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
/** A boolean as drivers return it (`true`, or PostgreSQL's text `t`/`true`). */
export const truthy = (value: unknown) => value === true || value === "t" || value === "true";

/**
 * Encrypts and stores the given keys for one user in a single atomic statement that also
 * decides what changed and counts the rate limit:
 *
 * - a key whose fingerprint (lib/platform/crypto.ts keyFingerprint) equals the stored one is
 *   unchanged: no write, no audit row, not counted;
 * - a change counts one request in `key-writes`, or in `key-edits` when it is a typing edit:
 *   the only key the request changes, one character added at its end or removed from it (its
 *   prefix fingerprint equals the stored key's fingerprint, or the other way round), within
 *   TYPING_WINDOW_SECONDS of that key's last write, and not ping-pong. Each key keeps the
 *   fingerprint of the value it replaced and how it came from it (`key_edit_turns`), so an edit
 *   that turns back (a backspace after typing, typing after a backspace) is typing once; turning
 *   back again right away is ping-pong (K+c, K, K+c...) and counts as a write, except the
 *   correction "abc, ab, abd" (back, then a character other than the one deleted);
 * - past the limit of the bucket counted, nothing is written (`limited`);
 * - every change writes an audit row, except a typing edit that continues a run (the stored key
 *   itself came from a typing edit): a run leaves one row, for its first edit.
 *
 * `limits` null: no limit (nothing counted).
 */
export async function saveKeys(
  database: Database,
  input: {
    userId: string;
    keys: Partial<Record<Provider, string>>;
    validated: ReadonlySet<Provider>;
    keyring: Keyring;
    requestId: string;
    /** The id the server made for the request (stored beside the client's requestId). */
    serverRequestId?: string;
    limits?: { keyWrites: number; keyEdits: number } | null;
  },
): Promise<SaveKeysOutcome> {
  const entries = providers.filter((p) => input.keys[p] !== undefined);
  if (entries.length === 0) return { saved: [], unchanged: [], window: null, limited: false, keys: [] };
  const now = new Date().toISOString();
  const { userId, keyring } = input;
  const values = entries.map((provider) => {
    const plaintext = input.keys[provider]!;
    const ciphertext = encryptKey(keyring, plaintext, keyAad(userId, provider));
    const fingerprint = keyFingerprint(keyring, userId, provider, plaintext);
    const prefixFingerprint = keyFingerprint(keyring, userId, provider, plaintext.slice(0, -1));
    const validatedAt = input.validated.has(provider) ? now : null;
    // A new key starts with fresh health: `ok` when the provider just accepted it, else unknown.
    const status = validatedAt ? "ok" : null;
    return sql`(${provider}::text, ${ciphertext}::text, ${keyring.current.id}::text, ${keyHint(plaintext)}::text, ${validatedAt}::timestamptz, ${status}::text, ${fingerprint}::text, ${prefixFingerprint}::text)`;
  });
  const limits = input.limits ?? null;
  const counting = limits !== null;
  const window = sql.raw(String(WINDOW_SECONDS));
  const typingWindow = sql.raw(String(TYPING_WINDOW_SECONDS));

  const rows = await database.rows<{
    kind: "saved" | "unchanged" | "window" | "peek" | "list";
    provider: Provider | null;
    inserted: unknown;
    count: number | string | null;
    reset: number | string | null;
    bucket: string | null;
    ok: unknown;
    keys: unknown;
  }>(sql`
    with input (provider, key_ciphertext, key_version, key_hint, validated_at, status, fp, fp_prefix) as (
      values ${sql.join(values, sql`, `)}
    ),
    cur as (
      select k.provider, k.key_fingerprint, k.key_prefix_fingerprint, k.key_previous_fingerprint, k.key_edit_turns,
        k.key_hint, k.updated_at, k.validated_at, k.status, k.last_used_at, k.last_error_code, k.last_error_at, k.last_error_reason, k.key_ciphertext
      from api_keys k
      where k.session_id = (select id from onboarding_sessions where user_id = ${userId})
    ),
    -- Each changed key: step, +1 one character added, -1 one removed, within the typing window
    -- (null: anything else); was_step, the same for the stored key's own change when that was
    -- one (null: it was a write); back, whether it goes back to the value before the stored one.
    shaped as (
      select i.*, c.key_edit_turns as was_turns,
        case when c.updated_at > now() - interval '${typingWindow} seconds' then
          case when i.fp_prefix = c.key_fingerprint then 1 when i.fp = c.key_prefix_fingerprint then -1 end
        end as step,
        case when c.key_edit_turns is not null then
          case when c.key_prefix_fingerprint = c.key_previous_fingerprint then 1 else -1 end
        end as was_step,
        coalesce(i.fp = c.key_previous_fingerprint, false) as back
      from input i left join cur c on c.provider = i.provider
      where c.key_fingerprint is distinct from i.fp
    ),
    -- turns (stored as key_edit_turns): null, a write; 0, typing on; 1, typing that turned back
    -- (once, or a correction: back, then another character); 2, ping-pong, a write.
    changed as (
      select s.*, case
          when s.step is null or (select count(*) from shaped) > 1 then null
          when s.was_step is null or s.step = s.was_step then 0
          when s.was_turns = 0 or (s.was_turns = 1 and not s.back) then 1
          else 2
        end as turns
      from shaped s
    ),
    kind as (
      select case when bool_and(coalesce(turns < 2, false)) then 'key-edits' else 'key-writes' end as bucket from changed having count(*) > 0
    ),
    rl as (
      insert into rate_limits as r (user_id, bucket, window_start, count)
      select ${userId}, kind.bucket, date_trunc('minute', now()), 1 from kind where ${counting}
      on conflict (user_id, bucket) do update set
        count = case when r.window_start = excluded.window_start then r.count + 1 else 1 end,
        window_start = excluded.window_start
      returning bucket, count, ceil(extract(epoch from (window_start + interval '${window} seconds' - now())))::int as reset
    ),
    allowed as (
      select not exists (
        select 1 from rl where rl.count > case rl.bucket when 'key-edits' then ${limits?.keyEdits ?? 0}::int else ${limits?.keyWrites ?? 0}::int end
      ) as ok
    ),
    s as (
      insert into onboarding_sessions (user_id)
      select ${userId} from allowed where allowed.ok and exists (select 1 from changed)
      on conflict (user_id) do update set updated_at = now()
      returning id
    ),
    up as (
      insert into api_keys (session_id, provider, key_ciphertext, key_version, key_hint, validated_at, status, last_used_at, key_fingerprint, key_prefix_fingerprint, key_edit_turns)
      select s.id, c.provider, c.key_ciphertext, c.key_version, c.key_hint, c.validated_at, c.status, c.validated_at, c.fp, c.fp_prefix, c.turns
      from s cross join changed c
      on conflict (session_id, provider) do update set
        key_ciphertext = excluded.key_ciphertext,
        key_version = excluded.key_version,
        key_hint = excluded.key_hint,
        validated_at = excluded.validated_at,
        status = excluded.status,
        last_used_at = excluded.last_used_at,
        last_error_code = null,
        last_error_at = null,
        last_error_reason = null,
        key_fingerprint = excluded.key_fingerprint,
        key_prefix_fingerprint = excluded.key_prefix_fingerprint,
        key_previous_fingerprint = api_keys.key_fingerprint,
        key_edit_turns = excluded.key_edit_turns,
        updated_at = now()
      -- A concurrent save of the same key (ALwrity sends each key three ways at once) is no change either.
      where api_keys.key_fingerprint is distinct from excluded.key_fingerprint
      returning provider, key_version, (xmax = 0) as inserted,
        key_hint, updated_at, validated_at, status, last_used_at, last_error_code, last_error_at, last_error_reason, key_ciphertext
    ),
    -- The list after the save: what this statement wrote, and the other stored keys as they were.
    after as (
      select provider, key_hint, updated_at, validated_at, status, last_used_at, last_error_code, last_error_at, last_error_reason, key_ciphertext from up
      union all
      select provider, key_hint, updated_at, validated_at, status, last_used_at, last_error_code, last_error_at, last_error_reason, key_ciphertext
      from cur where cur.provider not in (select provider from up)
    ),
    audit as (
      insert into key_events (user_id, provider, action, key_version, request_id, server_request_id)
      select ${userId}, up.provider, case when up.inserted then 'save' else 'replace' end, up.key_version, ${input.requestId}, ${input.serverRequestId ?? null}::text
      from up join changed c on c.provider = up.provider
      -- A typing edit continuing a run (the stored key came from one too): its run has its row.
      where not coalesce(c.turns < 2 and c.was_turns < 2, false)
    )
    select 'saved' as kind, up.provider, up.inserted, null::int as count, null::int as reset, null::text as bucket, null::boolean as ok, null::json as keys from up
    union all
    select 'unchanged', i.provider, null, null, null, null, null, null from input i where i.provider not in (select provider from changed)
    union all
    select 'window', null, null, rl.count, rl.reset, rl.bucket, (select ok from allowed), null from rl
    union all
    select 'peek', null, null, r.count, ceil(extract(epoch from (r.window_start + interval '${window} seconds' - now())))::int, r.bucket, null, null
    from rate_limits r
    where ${counting} and r.user_id = ${userId} and r.bucket = 'key-writes' and r.window_start = date_trunc('minute', now())
    union all
    select 'list', null, null, null, null, null, null, coalesce((
      select json_agg(json_build_object(
        'provider', a.provider, 'hint', a.key_hint, 'updatedAt', a.updated_at, 'validatedAt', a.validated_at, 'status', a.status,
        'lastUsedAt', a.last_used_at, 'lastErrorCode', a.last_error_code, 'lastErrorAt', a.last_error_at, 'lastErrorReason', a.last_error_reason,
        'ciphertext', a.key_ciphertext))
      from after a
    ), '[]'::json)
  `);

  const order = (a: { provider: Provider }, b: { provider: Provider }) => providers.indexOf(a.provider) - providers.indexOf(b.provider);
  const saved = rows
    .filter((r) => r.kind === "saved")
    .map((r) => ({ provider: r.provider!, action: (truthy(r.inserted) ? "save" : "replace") as SavedKey["action"] }))
    .sort(order);
  // A key counted as changed but beaten by a concurrent identical save is unchanged as well.
  const unchanged = entries.filter((p) => !saved.some((x) => x.provider === p));
  const counted = rows.find((r) => r.kind === "window");
  const peek = rows.find((r) => r.kind === "peek");
  let windowState: KeyWriteWindow | null = null;
  if (counted) {
    windowState = {
      bucket: counted.bucket as KeyWriteWindow["bucket"],
      count: Number(counted.count),
      resetSeconds: Math.max(1, Number(counted.reset)),
      counted: true,
    };
  } else if (counting) {
    const reset = peek ? Number(peek.reset) : WINDOW_SECONDS - new Date().getUTCSeconds();
    windowState = { bucket: "key-writes", count: peek ? Number(peek.count) : 0, resetSeconds: Math.max(1, reset), counted: false };
  }
  const limited = counted !== undefined && !truthy(counted.ok);
  const listed = rows.find((r) => r.kind === "list")?.keys;
  const keyRows = (typeof listed === "string" ? JSON.parse(listed) : (listed ?? [])) as KeyRow[];
  return {
    saved: limited ? [] : saved,
    unchanged: limited ? [] : unchanged,
    window: windowState,
    limited,
    keys: keyViews(keyRows, userId, keyring),
  };
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
  return keyViews(rows, userId, rows.length > 0 ? await keyring() : undefined, options);
}

/** A stored key row as the list reads it. */
interface KeyRow {
  provider: string;
  hint: string;
  updatedAt: unknown;
  validatedAt: unknown;
  status: string | null;
  lastUsedAt: unknown;
  lastErrorCode: string | null;
  lastErrorAt: unknown;
  lastErrorReason: string | null;
  ciphertext: string;
}

/** Rows as views, each key test-decrypted (one that no longer decrypts is `unreadable`). */
function keyViews(
  rows: readonly KeyRow[],
  userId: string,
  keyring: Keyring | undefined,
  options: { withValues?: boolean } = {},
): KeyView[] {
  const views: KeyView[] = [];
  for (const row of rows) {
    const provider = row.provider as Provider;
    // Test-decrypted once per instance and ciphertext (lib/keys/decrypt-memo.ts says why that is safe);
    // a value the list returns is decrypted every time.
    const withValue = providerInfo[provider].returnsValue && options.withValues !== false;
    const checked = storedKeyChecks.check(keyring!, userId, provider, row.ciphertext, withValue);
    const view: KeyView = {
      provider,
      hint: row.hint,
      updatedAt: isoOf(row.updatedAt),
      status: !checked.decrypts ? "unreadable" : row.status === "ok" || row.status === "rejected" ? row.status : "unknown",
    };
    if (row.validatedAt) view.validated = true;
    if (row.lastUsedAt) view.lastUsedAt = isoOf(row.lastUsedAt);
    if (row.lastErrorCode && row.lastErrorAt) {
      view.lastError = { code: row.lastErrorCode, at: isoOf(row.lastErrorAt) };
      if (isKeyRejectionReason(row.lastErrorReason)) {
        view.lastError.reason = row.lastErrorReason;
        view.lastError.action = keyRejectionReasons[row.lastErrorReason];
      }
    }
    if (checked.notices.length > 0) view.notices = checked.notices;
    if (checked.value !== undefined) view.value = checked.value;
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
 * when there was none. With `countRateLimit` (SQL from lib/platform/rate-limit.ts, returning `count` and
 * `reset`) the same statement counts the request and deletes only while `count <= limit`: one
 * round trip for the rate limit and the delete.
 */
export async function deleteKey(
  database: Database,
  input: { userId: string; provider: Provider; requestId: string; serverRequestId?: string; rateLimit?: { countSql: SQL; limit: number } },
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
      insert into key_events (user_id, provider, action, key_version, request_id, server_request_id)
      select ${input.userId}, gone.provider, 'delete', gone.key_version, ${input.requestId}, ${input.serverRequestId ?? null}::text from gone
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
 * The key list query, built once per database. It finds the user's session as a scalar
 * subquery, `session_id = (select id from onboarding_sessions where user_id = $1)`: one
 * statement, which PostgreSQL plans in about half the CPU time of the equivalent two-table
 * join. Building a query with Drizzle costs more CPU than running it, so the SQL is kept
 * (`.prepare(...)`). With `namedStatements` (node-postgres' default, see lib/platform/env.ts) PostgreSQL
 * also keeps its plan per connection; unnamed statements work behind any pooler. bench/breakdown.ts measures each choice.
 */
function buildKeyQueries({ db, namedStatements }: Database) {
  const name = (n: string) => (namedStatements ? n : "");
  const sessionId = () =>
    db
      .select({ id: onboardingSessions.id })
      .from(onboardingSessions)
      .where(eq(onboardingSessions.userId, sql.placeholder("userId")));
  return {
    list: db
      .select({
        provider: apiKeys.provider,
        hint: apiKeys.keyHint,
        updatedAt: isoTimestamp(apiKeys.updatedAt),
        validatedAt: apiKeys.validatedAt,
        status: apiKeys.status,
        lastUsedAt: isoTimestamp(apiKeys.lastUsedAt),
        lastErrorCode: apiKeys.lastErrorCode,
        lastErrorAt: isoTimestamp(apiKeys.lastErrorAt),
        lastErrorReason: apiKeys.lastErrorReason,
        ciphertext: apiKeys.keyCiphertext,
      })
      .from(apiKeys)
      .where(eq(apiKeys.sessionId, sessionId()))
      .prepare(name("byok_list_keys")),
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
 * A row of `userCiphertextsSql`. The columns are null when the statement composing it joins
 * it (`left join k on true`) and the user has no key.
 */
export interface CiphertextRow {
  provider: string | null;
  ciphertext: string | null;
  /** `updated_at` as text: identifies this save of the key, for its health (lib/keys/health.ts). */
  version: string | null;
}

/**
 * The ONE read of a user's stored keys, as SQL (`provider`, `ciphertext`, `version`): one
 * statement, the session found by a scalar subquery. The generation's first statement
 * (lib/generation/start.ts) composes it as a CTE, in the same round trip as its rate limit
 * and budget reservation; `userApiKeys` (lib/keys/resolver.ts) runs it alone. Both decode its
 * rows with lib/keys/resolver.ts `decodeKeyRows`.
 */
export function userCiphertextsSql(userId: string): SQL {
  return sql`select k.provider, k.key_ciphertext as ciphertext, k.updated_at::text as version from api_keys k
    where k.session_id = (select s.id from onboarding_sessions s where s.user_id = ${userId})`;
}

// Fragments and statements the rest of the code base uses: every statement that touches
// `api_keys` or `key_events` is written in this file. Where another statement must do its key
// work in the same round trip (generation's first statement, the settlement, the account
// deletion, the onboarding session), it composes one of the fragments below.

/**
 * The number of stored keys of the session `sessionId` (SQL naming the session's id, e.g.
 * `s.id`), as a scalar subquery of type bigint: onboarding's session statements read it in
 * their own round trip (lib/onboarding/session.ts).
 */
export function keyCountSql(sessionId: SQL): SQL {
  return sql`(select count(*) from api_keys k where k.session_id = ${sessionId})`;
}

/**
 * The UPDATE that records what upstream calls said about `userId`'s keys (lib/keys/health.ts
 * `healthChange`), usable on its own or as a CTE of a larger statement: the settlement
 * (lib/generation/budget.ts `settleGeneration`). Rows are matched by user (through the
 * session), provider and version, so a key replaced while the call ran keeps its fresh health.
 * Only a verdict and a problem code are written, never upstream text.
 */
export function keyHealthUpdateSql(userId: string, updates: readonly KeyHealthUpdate[]): SQL | undefined {
  if (updates.length === 0) return undefined;
  const rows = updates.map((u) => {
    const change = healthChange(u);
    return sql`(${u.provider}::text, ${change.status}::text, ${change.errorCode}::text, ${change.reason}::text, ${u.version}::timestamptz)`;
  });
  return sql`
    update api_keys k set
      status = coalesce(v.status, k.status),
      last_used_at = now(),
      last_error_code = coalesce(v.error_code, k.last_error_code),
      last_error_at = case when v.error_code is null then k.last_error_at else now() end,
      last_error_reason = case when v.error_code is null then k.last_error_reason else v.reason end
    from (values ${sql.join(rows, sql`, `)}) as v (provider, status, error_code, reason, version)
    where k.session_id = (select id from onboarding_sessions where user_id = ${userId})
      and k.provider = v.provider and k.updated_at = v.version`;
}

/**
 * The key side of deleting an account (lib/account/account.ts `deleteAccountData`), as the
 * bodies of CTEs of its one statement, each acting only when `when` (SQL, boolean) holds:
 * - `keys`: deletes the user's keys, returning one row per key;
 * - `audit`: deletes the user's audit rows, returning one row per row;
 * - `tombstone`: leaves one `account-delete` audit row in their place (user id, request id,
 *   time: no key material).
 */
export function accountKeyDeletionSql(input: { userId: string; requestId: string; serverRequestId?: string; when: SQL }): {
  keys: SQL;
  audit: SQL;
  tombstone: SQL;
} {
  const { userId, when } = input;
  return {
    keys: sql`delete from api_keys k using onboarding_sessions s
      where ${when} and k.session_id = s.id and s.user_id = ${userId}
      returning k.id`,
    audit: sql`delete from key_events e where ${when} and e.user_id = ${userId} returning e.id`,
    tombstone: sql`insert into key_events (user_id, provider, action, key_version, request_id, server_request_id)
      select ${userId}, null, 'account-delete', null, ${input.requestId}, ${input.serverRequestId ?? null}::text where ${when}`,
  };
}

/** One audit row as the data export shows it (no key material is ever in one). */
export interface KeyEventView {
  provider: string | null;
  action: string;
  keyVersion: string | null;
  requestId: string | null;
  /** The id the server made for that request (null for rows older than it). */
  serverRequestId: string | null;
  createdAt: string;
}

/** The audit trail of `userId`'s keys, oldest first (GET /api/me/export). One query. */
export async function listKeyEvents(database: Database, userId: string): Promise<KeyEventView[]> {
  const rows = await database.rows<{
    provider: string | null;
    action: string;
    key_version: string | null;
    request_id: string | null;
    server_request_id: string | null;
    created_at: unknown;
  }>(sql`
      select provider, action, key_version, request_id, server_request_id, created_at from key_events where user_id = ${userId} order by created_at, id`);
  return rows.map((e) => ({
    provider: e.provider,
    action: e.action,
    keyVersion: e.key_version,
    requestId: e.request_id,
    serverRequestId: e.server_request_id,
    createdAt: toIso(e.created_at),
  }));
}

/** A stored key as key rotation reads it (lib/keys/reencrypt.ts). */
export interface SealedKeyRow {
  id: number;
  userId: string;
  provider: string;
  ciphertext: string;
}

/**
 * Up to `limit` stored keys (of every user) not sealed with the key id `current`, with ids
 * above `afterId`, in id order: key rotation's keyset pagination.
 */
export async function keysSealedWithOtherThan(
  database: Database,
  input: { current: string; afterId: number; limit: number },
): Promise<SealedKeyRow[]> {
  const rows = await database.rows<{ id: number | string; user_id: string; provider: string; key_ciphertext: string }>(sql`
      select k.id, s.user_id, k.provider, k.key_ciphertext
      from api_keys k join onboarding_sessions s on s.id = k.session_id
      where k.key_version <> ${input.current} and k.id > ${input.afterId}
      order by k.id
      limit ${input.limit}
    `);
  return rows.map((r) => ({ id: Number(r.id), userId: r.user_id, provider: r.provider, ciphertext: r.key_ciphertext }));
}

/**
 * Replaces the ciphertext (and fingerprints) of the stored key `row` by one sealed with key id
 * `keyVersion`, only if it still holds the ciphertext that was read (a key saved or deleted
 * meanwhile is left to the newer write), with its `reencrypt` audit row, in one statement.
 * True when replaced.
 */
export async function resealKey(
  database: Database,
  row: SealedKeyRow,
  sealed: { ciphertext: string; keyVersion: string; fingerprint: string; prefixFingerprint: string; runId: string },
): Promise<boolean> {
  const updated = await database.rows<{ id: number }>(sql`
        with up as (
          update api_keys set key_ciphertext = ${sealed.ciphertext}, key_version = ${sealed.keyVersion},
            key_fingerprint = ${sealed.fingerprint}, key_prefix_fingerprint = ${sealed.prefixFingerprint}
          where id = ${row.id} and key_ciphertext = ${row.ciphertext}
          returning id, provider, key_version
        ),
        audit as (
          insert into key_events (user_id, provider, action, key_version, request_id, server_request_id)
          select ${row.userId}, up.provider, 'reencrypt', up.key_version, ${sealed.runId}, ${sealed.runId} from up
        )
        select id from up
      `);
  return updated.length === 1;
}

/**
 * Key ids that sealed stored keys (of every user), with how many keys each sealed: the
 * development key ring refuses to generate a new key while any is sealed with an id it does
 * not have (lib/platform/dev/keyring.ts). The id is the stored value's prefix
 * (lib/platform/crypto.ts `storedKeyId`); only the id leaves the database, and an id that is
 * not in the key id format is not shown (it could be part of a key).
 */
export async function sealingKeyIds(database: Database): Promise<Map<string, number>> {
  const rows = await database.rows<{ key_id: string; keys: number | string }>(sql`
    select split_part(key_ciphertext, ':', 1) as key_id, count(*) as keys
    from api_keys
    where key_ciphertext like '%:%:%'
    group by 1
    order by 1
  `);
  const ids = new Map<string, number>();
  for (const row of rows) ids.set(keyIdPattern.test(row.key_id) ? row.key_id : "(malformed)", Number(row.keys));
  return ids;
}

// The development key ring (a base module, which may not import this feature) asks the key
// store through this census; see lib/platform/dev/keyring.ts.
provideSealedKeyCensus(sealingKeyIds);
