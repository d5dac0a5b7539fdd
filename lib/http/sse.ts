/**
 * Server-Sent Events from an async generator of `{event, data}`. An AppError thrown by the
 * generator becomes a final `error` event carrying the problem; a client that goes away
 * (stream cancelled or request aborted) aborts `controller`, which the producer passes to
 * its upstream calls, so nothing keeps running (or billing the user) after a disconnect.
 */
import { AppError } from "./errors.js";
import { problemBody } from "./problem.js";
import type { Logger } from "../platform/log.js";

export interface SseEvent {
  event: string;
  data: unknown;
}

const encoder = new TextEncoder();
const HEARTBEAT_MS = 15_000;

export function encodeSse(event: string, data: unknown): Uint8Array {
  return encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export function sseResponse(
  produce: (signal: AbortSignal) => AsyncGenerator<SseEvent, void, undefined>,
  options: { requestSignal?: AbortSignal; requestId: string; logger: Logger },
): Response {
  const controller = new AbortController();
  const abort = () => controller.abort();
  // A client that left while the handler was still preparing: an abort listener would never fire.
  if (options.requestSignal?.aborted) controller.abort();
  else options.requestSignal?.addEventListener("abort", abort, { once: true });
  const events = produce(controller.signal);
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const stop = () => {
    if (heartbeat) clearInterval(heartbeat);
    options.requestSignal?.removeEventListener("abort", abort);
  };

  const body = new ReadableStream<Uint8Array>({
    start(stream) {
      // Comments keep proxies from closing a quiet connection during research.
      heartbeat = setInterval(() => {
        try {
          stream.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          stop();
        }
      }, HEARTBEAT_MS);
      heartbeat.unref?.();
    },
    async pull(stream) {
      try {
        const next = await events.next();
        if (next.done) {
          stop();
          stream.close();
          return;
        }
        stream.enqueue(encodeSse(next.value.event, next.value.data));
      } catch (error) {
        stop();
        if (controller.signal.aborted) {
          options.logger.info("client went away; upstream calls aborted");
          try {
            stream.close();
          } catch {
            /* already cancelled */
          }
          return;
        }
        const appError =
          error instanceof AppError
            ? error
            : new AppError("internal-error", {
                detail: `an unexpected error occurred; quote request id ${options.requestId} when reporting it`,
              });
        if (!(error instanceof AppError)) {
          options.logger.error("stream failed", { errorName: error instanceof Error ? error.name : typeof error });
        }
        stream.enqueue(encodeSse("error", { problem: problemBody(appError, options.requestId) }));
        stream.close();
      }
    },
    async cancel() {
      stop();
      controller.abort();
      await events.return(undefined).catch(() => {});
    },
  });

  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    },
  });
}
