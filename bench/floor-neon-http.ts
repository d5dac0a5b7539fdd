/**
 * The cold-start floor with Neon's HTTP driver: a function that only imports
 * `@neondatabase/serverless` and answers `SELECT 1` over HTTP (one request, no session), built
 * and started exactly like the api/ functions. The bench points the driver's HTTPS request at the
 * local stand-in for Neon's endpoint (testkit/neon-http-endpoint.ts) from the child process.
 */
import { neon } from "@neondatabase/serverless";

// The bench harness reads its own environment (the app reads only lib/platform/env.ts).
const sql = neon(process.env.DATABASE_URL ?? "");

export async function GET(): Promise<Response> {
  await sql`select 1`;
  return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
}
