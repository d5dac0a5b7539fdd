/**
 * The mode rule table of docs/configuration.md ("The rule table"), read from the document and
 * checked row by row against loadConfig, so the documented rules and the code cannot drift; and
 * the README's Modes table says the same NODE_ENV rule. The table is the fallback rule made
 * explicit: a server started with NODE_ENV set to anything but development or test is production.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, type RawEnv } from "../../lib/platform/env.js";

const root = join(import.meta.dirname, "../..");

/** The rows of the first table under `heading` in `file`, as cells. */
function tableUnder(file: string, heading: string): string[][] {
  const text = readFileSync(join(root, file), "utf8");
  const start = text.indexOf(`\n${heading}\n`);
  expect(start, `${file} has "${heading}"`).toBeGreaterThan(0);
  const lines = text.slice(start).split("\n");
  const first = lines.findIndex((line) => line.startsWith("|"));
  const rows: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  }
  return rows.slice(2); // header and separator
}

/** `NAME=value` items in backquotes: the environment a row sets. */
function environmentOf(cell: string): RawEnv {
  const env: RawEnv = {};
  for (const piece of cell.split("`").filter((_, i) => i % 2 === 1)) {
    const eq = piece.indexOf("=");
    if (eq > 0) env[piece.slice(0, eq)] = piece.slice(eq + 1);
  }
  return env;
}

describe("docs/configuration.md, the mode rule table", () => {
  const rows = tableUnder("docs/configuration.md", "### The rule table");

  it("has rows for each rule, both modes, and the NODE_ENV fallback", () => {
    expect(rows.length).toBeGreaterThanOrEqual(15);
    const cells = rows.map((row) => row[0]).join(" ");
    for (const needed of ["`NODE_ENV=staging`", "`NODE_ENV=test`", "`NODE_ENV=development`", "`VERCEL_ENV=development`", "`DEBUG=true`"]) {
      expect(cells).toContain(needed);
    }
    expect(rows.some((row) => row[0]!.startsWith("(nothing"))).toBe(true);
  });

  for (const [environment, mode] of rows) {
    it(`${environment} → ${mode}`, () => {
      expect(["development", "production"]).toContain(mode);
      const config = loadConfig(environmentOf(environment!));
      expect(config.mode, config.modeReason).toBe(mode);
    });
  }
});

describe("the NODE_ENV fallback, beyond the table's examples", () => {
  it("only unset, development and test (any case) leave development possible", () => {
    for (const value of [undefined, "", " ", "development", "Development", "test", "TEST"]) {
      expect(loadConfig({ NODE_ENV: value }).mode, String(value)).toBe("development");
    }
    for (const value of ["staging", "prod", "production", "dev", "testing", "development2", "qa", "local", "s3cr3t-Value_9f2c"]) {
      const config = loadConfig({ NODE_ENV: value, DEBUG: "true" });
      expect(config.mode, value).toBe("production");
      expect(config.modeReason).toContain("NODE_ENV");
      expect(config.modeReason).not.toContain("s3cr3t"); // names the variable, never its value
    }
  });
});

describe("README's Modes table", () => {
  it("states the NODE_ENV rule as the rule table does", () => {
    const table = tableUnder("README.md", "## Modes")
      .map((row) => row.join(" | "))
      .join("\n");
    expect(table).toContain("`NODE_ENV` set to anything but `development` or `test`");
    expect(table).toContain("`NODE_ENV=staging`");
  });
});

describe("why: modeReason and platform, word for word (names variables, never values)", () => {
  const reason = (env: RawEnv, assumeProduction = false) => loadConfig(env, { assumeProduction }).modeReason;
  const HINT = " (under vercel dev, VERCEL_ENV=development means development only together with DEBUG=true)";

  it("production: every signal, in order, joined with '; '", () => {
    expect(reason({ RENDER: "true" })).toBe("RENDER is set (Render)");
    expect(reason({ VERCEL: "1", DYNO: "web.1" })).toBe("VERCEL is set (Vercel); DYNO is set (Heroku)");
    expect(reason({ NODE_ENV: "production" })).toBe("NODE_ENV=production");
    expect(reason({ NODE_ENV: "staging" })).toBe("NODE_ENV is set to something other than development or test");
    expect(reason({ DEPLOY_ENV: "render" })).toBe("DEPLOY_ENV is set to something other than local or development");
    expect(reason({ K_SERVICE: "api", NODE_ENV: "Production", DEPLOY_ENV: "x" })).toBe(
      "K_SERVICE is set (Google Cloud Run (or Knative)); NODE_ENV=production; DEPLOY_ENV is set to something other than local or development",
    );
    expect(reason({ RENDER: "1" }, true)).toBe("checked as production (--production); RENDER is set (Render)");
    expect(reason({}, true)).toBe("checked as production (--production)");
  });

  it("vercel dev without DEBUG=true says why, and only then", () => {
    expect(reason({ VERCEL: "1", VERCEL_ENV: "development" })).toBe(`VERCEL is set (Vercel)${HINT}`);
    expect(reason({ VERCEL: "1", VERCEL_ENV: "Development", DEBUG: "false" })).toBe(`VERCEL is set (Vercel)${HINT}`);
    expect(reason({ VERCEL: "1", VERCEL_ENV: "preview" })).toBe("VERCEL is set (Vercel)");
    expect(reason({ VERCEL: "1" })).toBe("VERCEL is set (Vercel)");
    expect(reason({ VERCEL: "1", VERCEL_ENV: "development", DEBUG: "true", NODE_ENV: "qa" })).toBe(
      "NODE_ENV is set to something other than development or test",
    );
    expect(reason({ VERCEL_ENV: "development", NODE_ENV: "qa" })).toBe("NODE_ENV is set to something other than development or test");
  });

  it("development says which path chose it", () => {
    expect(reason({})).toBe("no hosting platform recognised, NODE_ENV is unset, development or test, and DEPLOY_ENV is unset");
    expect(reason({ DEPLOY_ENV: "Local" })).toBe(
      "no hosting platform recognised, NODE_ENV is unset, development or test, and DEPLOY_ENV=local",
    );
    expect(reason({ VERCEL: "1", VERCEL_ENV: "development", DEBUG: "true" })).toBe(
      "vercel dev (VERCEL=1 with VERCEL_ENV=development) and DEBUG=true",
    );
    expect(reason({ VERCEL: " ", RENDER: "" })).toBe(
      "no hosting platform recognised, NODE_ENV is unset, development or test, and DEPLOY_ENV is unset",
    );
  });

  it("platform: the first recognised, or null", () => {
    const platform = (env: RawEnv) => loadConfig(env).platform;
    expect(platform({ RENDER: "true" })).toBe("render");
    expect(platform({ DYNO: "x", RENDER: "y" })).toBe("render");
    expect(platform({ NODE_ENV: "staging" })).toBeNull();
    expect(platform({ VERCEL: "1", VERCEL_ENV: "development", DEBUG: "true" })).toBeNull();
    expect(platform({ VERCEL: "1", VERCEL_ENV: "development", DEBUG: "true", FLY_APP_NAME: "a" })).toBe("fly");
    expect(platform({ VERCEL: "1", VERCEL_ENV: "development" })).toBe("vercel");
    expect(platform({})).toBeNull();
  });
});
