/** The onboarding session of one user (step and progress) and whether their keys are complete. */
import { count, eq, sql } from "drizzle-orm";
import type { Database } from "../db/client.js";
import { apiKeys, onboardingSessions } from "../db/schema.js";
import { providers } from "./keys/providers.js";
import type { SessionBody, SessionResponse } from "./schemas.js";

/** Reads the session (a user who never saved anything is at step 1, progress 0). One query. */
export async function getSession(database: Database, userId: string): Promise<SessionResponse> {
  const [row] = await database.db
    .select({
      currentStep: onboardingSessions.currentStep,
      progress: onboardingSessions.progress,
      keyCount: count(apiKeys.id),
    })
    .from(onboardingSessions)
    .leftJoin(apiKeys, eq(apiKeys.sessionId, onboardingSessions.id))
    .where(eq(onboardingSessions.userId, userId))
    .groupBy(onboardingSessions.id);
  return {
    userId,
    currentStep: row?.currentStep ?? 1,
    progress: row?.progress ?? 0,
    apiKeysComplete: Number(row?.keyCount ?? 0) >= providers.length,
  };
}

export async function updateSession(database: Database, userId: string, body: SessionBody): Promise<SessionResponse> {
  // `progress` is a `real` column: PostgreSQL refuses a value that underflows float4 (such as
  // 1e-300, which the schema accepts) with an error, so store what float4 would hold.
  const progress = Math.fround(body.progress);
  // One statement (one round trip): the upsert, and the key count of the session it returns.
  const [row] = await database.rows<{ current_step: number; progress: number | string; key_count: number | string }>(sql`
    with s as (
      insert into onboarding_sessions (user_id, current_step, progress)
      values (${userId}, ${body.currentStep}::int, ${progress}::real)
      on conflict (user_id) do update set current_step = excluded.current_step, progress = excluded.progress, updated_at = now()
      returning id, current_step, progress
    )
    select s.current_step, s.progress, (select count(*) from api_keys k where k.session_id = s.id)::int as key_count from s
  `);
  return {
    userId,
    currentStep: Number(row?.current_step ?? body.currentStep),
    progress: Number(row?.progress ?? progress),
    apiKeysComplete: Number(row?.key_count ?? 0) >= providers.length,
  };
}
