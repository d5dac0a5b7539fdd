/**
 * `npx tsx scripts/fakes.ts`: the fake Gemini and Exa of the tests (testkit/fakes) on fixed local
 * ports, for running `npm start` (or a frontend) end to end without real keys or the internet.
 *
 *   npx tsx scripts/fakes.ts [--gemini-port 8787] [--exa-port 8788]
 *                            [--gemini-latency MS] [--exa-latency MS]
 *                            [--gemini-fail 401|403|429|500|invalid-key|hang] [--exa-fail 401|429|500|hang]
 *
 * Ports also come from FAKE_GEMINI_PORT / FAKE_EXA_PORT (flags win). The fakes listen on
 * ephemeral ports, so each fixed port is a plain TCP relay to its fake. Every request is
 * printed with the last four characters of the key it carried (never the key). Ctrl-C stops.
 *
 * A dev script, not part of the service: it reads process.env directly (lib/ never does).
 */
import { createServer, connect, type Server } from "node:net";
import { parseArgs } from "node:util";
import { startFakeGemini } from "../testkit/fakes/gemini.js";
import { startFakeExa } from "../testkit/fakes/exa.js";
import type { FakeMode, FakeUpstream, RecordedRequest } from "../testkit/fakes/index.js";

const { values: flags } = parseArgs({
  options: {
    "gemini-port": { type: "string" },
    "exa-port": { type: "string" },
    "gemini-latency": { type: "string" },
    "exa-latency": { type: "string" },
    "gemini-fail": { type: "string" },
    "exa-fail": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(
    "usage: npx tsx scripts/fakes.ts [--gemini-port 8787] [--exa-port 8788] [--gemini-latency MS] [--exa-latency MS]\n" +
      "                                [--gemini-fail 401|403|429|500|503|invalid-key|hang] [--exa-fail 401|402|429|500|hang]\n",
  );
  process.exit(0);
}

function port(name: "gemini" | "exa", fallback: number): number {
  const envName = `FAKE_${name.toUpperCase()}_PORT`;
  const raw = flags[`${name}-port`] ?? process.env[envName] ?? String(fallback);
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65_535) fail(`--${name}-port / ${envName} must be a port number, got "${raw}"`);
  return value;
}

function mode(latency: string | undefined, failure: string | undefined, name: string): FakeMode {
  const result: FakeMode = {};
  if (latency !== undefined) {
    const ms = Number(latency);
    if (!Number.isFinite(ms) || ms < 0) fail(`--${name}-latency must be milliseconds, got "${latency}"`);
    result.latencyMs = ms;
  }
  if (failure === "hang") result.hang = true;
  else if (failure === "invalid-key") result.fail = "invalid-key";
  else if (failure !== undefined) {
    const status = Number(failure);
    if (!Number.isInteger(status) || status < 400 || status > 599)
      fail(`--${name}-fail must be an HTTP error status, invalid-key or hang, got "${failure}"`);
    result.fail = status;
    if (status === 429) result.retryAfterSeconds = 30;
  }
  return result;
}

function fail(message: string): never {
  process.stderr.write(`fakes: ${message}\n`);
  process.exit(2);
}

/** Relays every connection on 127.0.0.1:`listenPort` to the fake's own port. */
function relay(listenPort: number, target: FakeUpstream): Promise<Server> {
  const targetPort = Number(new URL(target.url).port);
  const server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => resolve(server));
  });
}

/** Prints each request as it arrives, with a key hint only, and keeps the log bounded. */
function printRequests(name: string, fake: FakeUpstream): void {
  const push = fake.requests.push.bind(fake.requests);
  fake.requests.push = (...items: RecordedRequest[]) => {
    for (const r of items) {
      const hint = r.apiKey ? `…${r.apiKey.slice(-4)}` : "(no key)";
      const query = (r.body as { query?: unknown } | undefined)?.query;
      process.stdout.write(
        `${new Date().toISOString()} ${name.padEnd(6)} ${r.method} ${r.path}${r.query.alt ? `?alt=${r.query.alt}` : ""} key ${hint}` +
          (typeof query === "string" ? ` query=${JSON.stringify(query.slice(0, 60))}` : "") +
          "\n",
      );
    }
    const length = push(...items);
    if (fake.requests.length > 1_000) fake.requests.splice(0, fake.requests.length - 1_000);
    return length;
  };
}

async function main() {
  const geminiPort = port("gemini", 8787);
  const exaPort = port("exa", 8788);
  const [gemini, exa] = await Promise.all([startFakeGemini(), startFakeExa()]);
  gemini.setMode(mode(flags["gemini-latency"], flags["gemini-fail"], "gemini"));
  exa.setMode(mode(flags["exa-latency"], flags["exa-fail"], "exa"));
  printRequests("gemini", gemini);
  printRequests("exa", exa);

  let relays: Server[];
  try {
    relays = await Promise.all([relay(geminiPort, gemini), relay(exaPort, exa)]);
  } catch (error) {
    await Promise.all([gemini.close(), exa.close()]);
    fail(`could not listen: ${error instanceof Error ? error.message : String(error)} (choose others with --gemini-port/--exa-port)`);
  }

  process.stdout.write(
    [
      `fake Gemini on http://127.0.0.1:${geminiPort}  (streamGenerateContent, generateContent, models)`,
      `fake Exa    on http://127.0.0.1:${exaPort}  (search)`,
      "",
      "Point the service at them with:",
      `  GEMINI_BASE_URL=http://127.0.0.1:${geminiPort} EXA_BASE_URL=http://127.0.0.1:${exaPort}`,
      "",
      "Any well-formed key works (gemini: an AI Studio key, AQ. + 50 of [0-9A-Za-z_-]; standard AIza keys are refused as Google refuses them; exa: a UUID). Ctrl-C stops.",
      "",
    ].join("\n"),
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2_000).unref();
    await Promise.all(
      relays.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))).concat([gemini.close(), exa.close()]),
    );
    process.stdout.write("fakes stopped\n");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
