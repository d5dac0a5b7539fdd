/**
 * Shared machinery of the fake upstreams (`gemini.ts`, `exa.ts`): a node:http server on
 * 127.0.0.1:0 that records every request with the key it carried, resolves a failure mode
 * per key (or globally), and counts requests still open so a test can prove an abort really
 * closed the upstream connection.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How the fake answers. Per-key modes override the global one. */
export interface FakeMode {
  /**
   * Answer with this HTTP status and the provider's error body. Gemini's named answers:
   * "invalid-key" (400 API_KEY_INVALID), "key-type-unsupported" (401 ACCESS_TOKEN_TYPE_UNSUPPORTED),
   * "service-blocked" (403 API_KEY_SERVICE_BLOCKED), "unrestricted-key" (a bare 403).
   */
  fail?: number | "invalid-key" | "key-type-unsupported" | "service-blocked" | "unrestricted-key";
  /** With `fail: 429`: seconds advertised (Gemini: RetryInfo.retryDelay; Exa: Retry-After). Omitted: none advertised. */
  retryAfterSeconds?: number;
  /** Delay before the response starts and before each streamed chunk. */
  latencyMs?: number;
  /** Accept the request and never answer. */
  hang?: boolean;
  /** Streams only: send this many chunks, then stall without ending. */
  hangAfterChunks?: number;
  /** Hold every request until this settles, then answer as the rest of the mode says (tests: hold calls in flight). */
  holdUntil?: Promise<unknown>;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  /** The key the request carried in the provider's key header (undefined when absent). */
  apiKey: string | undefined;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined when empty). */
  body: unknown;
}

export interface FakeUpstream {
  /** Base URL, e.g. http://127.0.0.1:54321 */
  url: string;
  requests: RecordedRequest[];
  /** Sets the mode for requests carrying `key`, or for every key without its own mode. */
  setMode(mode: FakeMode, key?: string): void;
  /** Forgets modes and recorded requests. */
  reset(): void;
  /** Requests whose response has not finished and whose connection is still open. */
  inFlight(): number;
  /** Resolves once `inFlight()` is 0; rejects after `timeoutMs`. */
  waitForIdle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** What a provider-specific handler gets for one request. */
export interface FakeExchange {
  request: RecordedRequest;
  mode: FakeMode;
  res: ServerResponse;
  /** True once the client went away. */
  closed(): boolean;
  /** Waits `ms` (0: no wait); resolves false when the client disconnected meanwhile. */
  pause(ms: number | undefined): Promise<boolean>;
  json(status: number, body: unknown, headers?: Record<string, string>): void;
}

export async function startFakeUpstream(options: {
  keyHeader: string;
  handle: (exchange: FakeExchange) => Promise<void> | void;
}): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  let globalMode: FakeMode = {};
  const keyModes = new Map<string, FakeMode>();
  let open = 0;
  const timers = new Set<ReturnType<typeof setTimeout>>();

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    open += 1;
    let closed = false;
    res.on("close", () => {
      closed = true;
      open -= 1;
    });
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://fake");
      const raw = Buffer.concat(chunks).toString("utf8");
      let body: unknown;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = raw;
      }
      const header = req.headers[options.keyHeader.toLowerCase()];
      const apiKey = Array.isArray(header) ? header[0] : header;
      const request: RecordedRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        apiKey,
        headers: req.headers,
        body,
      };
      requests.push(request);
      const mode = (apiKey !== undefined ? keyModes.get(apiKey) : undefined) ?? globalMode;
      const exchange: FakeExchange = {
        request,
        mode,
        res,
        closed: () => closed,
        pause: (ms) =>
          new Promise<boolean>((resolve) => {
            if (closed) return resolve(false);
            if (!ms || ms <= 0) return resolve(true);
            const onClose = () => {
              clearTimeout(timer);
              timers.delete(timer);
              resolve(false);
            };
            const timer = setTimeout(() => {
              timers.delete(timer);
              res.off("close", onClose);
              resolve(!closed);
            }, ms);
            timers.add(timer);
            res.once("close", onClose);
          }),
        json: (status, payload, headers = {}) => {
          if (closed) return;
          res.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers });
          res.end(JSON.stringify(payload));
        },
      };
      Promise.resolve(options.handle(exchange)).catch((error: unknown) => {
        if (!closed && !res.headersSent) exchange.json(500, { error: String(error) });
        else res.destroy();
      });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setMode(mode, key) {
      if (key === undefined) globalMode = mode;
      else keyModes.set(key, mode);
    },
    reset() {
      globalMode = {};
      keyModes.clear();
      requests.length = 0;
    },
    inFlight: () => open,
    async waitForIdle(timeoutMs = 2_000) {
      const deadline = Date.now() + timeoutMs;
      while (open > 0) {
        if (Date.now() > deadline) throw new Error(`fake upstream still has ${open} request(s) in flight`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
