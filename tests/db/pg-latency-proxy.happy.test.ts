/**
 * The counting proxy itself (testkit/pg-latency-proxy.ts): what it calls a round trip. A
 * count, never a time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { connect, type Socket } from "node:net";
import { startPgLatencyProxy, type PgLatencyProxy } from "../../testkit/pg-latency-proxy.js";
import { testDatabaseUrl } from "../helpers/db.js";

describe.skipIf(!testDatabaseUrl)("the round-trip counting proxy (postgres)", () => {
  let proxy: PgLatencyProxy;
  let client: pg.Client;

  beforeAll(async () => {
    proxy = await startPgLatencyProxy();
    client = new pg.Client({ connectionString: proxy.rewrite(testDatabaseUrl!) });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await proxy?.close();
  });

  it("counts a new connection and its set-up turns apart", () => {
    const counts = proxy.counts();
    expect(counts.connections).toBe(1);
    expect(counts.setupRoundTrips).toBeGreaterThanOrEqual(1);
    expect(counts.roundTrips).toBe(counts.setupRoundTrips);
  });

  it("one query is one round trip; a query that waits for the previous answer is another", async () => {
    proxy.reset();
    await client.query("select 1");
    expect(proxy.counts().roundTrips).toBe(1);
    await client.query("select $1::int", [2]); // extended protocol: Parse/Bind/Execute/Sync in one batch
    expect(proxy.counts()).toEqual({ roundTrips: 2, connections: 0, setupRoundTrips: 0 });
  });

  it("several statements sent before any answer are one round trip", async () => {
    proxy.reset();
    const result = (await client.query("select 1 as a; select 2 as b")) as unknown as pg.QueryResult[];
    expect(result.map((r) => r.rows[0])).toEqual([{ a: 1 }, { b: 2 }]);
    expect(proxy.counts().roundTrips).toBe(1);
  });

  it("messages written separately before any answer are still one round trip (a pipelined batch)", async () => {
    // Raw protocol, so the two queries leave as two separate writes. The proxy holds each
    // packet 100 ms (RTT 200 ms), so the second write reaches it before any answer can.
    const url = new URL(testDatabaseUrl!);
    const slow = await startPgLatencyProxy({ rttMs: 200 });
    const socket: Socket = connect({ host: "127.0.0.1", port: slow.port });
    let received = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    const readyCount = () => {
      let n = 0;
      for (let at = 0; at + 5 <= received.length; ) {
        const type = received[at]!;
        const length = received.readInt32BE(at + 1);
        if (type === 0x5a) n++;
        at += 1 + length;
      }
      return n;
    };
    const until = async (ready: number) => {
      for (let i = 0; i < 500 && readyCount() < ready; i++) await new Promise((r) => setTimeout(r, 10));
      expect(readyCount()).toBeGreaterThanOrEqual(ready);
    };
    try {
      const params = Buffer.from(
        `user\0${decodeURIComponent(url.username) || "postgres"}\0database\0${url.pathname.slice(1) || "postgres"}\0\0`,
      );
      const startup = Buffer.alloc(8 + params.length);
      startup.writeInt32BE(startup.length, 0);
      startup.writeInt32BE(196608, 4);
      params.copy(startup, 8);
      socket.write(startup);
      await until(1);
      slow.reset();
      const query = (text: string) => {
        const body = Buffer.from(`${text}\0`);
        const message = Buffer.alloc(5 + body.length);
        message.write("Q", 0);
        message.writeInt32BE(4 + body.length, 1);
        body.copy(message, 5);
        return message;
      };
      socket.write(query("select 1"));
      await new Promise((r) => setTimeout(r, 10));
      socket.write(query("select 2"));
      await until(3);
      expect(slow.counts().roundTrips).toBe(1);
    } finally {
      socket.destroy();
      await slow.close();
    }
  });
});
