/**
 * Shared machinery of the fake upstreams (`gemini.ts`, `exa.ts`): a node:http server on
 * 127.0.0.1:0 that records every request with the key it carried, resolves a failure mode
 * per key (or globally), counts requests still open so a test can prove an abort really
 * closed the upstream connection, and keeps the provider's bill: what the real provider
 * would charge each key for the calls it took (`billed`, `billedUsd(key)`), so a test can
 * hold the service's recorded spend against it.
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
  /**
   * Streams with `hangAfterChunks`: once this settles, send the rest of the stream (a stall
   * that ends) instead of stalling for good. A client that left meanwhile gets nothing more.
   */
  resumeWhen?: Promise<unknown>;
}

/**
 * One call as the provider bills it. Entries are live: a stream's grows as its chunks are
 * sent, and `cutOff` turns true when the client goes away before the answer ended.
 */
export interface BilledCall {
  /** The key billed (the one the request carried). */
  key: string;
  /** e.g. "search", "streamGenerateContent". */
  operation: string;
  model?: string;
  /** Tokens billed at the input rate. */
  inputTokens?: number;
  /** Tokens billed at the output rate: thinking included, visible output as far as it was sent. */
  outputTokens?: number;
  /** What the provider charges for this call so far. */
  usd: number;
  /** The client went away before the answer was complete (the call is billed all the same). */
  cutOff: boolean;
}

/** What a handler bills: a BilledCall without its key and cut-off flag (the fake sets those). */
export type Bill = Omit<BilledCall, "key" | "cutOff">;

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
  /** True until the response finished or the client went away (what `inFlight()` counts, per request). */
  open: boolean;
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
  /** Every call the provider billed, in the order it took them (`reset()` forgets them). */
  billed: BilledCall[];
  /** USD billed to `key` (every key when omitted) by the calls in `billed`. */
  billedUsd(key?: string): number;
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
  /**
   * Bills this call to the key it carried (nothing without a key) and returns the live entry,
   * which the handler may update as it sends more (a stream's output tokens and cost).
   */
  bill(bill: Bill): BilledCall | undefined;
}

export async function startFakeUpstream(options: {
  keyHeader: string;
  handle: (exchange: FakeExchange) => Promise<void> | void;
}): Promise<FakeUpstream> {
  const requests: RecordedRequest[] = [];
  const billed: BilledCall[] = [];
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
        open: !closed,
      };
      res.once("close", () => (request.open = false));
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
        bill: (bill) => {
          if (apiKey === undefined || apiKey === "") return undefined;
          const entry: BilledCall = { key: apiKey, ...bill, cutOff: closed };
          billed.push(entry);
          // Gone before the whole answer was written: billed all the same, marked cut off.
          if (!closed) res.once("close", () => (entry.cutOff ||= !res.writableFinished));
          return entry;
        },
      };
      Promise.resolve(options.handle(exchange)).catch((error: unknown) => {
        if (!closed && !res.headersSent) exchange.json(500, { error: String(error) });
        else res.destroy();
      });
    });
  });

  // Google's and Exa's front ends keep an idle connection open far longer than fetch (undici)
  // keeps it (4 s), so the client is always the one to close it. Node's default here (5 s) would
  // let a worker stalled for seconds see the server close a socket its next fetch picks up: a
  // "could not reach" no real upstream causes.
  server.keepAliveTimeout = 60_000;
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
      billed.length = 0;
    },
    inFlight: () => open,
    billed,
    billedUsd: (key) => billed.filter((call) => key === undefined || call.key === key).reduce((sum, call) => sum + call.usd, 0),
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
