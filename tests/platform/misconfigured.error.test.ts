/** A function whose environment does not parse answers a clean 500 problem, naming no value. */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";

describe("invalid configuration on a platform", () => {
  it("answers 500 server-misconfigured as problem+json and logs the variable, not its value", () => {
    const script = `
      const { GET } = await import("./api/health.ts");
      const response = await GET(new Request("http://x/api/health"));
      process.stdout.write(JSON.stringify({ status: response.status, type: response.headers.get("content-type"), id: response.headers.get("x-request-id"), body: await response.json() }));
    `;
    const secretish = "AIzaSyNotAUrlNotAUrlNotAUrlNotAUrl0000";
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      env: { PATH: process.env.PATH ?? "", VERCEL: "1", GEMINI_BASE_URL: secretish },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const result = JSON.parse(out);
    expect(result.status).toBe(500);
    expect(result.type).toContain("application/problem+json");
    expect(result.body).toMatchObject({ code: "server-misconfigured", requestId: result.id });
    expect(out).not.toContain(secretish);
  });
});
