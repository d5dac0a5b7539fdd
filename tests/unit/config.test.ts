/** Configuration details beyond the mode table (tests/platform/modes.test.ts). */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../lib/env.js";

describe("database configuration", () => {
  it("guesses the driver from DATABASE_URL and names statements only where it is safe by default", () => {
    expect(loadConfig({}).database).toMatchObject({ driver: "pglite", namedStatements: false });
    expect(loadConfig({ DATABASE_URL: "postgres://u@db.internal:5432/app" }).database).toMatchObject({ driver: "pg", namedStatements: true });
    expect(loadConfig({ DATABASE_URL: "postgres://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/neondb" }).database).toMatchObject({
      driver: "neon-http",
      namedStatements: false,
    });
    expect(
      loadConfig({ DATABASE_URL: "postgres://u@pooler.example:6543/app", DATABASE_PREPARED_STATEMENTS: "unnamed" }).database.namedStatements,
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
