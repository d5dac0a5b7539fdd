/**
 * One load run with autocannon, with latencies kept at full resolution: autocannon's own
 * histogram stores whole milliseconds, useless for sub-millisecond differences, so every
 * response time (a float in ms, from process.hrtime) is recorded here from its `response`
 * event instead.
 */
import autocannon, { type AutocannonRequest } from "autocannon";

export interface LoadOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:1234 */
  baseUrl: string;
  path: string;
  connections: number;
  /** Seconds. */
  duration: number;
  /** Bearer tokens to cycle through (one prebuilt request each); none: no Authorization header. */
  tokens?: readonly string[];
}

export interface LoadResult {
  path: string;
  connections: number;
  /** Completed 2xx responses. */
  requests: number;
  /** 2xx responses per second over the measured wall time. */
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  /** Non-2xx responses, connection errors and timeouts: any of these makes a run invalid. */
  non2xx: number;
  errors: number;
  /** Status codes seen other than 2xx (for the loud failure message). */
  badStatuses: Record<string, number>;
  seconds: number;
  /** Every 2xx latency, ms, sorted ascending. */
  samples: Float64Array;
}

/** The q-quantile (0..1) of sorted values, nearest-rank. */
export function quantile(sorted: Float64Array | readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const requests: AutocannonRequest[] =
    options.tokens && options.tokens.length > 0
      ? options.tokens.map((token) => ({ method: "GET", path: options.path, headers: { authorization: `Bearer ${token}` } }))
      : [{ method: "GET", path: options.path }];

  let buffer = new Float64Array(1 << 16);
  let count = 0;
  let non2xx = 0;
  const badStatuses: Record<string, number> = {};
  let started = 0;

  const result = await new Promise<{ errors: number; timeouts: number; seconds: number }>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.baseUrl,
        connections: options.connections,
        duration: options.duration,
        timeout: 10,
        requests,
      },
      (error, res) => {
        const seconds = (performance.now() - started) / 1000;
        if (error) reject(error);
        else resolve({ errors: res.errors, timeouts: res.timeouts, seconds });
      },
    );
    started = performance.now();
    instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) {
        if (count === buffer.length) {
          const bigger = new Float64Array(buffer.length * 2);
          bigger.set(buffer);
          buffer = bigger;
        }
        buffer[count++] = responseTime;
      } else {
        non2xx += 1;
        badStatuses[statusCode] = (badStatuses[statusCode] ?? 0) + 1;
      }
    });
  });

  const sorted = buffer.subarray(0, count).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    path: options.path,
    connections: options.connections,
    requests: count,
    rps: count / result.seconds,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    mean: count > 0 ? sum / count : NaN,
    non2xx,
    errors: result.errors + result.timeouts,
    badStatuses,
    seconds: result.seconds,
    samples: sorted,
  };
}
