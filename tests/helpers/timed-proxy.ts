/**
 * A transparent HTTP proxy in front of a fake upstream that stamps when each request
 * arrived and when its response finished (the fakes record requests but not times). Tests
 * use the stamps to prove calls overlapped, without asserting on wall-clock totals.
 * A client that goes away closes the forwarded request too, so the fake's `inFlight()`
 * still tells whether an abort reached the upstream.
 */
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";

export interface TimedExchange {
  method: string;
  path: string;
  /** performance.now() when the request's headers arrived. */
  startedAt: number;
  /** performance.now() when the upstream response ended; undefined if it never did. */
  endedAt: number | undefined;
  status: number | undefined;
}

export interface TimedProxy {
  url: string;
  exchanges: TimedExchange[];
  close(): Promise<void>;
}

export async function startTimedProxy(target: string): Promise<TimedProxy> {
  const upstream = new URL(target);
  const exchanges: TimedExchange[] = [];
  const server = createServer((req, res) => {
    const exchange: TimedExchange = {
      method: req.method ?? "GET",
      path: (req.url ?? "/").split("?")[0] ?? "/",
      startedAt: performance.now(),
      endedAt: undefined,
      status: undefined,
    };
    exchanges.push(exchange);
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        exchange.status = answer.statusCode;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on("end", () => {
          exchange.endedAt = performance.now();
        });
      },
    );
    forward.on("error", () => res.destroy());
    res.on("close", () => {
      if (!res.writableFinished) forward.destroy();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
