/**
 * Service credentials: how an operator's backend calls the gateway for its users without a
 * Clerk session. A credential is `bks_<id>_<secret>` (16 hex digits, then 32 random bytes in
 * base64url), scoped to the gateway; it names the user it acts for on each call
 * (`x-byok-user`). Only the SHA-256 of the whole credential is stored (`service_credentials`):
 * the secret is shown once, when issued, and never stored, logged or returned again. The
 * secret is 256 random bits, so a fast hash is enough (nothing to brute-force).
 *
 * Issue, rotate and revoke with `npm run gateway:credentials` (scripts/gateway-credentials.ts).
 * A rotation issues a new credential and lets the old one work for a grace period
 * (`revoked_at` in the future), so a backend can switch without downtime.
 */
import { createHash, randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";

export const SERVICE_CREDENTIAL_PREFIX = "bks_";
const ID_HEX = 16;
const SECRET_BYTES = 32;

export interface ParsedCredential {
  id: string;
  /** hex SHA-256 of the whole credential, as stored. */
  hash: string;
}

/** hex SHA-256 of a credential. */
export function credentialHash(credential: string): string {
  return createHash("sha256").update(credential, "utf8").digest("hex");
}

/**
 * `token` as a service credential (its id and hash), or undefined when it does not have the
 * shape (then it is not one: a Clerk session token, say). A scan, no regex.
 */
export function parseServiceCredential(token: string): ParsedCredential | undefined {
  if (!token.startsWith(SERVICE_CREDENTIAL_PREFIX)) return undefined;
  const rest = token.slice(SERVICE_CREDENTIAL_PREFIX.length);
  const id = rest.slice(0, ID_HEX);
  const secret = rest.slice(ID_HEX + 1);
  if (rest[ID_HEX] !== "_" || id.length !== ID_HEX || secret.length !== 43) return undefined;
  for (const ch of id) if (!"0123456789abcdef".includes(ch)) return undefined;
  for (const ch of secret) if (!isBase64Url(ch)) return undefined;
  return { id, hash: credentialHash(token) };
}

function isBase64Url(ch: string): boolean {
  return (ch >= "A" && ch <= "Z") || (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || ch === "-" || ch === "_";
}

/** A fresh credential (not stored). */
export function newCredential(): { id: string; credential: string } {
  const id = randomBytes(ID_HEX / 2).toString("hex");
  return { id, credential: `${SERVICE_CREDENTIAL_PREFIX}${id}_${randomBytes(SECRET_BYTES).toString("base64url")}` };
}

export interface CredentialView {
  id: string;
  name: string;
  scope: string;
  createdAt: string;
  revokedAt: string | null;
}

interface CredentialRow {
  id: string;
  name: string;
  scope: string;
  created_at: string | Date;
  revoked_at: string | Date | null;
}

const view = (row: CredentialRow): CredentialView => ({
  id: row.id,
  name: row.name,
  scope: row.scope,
  createdAt: new Date(row.created_at).toISOString(),
  revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
});

/** Issues a credential named `name`: the credential itself is returned once, only its hash is stored. */
export async function issueCredential(database: Database, name: string): Promise<{ credential: string; view: CredentialView }> {
  const fresh = newCredential();
  const [row] = await database.rows<CredentialRow>(sql`
    insert into service_credentials (id, name, secret_hash) values (${fresh.id}, ${name}, ${credentialHash(fresh.credential)})
    returning id, name, scope, created_at, revoked_at`);
  return { credential: fresh.credential, view: view(row!) };
}

/**
 * Revokes credential `id` in `afterSeconds` (0: now). Undefined when there is no such
 * credential; a credential already revoked earlier keeps its earlier instant.
 */
export async function revokeCredential(database: Database, id: string, afterSeconds = 0): Promise<CredentialView | undefined> {
  const [row] = await database.rows<CredentialRow>(sql`
    update service_credentials set revoked_at = least(coalesce(revoked_at, 'infinity'::timestamptz), now() + make_interval(secs => ${afterSeconds}::int))
    where id = ${id} returning id, name, scope, created_at, revoked_at`);
  return row ? view(row) : undefined;
}

/** A new credential with the same name, the old one revoked after `graceSeconds`. One statement. */
export async function rotateCredential(
  database: Database,
  id: string,
  graceSeconds: number,
): Promise<{ credential: string; view: CredentialView; old: CredentialView } | undefined> {
  const fresh = newCredential();
  const rows = await database.rows<CredentialRow & { which: "old" | "new" }>(sql`
    with old as (
      update service_credentials set revoked_at = least(coalesce(revoked_at, 'infinity'::timestamptz), now() + make_interval(secs => ${graceSeconds}::int))
      where id = ${id} and (revoked_at is null or revoked_at > now())
      returning id, name, scope, created_at, revoked_at
    ), fresh as (
      insert into service_credentials (id, name, secret_hash)
      select ${fresh.id}, old.name, ${credentialHash(fresh.credential)} from old
      returning id, name, scope, created_at, revoked_at
    )
    select 'old' as which, * from old union all select 'new' as which, * from fresh`);
  const old = rows.find((r) => r.which === "old");
  const made = rows.find((r) => r.which === "new");
  if (!old || !made) return undefined;
  return { credential: fresh.credential, view: view(made), old: view(old) };
}

/** Every credential (never a secret or a hash), oldest first. */
export async function listCredentials(database: Database): Promise<CredentialView[]> {
  const rows = await database.rows<CredentialRow>(
    sql`select id, name, scope, created_at, revoked_at from service_credentials order by created_at, id`,
  );
  return rows.map(view);
}

/** SQL (boolean) that holds when credential `parsed` is stored, in scope and not revoked. */
export function credentialValidSql(parsed: ParsedCredential): ReturnType<typeof sql> {
  return sql`exists (select 1 from service_credentials c where c.id = ${parsed.id} and c.secret_hash = ${parsed.hash}
    and c.scope = 'gateway' and (c.revoked_at is null or c.revoked_at > now()))`;
}
