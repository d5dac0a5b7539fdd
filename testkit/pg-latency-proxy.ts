/**
 * A TCP proxy in front of PostgreSQL that injects network latency and counts round trips,
 * for tests (tests/db/round-trips.happy.test.ts: counts, never times) and the bench (the RTT
 * section of BENCHMARKS.md). Local PostgreSQL answers in ~0.1 ms; Neon is a few ms away
 * (tens across regions), so what a request costs there is mostly its round trips.
 *
 * Latency: every chunk is held `rttMs / 2` in each direction, in order, so one request and
 * its answer cost one RTT and a pipelined batch (many messages before any answer) costs one.
 *
 * Round trip: a *turn* of the conversation. One starts each time the client sends bytes
 * after the server last spoke on that connection (or first, on a new connection). Several
 * messages written before any answer (Parse/Bind/Execute/Sync, or a pipelined batch) are one
 * round trip; a query that waits for the previous one's answer is another. Connection
 * set-up turns (TLS request, startup, authentication) count on their connection too, and
 * are also reported apart as `connections`.
 *
 * Wire-level, so it works for every driver that speaks TCP (pg directly; neon-ws through
 * the WebSocket-to-TCP proxy put in front of it). It listens on 127.0.0.1 on a free port.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export interface RoundTripCounts {
  /** Client turns (see the file comment), set-up turns included. */
  roundTrips: number;
  /** TCP connections opened through the proxy. */
  connections: number;
  /** Client turns on connections before their first ReadyForQuery (connection set-up). */
  setupRoundTrips: number;
}

export interface PgLatencyProxy {
  /** `host:port` to put in a DATABASE_URL in place of the real server's. */
  readonly host: string;
  readonly port: number;
  /** `url` with its host and port replaced by this proxy's. */
  rewrite(url: string): string;
  /** Round-trip delay injected from now on (half each way). */
  setRtt(ms: number): void;
  counts(): RoundTripCounts;
  /** Zeroes the counters (e.g. after warm-up). */
  reset(): void;
  /** Open client connections. */
  openConnections(): number;
  close(): Promise<void>;
}

/** PostgreSQL's ReadyForQuery message: 'Z', length 5, one status byte. */
const READY_FOR_QUERY = 0x5a;

export async function startPgLatencyProxy(
  options: { target?: { host: string; port: number }; rttMs?: number } = {},
): Promise<PgLatencyProxy> {
  const target = options.target ?? { host: "127.0.0.1", port: 5432 };
  let rtt = options.rttMs ?? 0;
  let counts: RoundTripCounts = { roundTrips: 0, connections: 0, setupRoundTrips: 0 };
  const open = new Set<Socket>();

  /** Sends `chunk` on `to` after half the RTT, keeping order (equal delays fire in order). */
  const delayed = (to: Socket, chunk: Buffer) => {
    const half = rtt / 2;
    if (half <= 0) {
      if (!to.destroyed) to.write(chunk);
      return;
    }
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, half);
  };

  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect(target);
    upstream.setNoDelay(true);
    open.add(client);
    counts.connections += 1;
    let serverSpokeLast = true;
    let ready = false;
    client.on("data", (chunk: Buffer) => {
      if (serverSpokeLast) {
        counts.roundTrips += 1;
        if (!ready) counts.setupRoundTrips += 1;
        serverSpokeLast = false;
      }
      delayed(upstream, chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      serverSpokeLast = true;
      // The first ReadyForQuery ends the set-up. A message may straddle chunks; the 5-byte
      // 'Z' message at a chunk's end is how servers send it, which is all the set-up count needs.
      if (!ready && chunk.length >= 6 && chunk[chunk.length - 6] === READY_FOR_QUERY && chunk.readInt32BE(chunk.length - 5) === 5)
        ready = true;
      delayed(client, chunk);
    });
    const closeBoth = () => {
      open.delete(client);
      // Let data already scheduled go first.
      setTimeout(
        () => {
          client.destroy();
          upstream.destroy();
        },
        rtt / 2 + 1,
      );
    };
    client.on("error", closeBoth);
    upstream.on("error", closeBoth);
    client.on("close", closeBoth);
    upstream.on("close", closeBoth);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    host: `127.0.0.1:${port}`,
    port,
    rewrite(url: string) {
      const parsed = new URL(url);
      parsed.hostname = "127.0.0.1";
      parsed.port = String(port);
      return parsed.toString();
    },
    setRtt(ms: number) {
      rtt = ms;
    },
    counts: () => ({ ...counts }),
    reset() {
      counts = { roundTrips: 0, connections: 0, setupRoundTrips: 0 };
    },
    openConnections: () => open.size,
    async close() {
      for (const socket of open) socket.destroy();
      open.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
