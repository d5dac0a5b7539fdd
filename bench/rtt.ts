/**
 * Round trips to the database, made visible (docs/http-contract.md "Round trips"). The local PostgreSQL answers in
 * ~0.1 ms, so the other sections cannot see what a request pays on Neon (a few ms away; tens
 * across regions). Here the server child reaches PostgreSQL through a latency-injecting,
 * turn-counting TCP proxy (testkit/pg-latency-proxy.ts), and at each RTT:
 *
 * - sequential p50 of the floor (`SELECT 1` through the same stack) and of
 *   GET /api/onboarding/api-keys, alternating, and the difference (target: ≤ 1 ms at every RTT);
 * - time to the first byte of POST /api/blog/generate (research off: the stream's headers
 *   leave after the statement before the first upstream call), against the floor;
 * - round trips per request of each (a count, from the proxy).
 *
 * Cold connection set-up per driver is counted once (at 0 ms): node-postgres straight through
 * the proxy, and the Neon WebSocket driver through a ws-to-TCP proxy in front of it. The HTTP
 * driver holds no PostgreSQL connection (each query is one HTTPS request to Neon's proxy).
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { openDatabase } from "../db/client.js";
import { startPgLatencyProxy, type PgLatencyProxy } from "../testkit/pg-latency-proxy.js";
import { startNeonWsProxy } from "../testkit/neon-ws-proxy.js";
import { startServer, type ServerChild } from "./child.js";
import { quantile } from "./load.js";

export interface RttRow {
  rttMs: number;
  floorP50: number;
  listP50: number;
  /** POST /api/blog/generate (research off), time to the response headers. */
  generateFirstByteP50: number;
  floorRoundTrips: number;
  listRoundTrips: number;
  generateRoundTrips: number;
  /** POST /api/onboarding/api-keys saving a new Gemini key (a real change, so the write and the count happen). */
  saveRoundTrips?: number;
  samples: number;
}

export interface ColdConnectRow {
  driver: "pg" | "neon-ws" | "neon-http";
  /** PostgreSQL protocol turns before the first query could be sent (startup, auth). */
  setupRoundTrips: number | null;
  /** Turns of the first query on the fresh connection (set-up included). */
  firstQueryRoundTrips: number | null;
  note: string;
}

export interface RttReport {
  rows: RttRow[];
  cold: ColdConnectRow[];
}

async function timed(url: string, init?: RequestInit): Promise<number> {
  const start = performance.now();
  const response = await fetch(url, init);
  const ms = performance.now() - start; // headers received
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`${init?.method ?? "GET"} ${url} answered ${response.status}`);
  return ms;
}

async function perRequestTurns(proxy: PgLatencyProxy, n: number, send: () => Promise<unknown>, settleMs: number): Promise<number> {
  await new Promise((r) => setTimeout(r, settleMs));
  proxy.reset();
  for (let i = 0; i < n; i++) {
    await send();
    await new Promise((r) => setTimeout(r, settleMs)); // a generation's settlement follows its stream
  }
  return proxy.counts().roundTrips / n;
}

export async function measureRtt(options: {
  serverEntry: string;
  env: Record<string, string>;
  databaseUrl: string;
  token: string;
  rtts: number[];
  /** Sequential requests per target and RTT. */
  samples: number;
  log: (line: string) => void;
}): Promise<RttReport> {
  const target = new URL(options.databaseUrl);
  const rows: RttRow[] = [];
  const cold: ColdConnectRow[] = [];
  const auth = { authorization: `Bearer ${options.token}` };
  const generateInit = (): RequestInit => ({
    method: "POST",
    headers: { ...auth, "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ topic: "Round trips before the first byte", research: false }),
  });

  // A new well-formed Gemini key per save, so every save changes the stored key.
  const saveInit = (): RequestInit => ({
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ gemini: "AQ." + randomBytes(38).toString("base64url").slice(0, 50) }),
  });

  for (const rttMs of options.rtts) {
    const proxy = await startPgLatencyProxy({ target: { host: target.hostname, port: Number(target.port || 5432) }, rttMs });
    let server: ServerChild | undefined;
    try {
      server = await startServer({
        entry: options.serverEntry,
        env: { ...options.env, DATABASE_URL: proxy.rewrite(options.databaseUrl) },
        pool: 4,
      });
      const floorUrl = `${server.baseUrl}/bench/floor`;
      const listUrl = `${server.baseUrl}/api/onboarding/api-keys`;
      const generateUrl = `${server.baseUrl}/api/blog/generate`;
      if (rttMs === 0) {
        // A cold instance: the first request opens the pool's first connection.
        proxy.reset();
        await timed(floorUrl);
        const c = proxy.counts();
        cold.push({
          driver: "pg",
          setupRoundTrips: c.setupRoundTrips,
          firstQueryRoundTrips: c.roundTrips,
          note: "local trust auth, no TLS; on Neon add TCP (1), SSLRequest + TLS 1.3 (2) and SCRAM (2 more turns)",
        });
      }
      for (let i = 0; i < 10; i++) {
        await timed(floorUrl);
        await timed(listUrl, { headers: auth });
        await timed(generateUrl, generateInit());
      }
      const floor: number[] = [];
      const list: number[] = [];
      const generate: number[] = [];
      for (let i = 0; i < options.samples; i++) {
        floor.push(await timed(floorUrl));
        list.push(await timed(listUrl, { headers: auth }));
        if (i % 4 === 0) generate.push(await timed(generateUrl, generateInit()));
      }
      const p50 = (values: number[]) => quantile(Float64Array.from(values).sort(), 0.5);
      const settle = rttMs + 20;
      const row: RttRow = {
        rttMs,
        floorP50: p50(floor),
        listP50: p50(list),
        generateFirstByteP50: p50(generate),
        floorRoundTrips: await perRequestTurns(proxy, 5, () => timed(floorUrl), 0),
        listRoundTrips: await perRequestTurns(proxy, 5, () => timed(listUrl, { headers: auth }), 0),
        // Whole generation: the statement before the first upstream call, and the settlement after.
        generateRoundTrips: await perRequestTurns(proxy, 3, () => timed(generateUrl, generateInit()), settle),
        saveRoundTrips: await perRequestTurns(proxy, 3, () => timed(listUrl, saveInit()), 0),
        samples: options.samples,
      };
      rows.push(row);
      options.log(
        `  RTT ${rttMs} ms: floor p50 ${row.floorP50.toFixed(2)} ms, GET api-keys p50 ${row.listP50.toFixed(2)} ms (+${(row.listP50 - row.floorP50).toFixed(2)}), ` +
          `generate first byte p50 ${row.generateFirstByteP50.toFixed(2)} ms; round trips floor ${row.floorRoundTrips}, list ${row.listRoundTrips}, generation ${row.generateRoundTrips}, key save ${row.saveRoundTrips}`,
      );
    } finally {
      await server?.stop();
      await proxy.close();
    }
  }

  // neon-ws: the driver's WebSocket → a ws-to-TCP proxy → the counting proxy → PostgreSQL.
  {
    const proxy = await startPgLatencyProxy({ target: { host: target.hostname, port: Number(target.port || 5432) } });
    const ws = await startNeonWsProxy({ allow: [proxy.host] });
    try {
      const database = await openDatabase({
        driver: "neon-ws",
        url: proxy.rewrite(options.databaseUrl),
        neon: { wsProxy: ws.wsProxy, useSecureWebSocket: false, pipelineConnect: false },
        maxConnections: 1,
      });
      await database.rows(sql`select 1`);
      const c = proxy.counts();
      await database.close();
      cold.push({
        driver: "neon-ws",
        setupRoundTrips: c.setupRoundTrips + 1,
        firstQueryRoundTrips: c.roundTrips + 1,
        note:
          "counted with pipelineConnect off (local trust auth) + 1 for the WebSocket upgrade; on Neon the driver pipelines startup and password " +
          '(pipelineConnect "password"), so TCP (1) + TLS 1.3 (1) + upgrade (1) + startup/auth (1) before the first query',
      });
    } finally {
      await ws.close();
      await proxy.close();
    }
  }
  cold.push({
    driver: "neon-http",
    setupRoundTrips: 0,
    firstQueryRoundTrips: 1,
    note: "no PostgreSQL session to open: TCP (1) + TLS 1.3 (1) to Neon's HTTPS endpoint once per instance, then one HTTPS request per statement",
  });
  for (const c of cold)
    options.log(
      `  cold ${c.driver}: set-up ${c.setupRoundTrips ?? "?"} round trips, first query ${c.firstQueryRoundTrips ?? "?"} (${c.note})`,
    );
  return { rows, cold };
}
