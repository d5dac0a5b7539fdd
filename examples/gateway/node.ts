/**
 * The gateway from a Node backend, with the unchanged official SDKs (docs/gateway.md):
 * `@google/generative-ai` pointed at `<BYOK_URL>/api/gateway/gemini`, `exa-js` at
 * `<BYOK_URL>/api/gateway/exa`. The SDKs get a placeholder key: the service adds the user's own.
 *
 *   npx tsx examples/gateway/node.ts                     # npm start (development: your .env keys)
 *   BYOK_URL=https://your-app BYOK_TOKEN=<Clerk session token> npx tsx examples/gateway/node.ts
 *   BYOK_URL=https://your-app BYOK_SERVICE_CREDENTIAL=bks_… BYOK_USER=user_… npx tsx examples/gateway/node.ts
 *
 * tests/gateway/examples.happy.test.ts runs `runExample` against the app and the fake upstreams.
 */
import { GoogleGenerativeAI } from "@google/generative-ai";
import { Exa } from "exa-js";

export interface ExampleOptions {
  /** Where the service runs, e.g. https://your-app.example.com */
  baseUrl: string;
  /** The user's Clerk session token, or a gateway service credential (then `actsFor`). */
  bearer?: string;
  /** With a service credential: the user whose key pays. */
  actsFor?: string;
  model?: string;
}

/** The headers that say who is calling (none in development without sign-in). */
export function gatewayHeaders(options: ExampleOptions): Record<string, string> {
  return {
    ...(options.bearer ? { Authorization: `Bearer ${options.bearer}` } : {}),
    ...(options.actsFor ? { "x-byok-user": options.actsFor } : {}),
  };
}

export async function runExample(options: ExampleOptions, write: (text: string) => void = (t) => process.stdout.write(t)) {
  const headers = gatewayHeaders(options);
  const model = new GoogleGenerativeAI("unused-the-service-adds-the-key").getGenerativeModel(
    { model: options.model ?? "gemini-3.5-flash" },
    { baseUrl: `${options.baseUrl}/api/gateway/gemini`, customHeaders: headers },
  );
  const streamed = await model.generateContentStream({
    contents: [{ role: "user", parts: [{ text: "Write a one-line tagline for an app whose users bring their own AI keys." }] }],
    generationConfig: { maxOutputTokens: 256 },
  });
  let text = "";
  for await (const chunk of streamed.stream) {
    text += chunk.text();
    write(chunk.text());
  }
  write("\n");

  const exa = new Exa("unused-the-service-adds-the-key", `${options.baseUrl}/api/gateway/exa`);
  // exa-js takes no extra headers as an option; its request headers are a Headers object.
  const exaHeaders = exa["headers"] as Headers;
  for (const [name, value] of Object.entries(headers)) exaHeaders.set(name, value);
  const search = await exa.search("bring your own key AI apps", { numResults: 3, contents: { highlights: { maxCharacters: 200 } } });
  for (const result of search.results) write(`- ${result.title ?? result.url} (${result.url})\n`);
  return { text, results: search.results.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // An example reads its own settings; the service itself reads only lib/platform/env.ts.
  const env = process.env;
  await runExample({
    baseUrl: env.BYOK_URL ?? "http://localhost:3000",
    bearer: env.BYOK_SERVICE_CREDENTIAL ?? env.BYOK_TOKEN,
    actsFor: env.BYOK_SERVICE_CREDENTIAL ? env.BYOK_USER : undefined,
  });
}
