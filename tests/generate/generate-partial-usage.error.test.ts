/**
 * The usage row of a Gemini stream cut short (lib/generation/generate.ts `cutShortGeminiUsage`):
 * charged the call's reserved worst case whatever was seen (Gemini's bill for it is unknown);
 * each count is Gemini's when its last usageMetadata held one (thinking tokens always), our
 * estimate otherwise, and the row says whether any count is estimated. The end-to-end cases (client abort, stall) are in
 * generate.happy.test.ts.
 */
import { describe, expect, it } from "vitest";
import { cutShortGeminiUsage } from "../../lib/generation/generate.js";
import { estimateTokens } from "../../lib/generation/usage.js";
import { geminiCostUsd } from "../../lib/providers/prices.js";

const model = "gemini-3.5-flash";
const worstCase = 0.0747;
const prompt = "Write about streaming. ".repeat(20);
const text = "# Title\n\nSome words were already written";

describe("cutShortGeminiUsage", () => {
  it("takes every count Gemini reported (thinking tokens billed as output): not estimated", () => {
    const usage = cutShortGeminiUsage(
      "u",
      "req_1",
      model,
      prompt,
      {
        sent: true,
        accepted: true,
        text,
        lastUsage: { promptTokenCount: 120, candidatesTokenCount: 30, thoughtsTokenCount: 7 },
      },
      worstCase,
    );
    expect(usage).toMatchObject({ provider: "gemini", inputTokens: 120, outputTokens: 37, partial: true, tokensEstimated: false });
    // Charged the worst case, never the visible tokens alone: the tokens seen are a floor of the bill.
    expect(usage.costUsd).toBe(worstCase);
    expect(usage.costUsd).toBeGreaterThan(geminiCostUsd(model, 120, 37));
  });

  it("estimates the output when only the prompt's count arrived, and says so", () => {
    const usage = cutShortGeminiUsage(
      "u",
      "req_1",
      model,
      prompt,
      { sent: true, accepted: true, text, lastUsage: { promptTokenCount: 120 } },
      worstCase,
    );
    expect(usage).toMatchObject({
      inputTokens: 120,
      outputTokens: estimateTokens(text),
      partial: true,
      tokensEstimated: true,
      costUsd: worstCase,
    });
  });

  it("counts thinking tokens when Gemini reported them, even before any output count (a stall after thinking)", () => {
    const usage = cutShortGeminiUsage(
      "u",
      "req_1",
      model,
      prompt,
      { sent: true, accepted: true, text: "", lastUsage: { promptTokenCount: 1000, thoughtsTokenCount: 8000 } },
      worstCase,
    );
    expect(usage).toMatchObject({ inputTokens: 1000, outputTokens: 8000, costUsd: worstCase, tokensEstimated: true });
  });

  it("estimates both when Gemini reported nothing yet", () => {
    const usage = cutShortGeminiUsage(
      "u",
      "req_1",
      model,
      prompt,
      { sent: true, accepted: false, text: "", lastUsage: undefined },
      worstCase,
    );
    expect(usage).toMatchObject({
      inputTokens: estimateTokens(prompt),
      outputTokens: 0,
      partial: true,
      tokensEstimated: true,
      costUsd: worstCase,
    });
    expect(estimateTokens(prompt)).toBe(Math.ceil(prompt.length / 4));
  });
});
