/**
 * Aborts and timeouts for upstream calls (Gemini, Exa, the Gemini key check), in one place.
 *
 * A call is cancelled by whichever comes first: the caller's signal (e.g. the client
 * disconnecting) or our timeout. The two must stay distinguishable: a timeout is an upstream
 * problem (504 `upstream-timeout`), a caller abort is not a problem at all and surfaces as a
 * plain AbortError that nothing maps or reports.
 */
import { AppError } from "../http/errors.js";

/** Why an upstream call's signal fired. */
export type AbortCause = "timeout" | "caller";

/** The error a caller's own abort surfaces as (not mapped to a problem). */
export function abortError(): Error {
  return new DOMException("The operation was aborted by the caller", "AbortError");
}

/** True for the error thrown when the caller's own signal aborted a call. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

export interface UpstreamCall {
  /** Give this to `fetch` or the SDK: fires on the caller's abort, our timeout, or `end(true)`. */
  readonly signal: AbortSignal;
  /** What fired `signal` first; undefined while it has not fired (or when `end` aborted it). */
  readonly abortedBy: AbortCause | undefined;
  /** Stops the clock, e.g. while the consumer holds a streamed chunk. */
  pause(): void;
  /** Restarts the clock with the full `timeoutMs` (the wait for the next chunk). */
  resume(): void;
  /** Stops the clock; with `abortRequest`, also aborts the request (early exit, error). */
  end(abortRequest: boolean): void;
}

/**
 * Starts the clock for one upstream call: the request signal is
 * `AbortSignal.any([callerSignal, ours])`, where ours fires from `AbortSignal.timeout(timeoutMs)`.
 * Without `pause`/`resume` that is a whole-call limit; a stream pauses while the consumer
 * holds a chunk and resumes before waiting for the next, so the limit applies to each wait
 * for the upstream to answer or send its next chunk (an inactivity limit), and the consumer's
 * own time does not count.
 *
 * The caller is told apart from the timeout by the signal's reason: `AbortSignal.any` keeps
 * the reason of the signal that fired first. `AbortSignal.timeout` timers are unref'd, so an
 * abandoned one never keeps the process alive (unlike the Gemini SDK's own `timeout` option).
 *
 * Throws an AbortError at once when `callerSignal` is already aborted.
 */
export function upstreamCall(callerSignal: AbortSignal | undefined, timeoutMs: number): UpstreamCall {
  if (callerSignal?.aborted) throw abortError();
  const ours = new AbortController();
  const signal = callerSignal ? AbortSignal.any([callerSignal, ours.signal]) : ours.signal;
  let clock: AbortSignal | undefined;
  let timedOut = false;
  const onTimeout = () => {
    if (signal.aborted) return;
    timedOut = true;
    ours.abort(clock?.reason);
  };
  const pause = () => {
    clock?.removeEventListener("abort", onTimeout);
    clock = undefined;
  };
  const resume = () => {
    pause();
    clock = AbortSignal.timeout(timeoutMs);
    clock.addEventListener("abort", onTimeout, { once: true });
  };
  resume();
  return {
    signal,
    get abortedBy() {
      if (!signal.aborted) return undefined;
      if (callerSignal?.aborted && signal.reason === callerSignal.reason) return "caller";
      return timedOut ? "timeout" : undefined;
    },
    pause,
    resume,
    end(abortRequest) {
      pause();
      if (abortRequest && !signal.aborted) ours.abort();
    },
  };
}

/**
 * What an aborted call throws, whatever the SDK or `fetch` wrapped the abort in: an
 * AbortError for the caller's abort, `upstream-timeout` for ours; undefined when the call
 * was not aborted (then the provider maps the failure itself).
 */
export function abortFailure(abortedBy: AbortCause | undefined, provider: "gemini" | "exa", timeoutMs: number): Error | undefined {
  if (abortedBy === "caller") return abortError();
  if (abortedBy === "timeout") {
    return new AppError("upstream-timeout", {
      detail: `${provider} did not respond within ${timeoutMs} ms; try again`,
      extra: { provider },
    });
  }
  return undefined;
}
