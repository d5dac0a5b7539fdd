/**
 * The usage row of a Gemini stream cut short (lib/generation/generate.ts `cutShortGeminiUsage`):
 * each count is Gemini's when its last usageMetadata held one, our estimate otherwise, and the
 * row says whether any count is estimated. The end-to-end cases (client abort, stall) are in
 * generate.happy.test.ts.
 */
import { describe, expect, it } from "vitest";
import { cutShortGeminiUsage } from "../../lib/generation/generate.js";
import { estimateTokens } from "../../lib/generation/usage.js";
import { geminiCostUsd } from "../../lib/providers/prices.js";

const model = "gemini-2.5-flash";
const prompt = "Write about streaming. ".repeat(20);
const text = "# Title\n\nSome words were already written";

describe("cutShortGeminiUsage", () => {
  it("takes every count Gemini reported (thinking tokens billed as output): not estimated", () => {
    const usage = cutShortGeminiUsage("u", "req_1", model, prompt, {
      accepted: true,
      text,
      lastUsage: { promptTokenCount: 120, candidatesTokenCount: 30, thoughtsTokenCount: 7 },
    });
    expect(usage).toMatchObject({ provider: "gemini", inputTokens: 120, outputTokens: 37, partial: true, tokensEstimated: false });
    expect(usage.costUsd).toBe(geminiCostUsd(model, 120, 37));
  });

  it("estimates the output when only the prompt's count arrived, and says so", () => {
    const usage = cutShortGeminiUsage("u", "req_1", model, prompt, { accepted: true, text, lastUsage: { promptTokenCount: 120 } });
    expect(usage).toMatchObject({ inputTokens: 120, outputTokens: estimateTokens(text), partial: true, tokensEstimated: true });
  });

  it("estimates both when Gemini reported nothing yet", () => {
    const usage = cutShortGeminiUsage("u", "req_1", model, prompt, { accepted: true, text: "", lastUsage: undefined });
    expect(usage).toMatchObject({ inputTokens: estimateTokens(prompt), outputTokens: 0, partial: true, tokensEstimated: true });
    expect(estimateTokens(prompt)).toBe(Math.ceil(prompt.length / 4));
  });
});
