/**
 * The floor with node-postgres: a function that only imports the database driver and
 * answers `SELECT 1`, bundled and started exactly like the api/ functions (bench/coldstart.ts,
 * bench/shipped.ts builds it with scripts/bundle-functions.ts like a shipped function).
 * A key function's import + first request is compared with this one's: what it costs beyond
 * Node, the driver and one connection.
 */
import pg from "pg";

// The bench harness reads its own environment (the app reads only lib/platform/env.ts).
// Pool of 10, db/client.ts's default for the app's functions (a cold start opens one connection).
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });

export async function GET(): Promise<Response> {
  await pool.query("select 1");
  return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
}
