/**
 * The app-pipeline floor: `SELECT 1` through the same app as every api/ function (createApp via
 * lib/server/vercel.ts: request id, CORS, body limit, runtime and configuration, the error handler,
 * the JSON helper), no auth. Built and shipped like them (bench/shipped.ts). Against it, a key
 * function's cold start, CPU and throughput show what the key path itself adds; against the
 * driver-only floors (floor-function.ts, floor-neon-http.ts), what the whole function adds.
 */
import { sql } from "drizzle-orm";
import { defineRoute, json } from "../lib/http/route.js";
import { vercelFunction } from "../lib/server/vercel.js";

const floor = defineRoute({
  method: "GET",
  path: "/floor",
  operationId: "benchAppFloor",
  summary: "SELECT 1 through the app pipeline",
  tags: ["bench"],
  auth: false,
  responses: { 200: { description: "ok" } },
  problems: [],
  handler: async ({ deps }) => {
    await (await deps.database()).rows(sql`select 1`);
    return json({ ok: true });
  },
});

export const { GET } = vercelFunction([floor]);
