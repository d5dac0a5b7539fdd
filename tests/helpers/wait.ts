/** Polling for state a test cannot await directly (a background settlement, a log line, a fake's counters). */

export interface WaitOptions {
  /** Give up after this long (default 20 s). */
  timeoutMs?: number;
  /** Pause between checks (default 5 ms). */
  intervalMs?: number;
}

/**
 * Polls state (never time) until `condition` holds; fails with `what` (a description, or a
 * function that describes the state at the deadline) once `timeoutMs` has passed.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string | (() => string),
  { timeoutMs = 20_000, intervalMs = 5 }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition never held: ${typeof what === "string" ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
