/**
 * Generation overhead: POST /api/blog/generate through the bench server, with the fake Gemini
 * and Exa upstreams at a fixed latency, timing each event of the stream as the client sees
 * it. What is left after subtracting the upstreams' own latency is ours (auth, rate limit,
 * key resolution, SDK setup, prompt building, streaming, usage metering).
 */
import { quantile } from "./load.js";

export interface GenerationTimings {
  /** ms from sending the request. */
  headers?: number;
  firstEvent?: number;
  researchStart?: number;
  researchEnd?: number;
  sources?: number;
  firstDelta?: number;
  done?: number;
  end: number;
  deltas: number;
  researchOutcome?: string;
  error?: string;
}

export interface GenerationSummary {
  research: boolean;
  runs: number;
  /** Critical-path upstream latency before the first delta / before done, ms. */
  upstreamToFirstDelta: number;
  upstreamToDone: number;
  /** Medians and maxima, ms. */
  firstDeltaMs: number;
  doneMs: number;
  endMs: number;
  overheadFirstDeltaMs: number;
  overheadFirstDeltaMaxMs: number;
  overheadDoneMs: number;
  overheadDoneMaxMs: number;
  /** Research wall time (start to outcome status), median, and the searches' summed latency. */
  researchWallMs?: number;
  researchSumMs?: number;
  searches?: number;
  researchOutcome?: string;
  deltas: number;
  /** Where our overhead sits (medians, ms): before the first event (auth, rate limit, keys, module
   * loading), in research beyond one search's latency, and from the research outcome to the first
   * delta beyond Gemini's first-chunk latency (SDK set-up, prompt, connection). */
  firstEventMs: number;
  /** Response headers (auth, rate limit, key resolution done), median ms. */
  headersMs: number;
  researchOverheadMs?: number;
  writingOverheadMs: number;
}

export async function timeGeneration(options: { baseUrl: string; token: string; body: unknown }): Promise<GenerationTimings> {
  const start = performance.now();
  const since = () => performance.now() - start;
  const response = await fetch(`${options.baseUrl}/api/blog/generate`, {
    method: "POST",
    headers: { authorization: `Bearer ${options.token}`, "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(options.body),
  });
  const timings: GenerationTimings = { end: 0, deltas: 0, headers: since() };
  if (response.status !== 200 || !response.body) {
    timings.error = `status ${response.status}: ${(await response.text()).slice(0, 300)}`;
    timings.end = since();
    return timings;
  }
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    const now = since();
    buffer += decoder.decode(chunk, { stream: true });
    let boundary: number;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const dataText = /^data: (.*)$/m.exec(block)?.[1];
      if (!event) continue;
      timings.firstEvent ??= now;
      const data = dataText ? (JSON.parse(dataText) as Record<string, unknown>) : {};
      if (event === "status" && data.phase === "research") {
        if (data.research === undefined) timings.researchStart ??= now;
        else {
          timings.researchEnd ??= now;
          timings.researchOutcome = String(data.research);
        }
      } else if (event === "sources") timings.sources ??= now;
      else if (event === "delta") {
        timings.firstDelta ??= now;
        timings.deltas += 1;
      } else if (event === "done") timings.done ??= now;
      else if (event === "error") timings.error = JSON.stringify(data).slice(0, 300);
    }
  }
  timings.end = since();
  return timings;
}

export function summarizeGeneration(
  research: boolean,
  samples: GenerationTimings[],
  upstream: { exaMs: number; searches: number; geminiMs: number; chunks: number },
): GenerationSummary {
  const med = (values: number[]) => quantile(Float64Array.from(values).sort(), 0.5);
  const max = (values: number[]) => Math.max(...values);
  const researchMs = research ? upstream.exaMs : 0;
  const upstreamToFirstDelta = researchMs + upstream.geminiMs;
  const upstreamToDone = researchMs + upstream.geminiMs * upstream.chunks;
  const firstDelta = samples.map((s) => s.firstDelta ?? NaN);
  const done = samples.map((s) => s.done ?? NaN);
  const summary: GenerationSummary = {
    research,
    runs: samples.length,
    upstreamToFirstDelta,
    upstreamToDone,
    firstDeltaMs: med(firstDelta),
    doneMs: med(done),
    endMs: med(samples.map((s) => s.end)),
    overheadFirstDeltaMs: med(firstDelta) - upstreamToFirstDelta,
    overheadFirstDeltaMaxMs: max(firstDelta) - upstreamToFirstDelta,
    overheadDoneMs: med(done) - upstreamToDone,
    overheadDoneMaxMs: max(done) - upstreamToDone,
    deltas: samples[0]?.deltas ?? 0,
    firstEventMs: med(samples.map((s) => s.firstEvent ?? NaN)),
    headersMs: med(samples.map((s) => s.headers ?? NaN)),
    writingOverheadMs: med(samples.map((s) => (s.firstDelta ?? NaN) - (s.researchEnd ?? s.firstEvent ?? NaN) - upstream.geminiMs)),
  };
  if (research) {
    summary.researchWallMs = med(samples.map((s) => (s.researchEnd ?? NaN) - (s.researchStart ?? NaN)));
    summary.researchSumMs = upstream.exaMs * upstream.searches;
    summary.researchOverheadMs = (summary.researchWallMs ?? NaN) - upstream.exaMs;
    summary.searches = upstream.searches;
    summary.researchOutcome = samples[0]?.researchOutcome;
  }
  return summary;
}
