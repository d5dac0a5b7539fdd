/** The onboarding session of one user (step and progress) and whether their keys are complete. */
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.js";
import { providers } from "../providers/registry.js";
import { keyCountSql } from "../keys/store.js";
import type { SessionBody, SessionResponse } from "./schemas.js";

/** Reads the session (a user who never saved anything is at step 1, progress 0). One query. */
export async function getSession(database: Database, userId: string): Promise<SessionResponse> {
  const [row] = await database.rows<{ current_step: number; progress: number | string; key_count: number | string }>(sql`
    select s.current_step, s.progress, ${keyCountSql(sql`s.id`)}::int as key_count
    from onboarding_sessions s where s.user_id = ${userId}
  `);
  return {
    userId,
    currentStep: row ? Number(row.current_step) : 1,
    progress: row ? Number(row.progress) : 0,
    apiKeysComplete: Number(row?.key_count ?? 0) >= providers.length,
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
    select s.current_step, s.progress, ${keyCountSql(sql`s.id`)}::int as key_count from s
  `);
  return {
    userId,
    currentStep: Number(row?.current_step ?? body.currentStep),
    progress: Number(row?.progress ?? progress),
    apiKeysComplete: Number(row?.key_count ?? 0) >= providers.length,
  };
}

/** The wizard's steps (ALwrity's onboarding has six; progress is step ÷ 6). */
export const TOTAL_STEPS = 6;

export interface StepRecord {
  step: number;
  /** What the frontend sent when it completed the step (never keys). */
  data: Record<string, unknown>;
  completedAt: string;
}

/** The whole onboarding state of one user, read in one query. */
export interface OnboardingState {
  /** False when the user has no session yet (step 1, progress 0). */
  started: boolean;
  currentStep: number;
  progress: number;
  /** Progress 100: completed at step 6, by POST /api/onboarding/complete, or by PUT /api/onboarding/session. */
  completed: boolean;
  startedAt: string | null;
  updatedAt: string | null;
  keyCount: number;
  steps: StepRecord[];
}

const isoOf = (value: unknown): string => new Date(value as string | Date).toISOString();
const parsedJson = (value: unknown): unknown => (typeof value === "string" ? JSON.parse(value) : value);

/** Session, key count and completed steps of `userId` in one statement. */
export async function getOnboardingState(database: Database, userId: string): Promise<OnboardingState> {
  const [row] = await database.rows<{
    current_step: number;
    progress: number;
    created_at: unknown;
    updated_at: unknown;
    key_count: number | string;
    steps: unknown;
  }>(sql`
    select s.current_step, s.progress, s.created_at, s.updated_at,
      ${keyCountSql(sql`s.id`)} as key_count,
      coalesce((
        select json_agg(json_build_object('step', o.step, 'data', o.data, 'completedAt', o.completed_at) order by o.step)
        from onboarding_steps o where o.session_id = s.id
      ), '[]'::json) as steps
    from onboarding_sessions s where s.user_id = ${userId}
  `);
  if (!row)
    return { started: false, currentStep: 1, progress: 0, completed: false, startedAt: null, updatedAt: null, keyCount: 0, steps: [] };
  const steps = (parsedJson(row.steps) as { step: number; data: unknown; completedAt: string }[]).map((s) => ({
    step: Number(s.step),
    data: (parsedJson(s.data) ?? {}) as Record<string, unknown>,
    completedAt: isoOf(s.completedAt),
  }));
  const progress = Number(row.progress);
  return {
    started: true,
    currentStep: Number(row.current_step),
    progress,
    completed: progress >= 100,
    startedAt: isoOf(row.created_at),
    updatedAt: isoOf(row.updated_at),
    keyCount: Number(row.key_count),
    steps,
  };
}

/**
 * Records that `userId` completed `step` with `data` (stored as given; the caller leaves keys
 * out) and moves the session forward, never back: the next step to show is `step + 1` (6 at
 * most), progress `step ÷ 6` (100 at step 6: completed). One statement.
 */
export async function completeStep(database: Database, userId: string, step: number, data: Record<string, unknown>): Promise<void> {
  const next = Math.min(step + 1, TOTAL_STEPS);
  const progress = Math.fround((step / TOTAL_STEPS) * 100);
  await database.rows(sql`
    with s as (
      insert into onboarding_sessions as o (user_id, current_step, progress) values (${userId}, ${next}, ${progress})
      on conflict (user_id) do update set
        current_step = greatest(o.current_step, excluded.current_step),
        progress = greatest(o.progress, excluded.progress),
        updated_at = now()
      returning id
    )
    insert into onboarding_steps (session_id, step, data)
    select s.id, ${step}, ${JSON.stringify(data)}::jsonb from s
    on conflict (session_id, step) do update set data = excluded.data, completed_at = now()
  `);
}

/** Marks the onboarding of `userId` completed (step 6, progress 100). */
export async function completeOnboarding(database: Database, userId: string): Promise<void> {
  await updateSession(database, userId, { currentStep: TOTAL_STEPS, progress: 100 });
}

/**
 * Keeps `data` (already merged by the caller with what the step held) as the data of `step`
 * without completing it or moving the session: what ALwrity's wizard produces inside a step
 * (its website analysis, business information, persona) before its Continue completes it.
 * Creates the session at step 1 when there is none. One statement.
 */
export async function saveStepData(database: Database, userId: string, step: number, data: Record<string, unknown>): Promise<void> {
  await database.rows(sql`
    with s as (
      insert into onboarding_sessions as o (user_id, current_step, progress) values (${userId}, 1, 0)
      on conflict (user_id) do update set updated_at = now()
      returning id
    )
    insert into onboarding_steps (session_id, step, data)
    select s.id, ${step}, ${JSON.stringify(data)}::jsonb from s
    on conflict (session_id, step) do update set data = excluded.data
  `);
}
