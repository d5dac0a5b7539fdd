/**
 * A small JSON answer leaves the app as the object its handler made: the request-id middleware
 * adds its header to that response instead of rebuilding it from `res.body` (hono's `c.header()`
 * after the response exists does that, which turns the JSON string into a web stream and loses
 * @hono/node-server's fast path: measured in BENCHMARKS.md, "What ships").
 */
import { Hono } from "hono/tiny";
import { describe, expect, it } from "vitest";
import { requestId } from "../../lib/http/middleware/request-id.js";
import { json } from "../../lib/http/route.js";
import type { AppEnv } from "../../lib/http/context.js";

describe("the request id on a JSON answer", () => {
  it("is set on the handler's own response, not on a copy built from its body", async () => {
    let made: Response | undefined;
    const app = new Hono<AppEnv>();
    app.use(requestId);
    app.get("/x", () => (made = json({ ok: true })));
    const answered = await app.fetch(new Request("http://localhost/x"));
    expect(answered).toBe(made);
    expect(answered.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{24}$/);
    expect(await answered.json()).toEqual({ ok: true });
  });

  it("still reaches a response whose headers cannot change (a fetched one passed through)", async () => {
    const app = new Hono<AppEnv>();
    app.use(requestId);
    app.get("/y", () => Response.redirect("http://localhost/elsewhere", 302));
    const answered = await app.fetch(new Request("http://localhost/y", { headers: { "x-request-id": "req_from_the_caller_1" } }));
    expect(answered.status).toBe(302);
    expect(answered.headers.get("x-request-id")).toBe("req_from_the_caller_1");
  });
});
