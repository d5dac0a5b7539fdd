/** Configuration details beyond the mode table (tests/platform/modes.security.test.ts). */
import { describe, expect, it } from "vitest";
import { configProblems, formatConfigProblem } from "../../lib/platform/config-check.js";
import { ConfigError, loadConfig } from "../../lib/platform/env.js";

describe("database configuration", () => {
  it("guesses the driver from DATABASE_URL and names statements only where it is safe by default", () => {
    expect(loadConfig({}).database).toMatchObject({ driver: "pglite", namedStatements: false });
    expect(loadConfig({ DATABASE_URL: "postgres://u@db.internal:5432/app" }).database).toMatchObject({
      driver: "pg",
      namedStatements: true,
    });
    expect(loadConfig({ DATABASE_URL: "postgres://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/neondb" }).database).toMatchObject({
      driver: "neon-http",
      namedStatements: false,
    });
    expect(
      loadConfig({ DATABASE_URL: "postgres://u@pooler.example:6543/app", DATABASE_PREPARED_STATEMENTS: "unnamed" }).database
        .namedStatements,
    ).toBe(false);
    expect(loadConfig({ DATABASE_URL: "postgres://u@h/app", DATABASE_DRIVER: "neon-ws" }).database.driver).toBe("neon-ws");
  });

  it("refuses invalid values naming the variable, never echoing the value", () => {
    expect(() => loadConfig({ DATABASE_PREPARED_STATEMENTS: "sometimes" })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_DRIVER: "pg" })).toThrow(/DATABASE_URL/);
    try {
      loadConfig({ GEMINI_BASE_URL: "not a url AIzaSySecretSecretSecretSecretSecret00" });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).toContain("GEMINI_BASE_URL");
      expect(String(error)).not.toContain("AIzaSy");
    }
  });
});

describe("HOST", () => {
  it("is loopback by default, stays loopback in development, and may be 0.0.0.0 in production (Render)", () => {
    expect(loadConfig({}).host).toBe("127.0.0.1");
    expect(loadConfig({ HOST: "::1" }).host).toBe("::1");
    expect(loadConfig({ HOST: "localhost" }).host).toBe("localhost");
    expect(() => loadConfig({ HOST: "0.0.0.0" })).toThrow(/HOST: development .* loopback only/);
    expect(() => loadConfig({ HOST: "192.168.1.20" })).toThrow(ConfigError);
    expect(loadConfig({ HOST: "0.0.0.0", RENDER: "true" }).host).toBe("0.0.0.0");
    expect(loadConfig({ HOST: "0.0.0.0", DEPLOY_ENV: "production" }).host).toBe("0.0.0.0");
  });
});

/** What the configuration check says of an environment, one problem a line. */
const problemText = (env: Record<string, string>) => configProblems(loadConfig(env)).map(formatConfigProblem).join("\n");

describe("budgets and the Clerk webhook secret", () => {
  it("parses the operator's default and maximum caps; empty means none", () => {
    expect(loadConfig({}).budget).toEqual({ defaultMonthlyUsd: null, maxMonthlyUsd: null });
    expect(loadConfig({ BUDGET_DEFAULT_USD: "5", BUDGET_MAX_USD: "12.50" }).budget).toEqual({ defaultMonthlyUsd: 5, maxMonthlyUsd: 12.5 });
    expect(loadConfig({ BUDGET_DEFAULT_USD: " ", BUDGET_MAX_USD: "" }).budget).toEqual({ defaultMonthlyUsd: null, maxMonthlyUsd: null });
    expect(problemText({ BUDGET_MAX_USD: "3" })).toContain("BUDGET_MAX_USD is set without BUDGET_DEFAULT_USD");
    for (const bad of ["-1", "five", "1e3", "10000000", "0.123456789", "5 USD"]) {
      expect(() => loadConfig({ BUDGET_DEFAULT_USD: bad }), bad).toThrow(/BUDGET_DEFAULT_USD/);
    }
  });

  it("accepts a whsec_ secret, refuses anything else naming the variable and not the value", () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    expect(loadConfig({ CLERK_WEBHOOK_SIGNING_SECRET: secret }).clerk.webhookSigningSecret).toBe(secret);
    for (const bad of [
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      "whsec_short",
      "whsec_not base64 at all!!!!!!!!!!",
      "sk_test_abcdefabcdefabcdef",
    ]) {
      try {
        loadConfig({ CLERK_WEBHOOK_SIGNING_SECRET: bad });
        expect.unreachable(bad);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect(String(error)).toContain("CLERK_WEBHOOK_SIGNING_SECRET");
        expect(String(error)).not.toContain(bad);
      }
    }
    // Production with Clerk but without the secret: users deleted in Clerk would keep their data here.
    expect(problemText({ DEPLOY_ENV: "production", CLERK_JWT_KEY: "x" })).toContain("CLERK_WEBHOOK_SIGNING_SECRET");
  });
});
