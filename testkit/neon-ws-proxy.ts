/**
 * A local stand-in for Neon's WebSocket proxy (what `neonConfig.wsProxy` points at): it
 * accepts the driver's WebSocket at `ws://127.0.0.1:PORT/v2?address=host:port` and pipes
 * the raw PostgreSQL wire bytes, unchanged, to that TCP address. The Neon driver then
 * speaks ordinary PostgreSQL through it, so the local PostgreSQL (trust auth) serves it.
 *
 * Only addresses in `allow` are dialled (default: the local PostgreSQL), so the helper is
 * never an open relay. It listens on 127.0.0.1 on a free port.
 */
import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

export interface NeonWsProxy {
  /** For `neonConfig.wsProxy` (db/client.ts `neon.wsProxy`): the driver appends `?address=host:port`. */
  readonly wsProxy: string;
  readonly port: number;
  /** Every `host:port` the driver asked for, in order (one per WebSocket connection). */
  readonly addresses: string[];
  /** WebSocket connections currently open. */
  openConnections(): number;
  /** Stops listening and drops every open connection (the "proxy is down" case). */
  close(): Promise<void>;
}

export async function startNeonWsProxy(options: { allow?: string[] } = {}): Promise<NeonWsProxy> {
  const allow = new Set(options.allow ?? ["127.0.0.1:5432", "localhost:5432"]);
  const addresses: string[] = [];
  const open = new Set<{ ws: WebSocket; tcp: Socket }>();

  const server: Server = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("WebSocket upgrade required");
  });
  const wss = new WebSocketServer({ server, path: "/v2" });

  wss.on("connection", (ws, req) => {
    const address = new URL(req.url ?? "/", "http://proxy").searchParams.get("address") ?? "";
    addresses.push(address);
    const match = /^(.+):(\d+)$/.exec(address);
    if (!match || !allow.has(address)) {
      ws.close(1008, "address not allowed");
      return;
    }
    const tcp = connect({ host: match[1]!, port: Number(match[2]) });
    tcp.setNoDelay(true);
    const pair = { ws, tcp };
    open.add(pair);
    // Bytes from the driver may arrive before the TCP connection is up: net buffers them.
    ws.on("message", (data) => {
      tcp.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    });
    tcp.on("data", (chunk) => {
      if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
    });
    const closeBoth = () => {
      open.delete(pair);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
    };
    tcp.on("error", closeBoth);
    tcp.on("close", closeBoth);
    ws.on("close", closeBoth);
    ws.on("error", closeBoth);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    wsProxy: `127.0.0.1:${port}/v2`,
    port,
    addresses,
    openConnections: () => open.size,
    async close() {
      if (!server.listening) return;
      for (const { ws, tcp } of open) {
        ws.terminate();
        tcp.destroy();
      }
      open.clear();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
