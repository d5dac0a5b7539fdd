/**
 * The gateway drives the unchanged Vercel AI SDK (`ai` 6 with `@ai-sdk/google` 3, what
 * CopilotKit's v2 Built-in Agent runs on) to the fake Gemini, over real HTTP: the provider's
 * `baseURL` points at /api/gateway/gemini/v1beta, its `headers` carry the caller's
 * Authorization, and its `apiKey` is a placeholder the gateway never forwards. Two users at
 * once: each upstream call carries its own user's stored key, text comes back, usage and
 * spend land on the right user. Function calling: the AI SDK's tools (zod input schemas)
 * reach Gemini as functionDeclarations, the fake's functionCall comes back as the AI SDK's
 * tool call, and a tool loop (a server-side tool, as the Built-in Agent runs with maxSteps)
 * sends the function's result back through the gateway. A service credential naming the user
 * works the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APICallError, generateText, stepCountIs, streamText, tool } from "ai";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { z } from "zod";
import { sql } from "drizzle-orm";
import { backends, backendLabel, type TestDatabase } from "../helpers/db.js";
import { makeRuntime, type TestRuntime } from "../helpers/runtime.js";
import { useFakeUpstreams } from "../helpers/upstreams.js";
import { issueCredential } from "../../lib/gateway/credentials.js";
import { FAKE_THOUGHT_SIGNATURE } from "../../testkit/fakes/gemini.js";
import { auditRows, authHeaders, ledger, serveApp, usageRows, type Served, newUser as newGatewayUser, settled } from "./gateway-kit.js";

/** What the AI SDK is given as its key (sent as x-goog-api-key): the gateway must never forward it nor log it. */
const AI_SDK_PLACEHOLDER_KEY = "ignored-ai-sdk-placeholder-key-0002";

/** `@ai-sdk/google`, unchanged: base URL, placeholder key, the caller's auth headers. */
function aiSdkModel(baseUrl: string, headers: Record<string, string>, model = "gemini-3.5-flash") {
  const google = createGoogleGenerativeAI({
    baseURL: `${baseUrl}/api/gateway/gemini/v1beta`,
    apiKey: AI_SDK_PLACEHOLDER_KEY,
    headers,
  });
  return google(model);
}

/** A tool as CopilotKit's frontend or server tools become for the AI SDK: a zod input schema. */
const lookupTool = {
  description: "Look up what a topic's keys are used for",
  inputSchema: z.object({ topic: z.string().describe("the topic"), limit: z.number().int().optional() }),
};

interface DeclaredFunction {
  name: string;
  description?: string;
  parameters?: { type?: string; properties?: Record<string, unknown>; required?: string[] };
}

function declaredFunctions(body: unknown): DeclaredFunction[] {
  const tools = (body as { tools?: Array<{ functionDeclarations?: DeclaredFunction[] }> }).tools ?? [];
  return tools.flatMap((t) => t.functionDeclarations ?? []);
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`gateway with the Vercel AI SDK (@ai-sdk/google) ${backendLabel(backend)}`, () => {
    const { gemini } = useFakeUpstreams({ resetEach: true });
    let database: TestDatabase;
    let rt: TestRuntime;
    let served: Served;

    beforeAll(async () => {
      database = await backend.open();
      rt = makeRuntime({
        database,
        mode: "production",
        env: { GEMINI_BASE_URL: gemini.url, RATE_LIMIT_GATEWAY_PER_MINUTE: "1000" },
      });
      served = await serveApp(rt);
    });
    afterAll(async () => {
      await served?.close();
      rt?.cleanup();
      await database?.destroy();
    });

    const newUser = (seed: number) => newGatewayUser(rt, "user_aisdk", seed, ["gemini"]);

    /** No upstream request carried the placeholder or the caller's credentials; no log line holds a key. */
    const expectNothingForwardedButTheKeys = (secrets: string[]) => {
      for (const r of gemini.requests) {
        expect(r.apiKey).not.toBe(AI_SDK_PLACEHOLDER_KEY);
        expect(JSON.stringify(r.headers)).not.toContain(AI_SDK_PLACEHOLDER_KEY);
        expect(r.headers.authorization).toBeUndefined();
        expect(r.headers["x-byok-user"]).toBeUndefined();
      }
      const logs = rt.logs.join("\n");
      for (const secret of [AI_SDK_PLACEHOLDER_KEY, ...secrets]) expect(logs).not.toContain(secret);
    };

    /** generateText and streamText for one caller. */
    async function bothCalls(headers: Record<string, string>) {
      const model = aiSdkModel(served.url, headers);
      const whole = await generateText({ model, prompt: "Write about keys that never leave the vault", maxOutputTokens: 512 });
      const streamed = streamText({ model, system: "You write short articles.", prompt: "Write about keys again" });
      let text = "";
      for await (const delta of streamed.textStream) text += delta;
      return { whole, text, streamedUsage: await streamed.usage, streamedFinish: await streamed.finishReason };
    }

    it("two users at once: generateText and streamText each reach Gemini with their own user's key, never the SDK's; usage and spend land on the right user", async () => {
      const a = await newUser(24_001);
      const b = await newUser(24_002);
      const [ra, rb] = await Promise.all([bothCalls(authHeaders(a.token)), bothCalls(authHeaders(b.token))]);
      for (const r of [ra, rb]) {
        expect(r.whole.text).toBe(gemini.expectedText);
        expect(r.whole.finishReason).toBe("stop");
        expect(r.text).toBe(gemini.expectedText);
        expect(r.streamedFinish).toBe("stop");
      }

      // The paths the AI SDK asked for, as Gemini got them (the gateway strips its own prefix).
      expect(gemini.requests.map((r) => `${r.method} ${r.path}${r.query.alt ? `?alt=${r.query.alt}` : ""}`).sort()).toEqual(
        [
          "POST /v1beta/models/gemini-3.5-flash:generateContent",
          "POST /v1beta/models/gemini-3.5-flash:generateContent",
          "POST /v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse",
          "POST /v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse",
        ].sort(),
      );
      // Each user's two calls with that user's key, and only the two stored keys upstream.
      const keys = gemini.requests.map((r) => r.apiKey);
      expect(new Set(keys)).toEqual(new Set([a.keys.gemini, b.keys.gemini]));
      for (const key of [a.keys.gemini, b.keys.gemini]) expect(keys.filter((k) => k === key)).toHaveLength(2);
      // The AI SDK's own body reaches Gemini: its maxOutputTokens, its system instruction.
      const whole = gemini.requests.filter((r) => r.path.endsWith(":generateContent"));
      for (const r of whole)
        expect((r.body as { generationConfig?: { maxOutputTokens?: number } }).generationConfig?.maxOutputTokens).toBe(512);
      const streams = gemini.requests.filter((r) => r.path.endsWith(":streamGenerateContent"));
      for (const r of streams)
        expect(JSON.stringify((r.body as { systemInstruction?: unknown }).systemInstruction)).toContain("short articles");
      expectNothingForwardedButTheKeys([a.keys.gemini, b.keys.gemini, a.token, b.token]);

      for (const [user, result] of [
        [a, ra],
        [b, rb],
      ] as const) {
        await settled(database, user.userId);
        const audit = await auditRows(database, user.userId);
        expect(audit.map((row) => `${row.caller} ${row.operation} ${row.model} ${row.outcome} ${row.upstream_status}`).sort()).toEqual(
          ["session generateContent gemini-3.5-flash ok 200", "session streamGenerateContent gemini-3.5-flash ok 200"].sort(),
        );
        const usage = await usageRows(database, user.userId);
        expect(usage.map((u) => `${u.provider} ${u.operation} ${u.model} ${u.partial}`).sort()).toEqual(
          ["gemini generateContent gemini-3.5-flash false", "gemini streamGenerateContent gemini-3.5-flash false"].sort(),
        );
        // The tokens the user is charged for are the ones the AI SDK reported to the caller.
        const tokens = await usageTokens(user.userId);
        expect(tokens.generateContent).toEqual({ input: result.whole.usage.inputTokens, output: result.whole.usage.outputTokens });
        expect(tokens.streamGenerateContent).toEqual({
          input: result.streamedUsage.inputTokens,
          output: result.streamedUsage.outputTokens,
        });
        // Spend: exactly what the fake billed this user's key; nothing left reserved.
        const { spentUsd, reservedUsd } = await ledger(database, user.userId);
        expect(reservedUsd).toBe(0);
        expect(spentUsd).toBeGreaterThan(0);
        expect(spentUsd).toBeCloseTo(gemini.billedUsd(user.keys.gemini), 7);
      }
    });

    async function usageTokens(userId: string): Promise<Record<string, { input: number; output: number }>> {
      const rows = await database.rows<{ operation: string; input_tokens: number; output_tokens: number }>(
        sql`select operation, input_tokens, output_tokens from usage_events where user_id = ${userId} order by id`,
      );
      return Object.fromEntries(rows.map((r) => [r.operation, { input: Number(r.input_tokens), output: Number(r.output_tokens) }]));
    }

    it("tools: a zod input schema reaches Gemini as a functionDeclaration, Gemini's functionCall comes back as the AI SDK's tool call, metered", async () => {
      const a = await newUser(24_003);
      const model = aiSdkModel(served.url, authHeaders(a.token));
      const result = await generateText({ model, prompt: "What are the keys of billing for?", tools: { lookupKeys: tool(lookupTool) } });

      expect(gemini.requests).toHaveLength(1);
      const [declared] = declaredFunctions(gemini.requests[0]!.body);
      expect(declared?.name).toBe("lookupKeys");
      expect(declared?.description).toBe(lookupTool.description);
      expect(declared?.parameters?.required).toEqual(["topic"]);
      expect(Object.keys(declared?.parameters?.properties ?? {}).sort()).toEqual(["limit", "topic"]);
      expect(gemini.requests[0]!.apiKey).toBe(a.keys.gemini);

      expect(result.finishReason).toBe("tool-calls");
      expect(result.toolCalls.map((c) => ({ name: c.toolName, input: c.input }))).toEqual([
        { name: "lookupKeys", input: { topic: "fake-topic" } },
      ]);
      await settled(database, a.userId);
      expect((await usageRows(database, a.userId)).map((u) => `${u.operation} ${u.partial}`)).toEqual(["generateContent false"]);
      expect((await ledger(database, a.userId)).spentUsd).toBeCloseTo(gemini.billedUsd(a.keys.gemini), 7);
      expectNothingForwardedButTheKeys([a.keys.gemini, a.token]);
    });

    it("a tool loop, streamed (the Built-in Agent's server tools with maxSteps): the function's result goes back through the gateway and the answer comes back", async () => {
      const a = await newUser(24_004);
      const model = aiSdkModel(served.url, authHeaders(a.token));
      const executed: unknown[] = [];
      const streamed = streamText({
        model,
        prompt: "What are the keys of billing for?",
        tools: {
          lookupKeys: tool({
            ...lookupTool,
            execute: async (input) => {
              executed.push(input);
              return { uses: ["invoices", "refunds"] };
            },
          }),
        },
        stopWhen: stepCountIs(3),
      });
      let text = "";
      for await (const delta of streamed.textStream) text += delta;

      expect(executed).toEqual([{ topic: "fake-topic" }]);
      expect(text).toBe(gemini.expectedText);
      expect((await streamed.steps).map((step) => step.finishReason)).toEqual(["tool-calls", "stop"]);

      // Two upstream calls with the user's key; the second replays Gemini's functionCall (with its
      // thought signature) and carries the function's result.
      expect(gemini.requests.map((r) => [r.path, r.apiKey])).toEqual([
        ["/v1beta/models/gemini-3.5-flash:streamGenerateContent", a.keys.gemini],
        ["/v1beta/models/gemini-3.5-flash:streamGenerateContent", a.keys.gemini],
      ]);
      const second = JSON.stringify(gemini.requests[1]!.body);
      expect(second).toContain('"functionCall"');
      expect(second).toContain(FAKE_THOUGHT_SIGNATURE);
      expect(second).toContain('"functionResponse"');
      expect(second).toContain("refunds");

      await settled(database, a.userId);
      expect((await usageRows(database, a.userId)).map((u) => `${u.operation} ${u.partial}`)).toEqual([
        "streamGenerateContent false",
        "streamGenerateContent false",
      ]);
      const { spentUsd, reservedUsd } = await ledger(database, a.userId);
      expect(reservedUsd).toBe(0);
      expect(spentUsd).toBeCloseTo(gemini.billedUsd(a.keys.gemini), 7);
      expectNothingForwardedButTheKeys([a.keys.gemini, a.token]);
    });

    it("the call settings the Built-in Agent passes on (sampling, stop sequences, seed, tool choice) and Google's provider options are forwarded as sent", async () => {
      const a = await newUser(24_006);
      const model = aiSdkModel(served.url, authHeaders(a.token));
      // The AI SDK and Gemini name these settings alike: Gemini must receive them as they were given.
      const settings = {
        maxOutputTokens: 300,
        temperature: 0.3,
        topP: 0.9,
        topK: 40,
        presencePenalty: 0.1,
        frequencyPenalty: 0.2,
        stopSequences: ["END"],
        seed: 7,
      };
      const result = await generateText({
        model,
        prompt: "Say it briefly",
        ...settings,
        tools: { lookupKeys: tool(lookupTool) },
        toolChoice: "none",
        providerOptions: {
          google: {
            thinkingConfig: { thinkingLevel: "low", includeThoughts: false },
            safetySettings: [{ category: "HARM_CATEGORY_HARASSMENT", threshold: "BLOCK_ONLY_HIGH" }],
          },
        },
      });
      // toolChoice "none" is Gemini's mode NONE: the fake answers text.
      expect(result.text).toBe(gemini.expectedText);
      const body = gemini.requests[0]!.body as {
        generationConfig: Record<string, unknown>;
        safetySettings: unknown;
        toolConfig: unknown;
      };
      expect(body.generationConfig).toMatchObject({
        ...settings,
        thinkingConfig: { thinkingLevel: "low", includeThoughts: false },
      });
      expect(body.safetySettings).toEqual([{ category: "HARM_CATEGORY_HARASSMENT", threshold: "BLOCK_ONLY_HIGH" }]);
      expect(body.toolConfig).toEqual({ functionCallingConfig: { mode: "NONE" } });
      expect(gemini.requests[0]!.apiKey).toBe(a.keys.gemini);
    });

    it("a file given as a URL (the AI SDK sends it as fileData) is refused before anything is reserved or sent: its tokens are not in the body", async () => {
      const a = await newUser(24_007);
      const model = aiSdkModel(served.url, authHeaders(a.token));
      const refused = await generateText({
        model,
        maxRetries: 0,
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "Describe this picture" },
              { type: "file", mediaType: "image/png", data: new URL("https://example.com/picture.png") },
            ],
          },
        ],
      }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(APICallError.isInstance(refused)).toBe(true);
      expect((refused as APICallError).statusCode).toBe(400);
      expect((refused as APICallError).responseBody).toContain("fileData");
      expect(gemini.requests).toHaveLength(0);
      expect(await usageRows(database, a.userId)).toEqual([]);
      expect(await ledger(database, a.userId)).toEqual({ spentUsd: 0, reservedUsd: 0 });
      expect(await auditRows(database, a.userId)).toEqual([]);
    });

    it("a service credential with x-byok-user: the named user's key and ledger, audited as the credential", async () => {
      const a = await newUser(24_005);
      const { credential, view } = await issueCredential(database, "ai sdk backend");
      const model = aiSdkModel(served.url, authHeaders(credential, a.userId));
      const result = await generateText({ model, prompt: "hello from an operator's backend" });
      expect(result.text).toBe(gemini.expectedText);
      expect(gemini.requests.map((r) => r.apiKey)).toEqual([a.keys.gemini]);
      await settled(database, a.userId);
      expect((await auditRows(database, a.userId)).map((row) => `${row.caller} ${row.outcome}`)).toEqual([`service:${view.id} ok`]);
      expect((await ledger(database, a.userId)).spentUsd).toBeCloseTo(gemini.billedUsd(a.keys.gemini), 7);
      expectNothingForwardedButTheKeys([a.keys.gemini, credential]);
    });
  });
}
