/**
 * The cold-start floor: a function that only imports the database driver and
 * answers `SELECT 1`, bundled and started exactly like the api/ functions (bench/coldstart.ts).
 * A key function's import + first request is compared with this one's: what it costs beyond
 * Node, the driver and one connection.
 */
import pg from "pg";

// The bench harness reads its own environment (the app reads only lib/platform/env.ts).
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 });

export async function GET(): Promise<Response> {
  await pool.query("select 1");
  return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
}
