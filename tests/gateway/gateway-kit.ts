/**
 * What the gateway tests share: the app served on a local port (the SDKs speak HTTP to it),
 * the unchanged official SDKs pointed at it for a user, and reads of the ledger.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { GoogleGenerativeAI, type RequestOptions } from "@google/generative-ai";
import { Exa } from "exa-js";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { expectStatus, request, sampleKeys, type TestRuntime } from "../helpers/runtime.js";
import { waitFor } from "../helpers/wait.js";

/** What the SDKs are given as their key: the gateway must never forward it nor log it. */
export const SDK_PLACEHOLDER_KEY = "sdk-placeholder-key-never-forwarded-0001";

export interface Served {
  url: string;
  close(): Promise<void>;
}

/**
 * A new user (`<prefix>_<random>`) of `rt`, with the sample keys of `seed` stored for the
 * `providers` named (none: a user without keys), and a session token.
 */
export async function newUser(rt: TestRuntime, prefix: string, seed: number, providers: Array<"gemini" | "exa"> = ["gemini", "exa"]) {
  const userId = `${prefix}_${randomBytes(4).toString("hex")}`;
  const keys = sampleKeys(seed);
  if (providers.length > 0) {
    const body = Object.fromEntries(providers.map((provider) => [provider, keys[provider]]));
    await expectStatus(await rt.fetch(request("POST", "/api/onboarding/api-keys", { token: rt.token(userId), body })), 200);
  }
  return { userId, keys, token: rt.token(userId) };
}

/** The runtime's app over real HTTP on 127.0.0.1. */
export async function serveApp(rt: TestRuntime): Promise<Served> {
  let server!: ServerType;
  const url = await new Promise<string>((resolve) => {
    server = serve({ fetch: rt.app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) =>
      resolve(`http://127.0.0.1:${info.port}`),
    );
  });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** Auth headers: a session token, or a service credential acting for `actsFor`. */
export function authHeaders(bearer: string, actsFor?: string): Record<string, string> {
  return { Authorization: `Bearer ${bearer}`, ...(actsFor ? { "x-byok-user": actsFor } : {}) };
}

/** `@google/generative-ai`, unchanged: base URL and the caller's auth header (RequestOptions). */
export function geminiModel(baseUrl: string, headers: Record<string, string>, model = "gemini-3.5-flash") {
  const options: RequestOptions = { baseUrl: `${baseUrl}/api/gateway/gemini`, customHeaders: headers };
  return new GoogleGenerativeAI(SDK_PLACEHOLDER_KEY).getGenerativeModel({ model }, options);
}

/** `exa-js`, unchanged: base URL as its constructor's second argument, the auth header on its headers. */
export function exaClient(baseUrl: string, headers: Record<string, string>): Exa {
  const exa = new Exa(SDK_PLACEHOLDER_KEY, `${baseUrl}/api/gateway/exa`);
  // exa-js keeps its request headers on `headers` (a Headers object; private in its types).
  const sdkHeaders = exa["headers"] as Headers;
  for (const [name, value] of Object.entries(headers)) sdkHeaders.set(name, value);
  return exa;
}

export interface Ledger {
  spentUsd: number;
  reservedUsd: number;
}

/** The user's budget row: settled spend and open reservations (0 without a row). */
export async function ledger(database: Database, userId: string): Promise<Ledger> {
  const [row] = await database.rows<{ spent: string | null; reserved: string | null }>(sql`
    select spent_usd as spent,
           (select coalesce(sum((r->>'usd')::numeric), 0) from jsonb_array_elements(reservations) r) as reserved
    from budgets where user_id = ${userId}`);
  return { spentUsd: Number(row?.spent ?? 0), reservedUsd: Number(row?.reserved ?? 0) };
}

export interface AuditRow {
  caller: string;
  provider: string;
  operation: string;
  model: string | null;
  outcome: string;
  upstream_status: number | null;
  finished: boolean;
}

export async function auditRows(database: Database, userId: string): Promise<AuditRow[]> {
  return database.rows<AuditRow>(sql`
    select caller, provider, operation, model, outcome, upstream_status, finished_at is not null as finished
    from gateway_calls where user_id = ${userId} order by id`);
}

export interface UsageRow {
  provider: string;
  operation: string;
  model: string | null;
  cost_usd: string;
  partial: boolean;
}

export async function usageRows(database: Database, userId: string): Promise<UsageRow[]> {
  return database.rows<UsageRow>(
    sql`select provider, operation, model, cost_usd, partial from usage_events where user_id = ${userId} order by id`,
  );
}

/** Waits until every gateway call of `userId` has settled (its audit row finished). */
export async function settled(database: Database, userId: string): Promise<void> {
  await waitFor(async () => (await auditRows(database, userId)).every((row) => row.finished), `every call of ${userId} settled`);
}
