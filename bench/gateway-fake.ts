/**
 * The fake Gemini (testkit/fakes/gemini.ts) in its own process for `npm run bench:gateway`
 * (bench/gateway.ts forks it), so its work is not done on the event loop of the client or of
 * the gateway, as the real Gemini's is not.
 *
 * IPC: `{type: "listening", port}` once it serves; `{type: "hold"}` holds every request from
 * then on and answers `{type: "seen"}` when the next one arrives; `{type: "release"}` lets the
 * held ones go and stops holding; `{type: "reset"}` forgets recorded requests and bills;
 * `{type: "stop"}` ends it.
 */
import { startFakeGemini } from "../testkit/fakes/gemini.js";

async function main(): Promise<void> {
  const gemini = await startFakeGemini();
  process.send?.({ type: "listening", port: Number(new URL(gemini.url).port) });
  let release: (() => void) | undefined;
  let watch: ReturnType<typeof setInterval> | undefined;
  const stop = () => {
    release?.();
    void gemini.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3_000).unref();
  };
  process.on("message", (message: { type?: string }) => {
    switch (message?.type) {
      case "hold": {
        const seen = gemini.requests.length;
        gemini.setMode({ holdUntil: new Promise<void>((resolve) => (release = resolve)) });
        watch = setInterval(() => {
          if (gemini.requests.length === seen) return;
          clearInterval(watch);
          process.send?.({ type: "seen" });
        }, 1);
        break;
      }
      case "release":
        clearInterval(watch);
        gemini.setMode({});
        release?.();
        release = undefined;
        break;
      case "reset":
        gemini.reset();
        break;
      case "stop":
        stop();
        break;
    }
  });
  process.on("SIGTERM", stop);
  process.on("disconnect", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`fake gemini failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
