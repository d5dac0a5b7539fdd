/**
 * The benchmark server: the real app (createApp over the public route list) plus two
 * bench-only routes, run as a child process of bench/run.ts so its memory is its own and the
 * load generator does not share its event loop.
 *
 * - `GET /bench/floor`: `SELECT 1` on the same pool, no auth, through the same app pipeline
 *   (request id, CORS, body limit, dependencies, error handler) and the same JSON response
 *   helper. The physical floor every endpoint pays.
 * - `GET /bench/user-keys`: requireUser + userApiKeys(), the key path of blog generation
 *   (production: one query + AES-GCM decrypt of the Gemini and Exa keys, the ones generation
 *   uses). Answers which providers resolved, never a key.
 *
 * Neither route is in lib/routes/: they exist only in this process.
 *
 * Run by bench/run.ts as a bundle (bench/.build/server.mjs), with the configuration in the
 * environment (read by lib/platform/env.ts like any deployment) and `--pool N` for the pool size.
 * Sends `{type: "listening", port}` over IPC; stops on `{type: "stop"}`, SIGTERM or SIGINT.
 */
import { serve } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { openDatabase } from "../db/client.js";
import { createApp } from "../lib/app.js";
import { loadConfig } from "../lib/platform/env.js";
import { defineRoute, json, type AnyRoute } from "../lib/http/route.js";
import { userApiKeys } from "../lib/keys/resolver.js";
import type { Provider } from "../lib/providers/registry.js";
import { routes } from "../lib/routes.js";
import { createRuntime } from "../lib/platform/runtime.js";

const generationProviders: ReadonlySet<Provider> = new Set(["gemini", "exa"]);

const floor = defineRoute({
  method: "GET",
  path: "/bench/floor",
  operationId: "benchFloor",
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

const userKeys = defineRoute({
  method: "GET",
  path: "/bench/user-keys",
  operationId: "benchUserKeys",
  summary: "requireUser + userApiKeys()",
  tags: ["bench"],
  auth: true,
  responses: { 200: { description: "Which providers resolved (never a key)." } },
  problems: [],
  handler: async ({ deps, userId }) => {
    // As generation does (lib/generation/start.ts): only the keys it uses are decrypted.
    const resolved = await userApiKeys(deps, userId, generationProviders);
    // Provider names only: the decrypted keys never leave this function.
    return json({ userId, source: resolved.source, providers: Object.keys(resolved.keys), unreadable: resolved.unreadable });
  },
});

export const benchRoutes: readonly AnyRoute[] = [floor, userKeys];

function argValue(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : NaN;
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const pool = argValue("pool", 10);
  const database = await openDatabase({ ...config.database, maxConnections: pool });
  const runtime = createRuntime(config, { database });
  const app = createApp([...routes, ...benchRoutes], { runtime });
  // Requests still running when the load stops must finish before the pool closes, or they
  // would log "database unavailable" for a shutdown the bench caused.
  let inFlight = 0;
  const fetch = async (request: Request): Promise<Response> => {
    inFlight += 1;
    try {
      return await app.fetch(request);
    } finally {
      inFlight -= 1;
    }
  };
  const server = serve({ fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
    process.send?.({ type: "listening", port: info.port, pool, driver: config.database.driver, mode: config.mode });
  });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 3_000);
    force.unref();
    server.close(async () => {
      for (let waited = 0; inFlight > 0 && waited < 2_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
      database
        .close()
        .catch(() => {})
        // process.exit (not a kill) so that --cpu-prof writes its profile.
        .finally(() => process.exit(0));
    });
    // Keep-alive connections from the load generator would hold close() open.
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  };
  process.on("message", (message: { type?: string }) => {
    if (message?.type === "stop") stop();
  });
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("disconnect", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench server failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
