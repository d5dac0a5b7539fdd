/**
 * lib/http/middleware/cross-site.ts in process, case by case: the app over no routes at all, so
 * a request the guard lets through ends as 404 and one it stops as 415 or 403; no database is
 * ever opened. (Every real route, both modes, nothing changed: tests/batteries/cross-site.security.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { createApp } from "../../lib/app.js";
import { loadConfig } from "../../lib/platform/env.js";
import { memorySink } from "../../lib/platform/log.js";
import { createRuntime } from "../../lib/platform/runtime.js";
import { isJsonContentType } from "../../lib/http/middleware/cross-site.js";

const runtime = createRuntime(loadConfig({ ALLOWED_ORIGINS: "https://app.example" }), {
  database: () => Promise.reject(new Error("no database in this test")),
  logSink: memorySink().sink,
});
const app = createApp([], { runtime });
const send = async (method: string, init: { headers?: Record<string, string>; body?: BodyInit } = {}) =>
  (await app.fetch(new Request("http://localhost:3000/api/nothing", { method, headers: init.headers, body: init.body }))).status;

describe("the cross-site guard", () => {
  it("GET, HEAD and OPTIONS pass whatever they carry", async () => {
    expect(await send("GET", { headers: { origin: "https://evil.example", "content-type": "text/plain" } })).toBe(404);
    expect(await send("HEAD", { headers: { origin: "https://evil.example" } })).toBe(404);
    expect(await send("OPTIONS", { headers: { origin: "https://evil.example", "content-type": "text/plain" }, body: "x" })).toBe(404);
  });

  it("a body must be JSON, whoever sends it", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      expect(await send(method, { headers: { "content-type": "text/plain" }, body: "{}" }), method).toBe(415);
      expect(await send(method, { body: "{}" }), `${method} without a type`).toBe(415);
      expect(await send(method, { headers: { "content-type": "application/json" }, body: "{}" }), method).toBe(404);
      expect(await send(method, { headers: { "content-type": "application/json", origin: "https://evil.example" }, body: "{}" })).toBe(404);
    }
  });

  it("a body is a declared length above 0, a chunked one, or bytes actually sent", async () => {
    expect(await send("POST", { headers: { "content-type": "text/plain", "content-length": "0" } })).toBe(404);
    expect(await send("POST", { headers: { "content-type": "text/plain", "content-length": " 0 " } })).toBe(404);
    expect(await send("POST", { headers: { "content-type": "text/plain", "content-length": "2" }, body: "{}" })).toBe(415);
    expect(await send("POST", { headers: { "content-type": "text/plain" }, body: "" })).toBe(404);
    expect(await send("POST", { headers: { "content-type": "text/plain" }, body: new Uint8Array([1]) })).toBe(415);
    expect(await send("POST", { headers: { "content-type": "text/plain", "transfer-encoding": "chunked" }, body: "x" })).toBe(415);
  });

  it("no body: no Origin, its own, or an allowed one; anything else is 403", async () => {
    for (const origin of [undefined, "http://localhost:3000", "HTTP://LOCALHOST:3000", "https://localhost:3000", "https://app.example"]) {
      expect(await send("DELETE", { headers: origin ? { origin } : {} }), String(origin)).toBe(404);
    }
    for (const origin of [
      "https://evil.example",
      "null",
      "http://localhost:3001",
      "http://localhost",
      "https://app.example.evil",
      "file://",
      "javascript:alert(1)",
      "not a url",
      "https://APP.example",
      "ftp://localhost:3000",
      "ws://localhost:3000",
    ]) {
      expect(await send("DELETE", { headers: { origin } }), origin).toBe(403);
      expect(await send("POST", { headers: { origin } }), origin).toBe(403);
    }
  });

  it("answers with problems that say what to do", async () => {
    const unsupported = await app.fetch(
      new Request("http://localhost:3000/x", { method: "POST", body: "a", headers: { "content-type": "text/plain" } }),
    );
    expect(await unsupported.json()).toMatchObject({
      code: "unsupported-media-type",
      detail: "send the body as JSON with content-type: application/json",
    });
    const foreign = await app.fetch(
      new Request("http://localhost:3000/x", { method: "POST", headers: { origin: "https://evil.example" } }),
    );
    expect(await foreign.json()).toMatchObject({
      code: "cross-site-request",
      status: 403,
      detail: "a request without a body from another site's page is refused (it could change state without the user's consent)",
      action: "send it from this service's own pages or an origin in ALLOWED_ORIGINS, or from a client that is not a browser",
    });
  });
});

describe("isJsonContentType", () => {
  it("takes JSON and +json types only", () => {
    for (const type of [
      "application/json",
      "Application/JSON; charset=utf-8",
      " application/json ",
      "application/problem+json",
      "application/vnd.api+json",
    ]) {
      expect(isJsonContentType(type), type).toBe(true);
    }
    for (const type of [
      undefined,
      "",
      "text/plain",
      "text/json",
      "application/jsonp",
      "application/+json",
      "application/x-json",
      "multipart/form-data",
      "json",
      "xapplication/json",
      "text/plain12json",
      "image/svg+xml+json",
    ]) {
      expect(isJsonContentType(type), String(type)).toBe(false);
    }
  });
});
