/**
 * Fast seeding for the benchmarks: users with all three provider keys, encrypted for real
 * (AES-256-GCM under the bench keyring, AAD `user_id|provider`, exactly what saveKeys writes),
 * inserted in batches of one statement each (session rows and their keys together, through
 * `unnest` arrays), so 100,000 users / 300,000 keys take seconds rather than minutes.
 *
 * The keys are well-formed fakes, derived from the user number; they never leave this
 * process except encrypted.
 */
import { encryptKey, keyAad, type Keyring } from "../lib/platform/crypto.js";
import { keyHint, providers, type Provider } from "../lib/providers/registry.js";

/** What both pg (Client/Pool) and PGlite offer: parameterized text queries. */
export interface Queryable {
  query(text: string, params?: unknown[]): Promise<unknown>;
}

export function benchUserId(n: number): string {
  return `user_bench_${n.toString().padStart(7, "0")}`;
}

/** Well-formed (per lib/providers/registry.ts) but fake provider keys for user number n. */
export function benchProviderKeys(n: number): Record<Provider, string> {
  const hex = n.toString(16).padStart(12, "0");
  return {
    gemini: `AQ.Bench${hex}${"x".repeat(33)}`, // an AI Studio key's shape: 53 characters
    exa: `0000bead-${hex.slice(0, 4)}-4000-8000-${hex}`,
    copilotkit: `ck_pub_bench${hex}${"k".repeat(10)}`,
  };
}

export interface SeedResult {
  users: number;
  keys: number;
  /** Time spent encrypting, ms. */
  encryptMs: number;
  /** Time spent in the database, ms. */
  insertMs: number;
}

const insertBatch = `
  with s as (
    insert into onboarding_sessions (user_id, current_step, progress)
    select u, 6, 100 from unnest($1::text[]) as u
    returning id, user_id
  )
  insert into api_keys (session_id, provider, key_ciphertext, key_version, key_hint)
  select s.id, k.provider, k.ciphertext, $5, k.hint
  from unnest($2::text[], $3::text[], $4::text[], $6::text[]) as k(user_id, provider, ciphertext, hint)
  join s on s.user_id = k.user_id
`;

/** Inserts users number `from` .. `from + count - 1`, each with a gemini, exa and copilotkit key. */
export async function seedUsers(
  db: Queryable,
  options: { keyring: Keyring; from: number; count: number; batchSize?: number },
): Promise<SeedResult> {
  const batchSize = options.batchSize ?? 5_000;
  let encryptMs = 0;
  let insertMs = 0;
  let keys = 0;
  for (let start = options.from; start < options.from + options.count; start += batchSize) {
    const end = Math.min(options.from + options.count, start + batchSize);
    const t0 = performance.now();
    const users: string[] = [];
    const keyUsers: string[] = [];
    const keyProviders: string[] = [];
    const ciphertexts: string[] = [];
    const hints: string[] = [];
    for (let n = start; n < end; n++) {
      const userId = benchUserId(n);
      users.push(userId);
      const plain = benchProviderKeys(n);
      for (const provider of providers) {
        keyUsers.push(userId);
        keyProviders.push(provider);
        ciphertexts.push(encryptKey(options.keyring, plain[provider], keyAad(userId, provider)));
        hints.push(keyHint(plain[provider]));
      }
    }
    const t1 = performance.now();
    await db.query(insertBatch, [users, keyUsers, keyProviders, ciphertexts, options.keyring.current.id, hints]);
    const t2 = performance.now();
    encryptMs += t1 - t0;
    insertMs += t2 - t1;
    keys += keyProviders.length;
  }
  return { users: options.count, keys, encryptMs, insertMs };
}
