/**
 * The 402 a generation gets past the monthly cap (budgetExceeded in lib/generation/budget.ts),
 * word for word. Written from StrykerJS's surviving mutants (docs/mutation-testing.md).
 */
import { describe, expect, it } from "vitest";
import { budgetExceeded, type BudgetStatus } from "../../lib/generation/budget.js";

const status: BudgetStatus = {
  userId: "user_cap",
  monthlyUsd: 5,
  source: "user",
  maxMonthlyUsd: null,
  spentUsd: 4.914,
  reservedUsd: 0.065,
  remainingUsd: 0.021,
  resetsAt: "2026-07-01T00:00:00.000Z",
};

describe("budgetExceeded", () => {
  it("says what the generation could cost, what is left of which cap, and until when", () => {
    const error = budgetExceeded(status, 0.065);
    expect(error.status).toBe(402);
    expect(error.detail).toBe(
      "this generation could cost up to 0.0650 USD, and 0.0210 USD of the 5.00 USD monthly cap is left until 2026-07-01T00:00:00.000Z (UTC)",
    );
    expect(error.action).toBe("PUT /api/usage/budget to raise the cap, or wait until the month resets");
    expect(error.extra).toEqual({
      monthlyUsd: 5,
      spentUsd: 4.914,
      reservedUsd: 0.065,
      remainingUsd: 0.021,
      estimateUsd: 0.065,
      resetsAt: status.resetsAt,
    });
  });

  it("without a cap or anything left: zeros, never null", () => {
    const error = budgetExceeded({ ...status, monthlyUsd: null, remainingUsd: null }, 1);
    expect(error.detail).toBe(
      "this generation could cost up to 1.0000 USD, and 0.0000 USD of the 0.00 USD monthly cap is left until 2026-07-01T00:00:00.000Z (UTC)",
    );
    expect(error.extra).toMatchObject({ monthlyUsd: 0, remainingUsd: 0 });
  });
});
