/**
 * lib/platform/dev/local-only.ts, request by request (the app-level 421 is
 * tests/platform/local-only.security.test.ts). The reproduction: nginx's default `proxy_pass`
 * rewrites Host to 127.0.0.1:3000, and a typical site adds `X-Real-IP` naming the real
 * client; development served the internet. Now every proxy header must name loopback only.
 */
import { describe, expect, it } from "vitest";
import { isLoopbackAddress, isLoopbackHost, notLocalReason, PROXY_HEADERS } from "../../lib/platform/dev/local-only.js";

const reasonFor = (headers: Record<string, string>, url = "http://127.0.0.1:3000/api/health") =>
  notLocalReason(new Request(url, { headers }));

const nginx = { host: "127.0.0.1:3000" };

describe("proxy headers in development", () => {
  it("the reproduction: nginx with X-Real-IP of a stranger is refused", () => {
    expect(reasonFor({ ...nginx, "x-real-ip": "203.0.113.9" })).toBe("forwarded-from-elsewhere");
  });

  it("every proxy header naming a stranger (or nothing checkable) is refused", () => {
    const refused: Record<string, string>[] = [
      { "x-real-ip": "203.0.113.9" },
      { "x-real-ip": "" },
      { "cf-connecting-ip": "198.51.100.4" },
      { "true-client-ip": "2001:db8::7" },
      { "x-vercel-forwarded-for": "203.0.113.9" },
      { "x-forwarded-for": "203.0.113.9" },
      { "x-forwarded-for": "127.0.0.1, 203.0.113.9" },
      { forwarded: "for=203.0.113.9" },
      { forwarded: "proto=https" },
      { "x-forwarded-host": "api.example.com" },
      { "x-forwarded-host": "localhost:3000, api.example.com" },
      { "x-forwarded-for": "127.0.0.1", "x-forwarded-host": "evil.example" },
      { "x-forwarded-proto": "https" }, // names no client: a proxy that hides who asked
      { via: "1.1 vegur" },
      { via: "1.1 localhost:3000, 1.1 proxy.example" },
      { via: "1.1" },
      { via: "" },
      { "x-forwarded-for": "127.0.0.1", via: "1.1 edge.example" },
      { "x-real-ip": "127.0.0.1", "cf-connecting-ip": "203.0.113.9" },
      { "x-real-ip": `127.0.0.1,${" ".repeat(1_100)}` }, // longer than any header looked at
    ];
    for (const headers of refused) expect(reasonFor({ ...nginx, ...headers }), JSON.stringify(headers)).toBe("forwarded-from-elsewhere");
  });

  it("each header of PROXY_HEADERS alone, naming a stranger, is refused", () => {
    expect(PROXY_HEADERS).toEqual(
      expect.arrayContaining([
        "x-real-ip",
        "via",
        "cf-connecting-ip",
        "true-client-ip",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-forwarded-for",
        "x-vercel-forwarded-for",
      ]),
    );
    const stranger: Record<string, string> = {
      forwarded: "for=203.0.113.9",
      via: "1.1 proxy.example",
      "x-forwarded-host": "proxy.example",
    };
    for (const name of PROXY_HEADERS) {
      expect(reasonFor({ ...nginx, [name]: stranger[name] ?? "203.0.113.9" }), name).toBe("forwarded-from-elsewhere");
    }
  });

  it("a proxy on this machine serving this machine passes (vercel dev, a frontend dev server)", () => {
    const allowed: Record<string, string>[] = [
      {},
      { "x-real-ip": "127.0.0.1" },
      { "x-real-ip": "::1" },
      { "cf-connecting-ip": "127.0.0.1", "true-client-ip": "::ffff:127.0.0.1" },
      { "x-vercel-forwarded-for": "127.0.0.1" },
      { "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http", "x-forwarded-host": "localhost:3000" },
      { forwarded: "for=127.0.0.1;proto=http", "x-forwarded-proto": "http" },
      { via: "1.1 localhost:3000" },
      { via: "1.1 127.0.0.1, HTTP/1.1 [::1]:8080" },
      { "x-forwarded-host": "LOCALHOST" },
    ];
    for (const headers of allowed) expect(reasonFor({ ...nginx, ...headers }), JSON.stringify(headers)).toBeNull();
  });

  it("the Host rule still comes first", () => {
    expect(reasonFor({ host: "attacker.example", "x-real-ip": "127.0.0.1" })).toBe("host-not-loopback");
    expect(reasonFor({}, "http://evil.example/")).toBe("host-not-loopback");
    expect(reasonFor({}, "http://[::1]:3000/")).toBeNull();
  });
});

describe("isLoopbackHost / isLoopbackAddress", () => {
  it("host names", () => {
    for (const host of ["localhost", "localhost:1", "localhost:", "127.0.0.1:3000", "[::1]", "[::1]:3000", " LocalHost "]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      "localhost:123456",
      "[::1",
      "[::1]x",
      "::1",
      "127.0.0.1:-1",
      "localhost.",
      "user@localhost",
      "127.0.0.2",
      "[::1]3000",
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it("client addresses", () => {
    for (const address of [
      "127.0.0.1",
      "127.1.2.3",
      "127.0.0.1:5000",
      "::1",
      "[::1]",
      "[::1]:5000",
      "::ffff:127.0.0.1",
      "0:0:0:0:0:0:0:1",
      " 127.0.0.1 ",
    ]) {
      expect(isLoopbackAddress(address), address).toBe(true);
    }
    for (const address of [
      "",
      "unknown",
      "_hidden",
      "10.0.0.1",
      "::ffff:10.0.0.1",
      "2001:db8::1",
      "128.0.0.1",
      "localhost",
      "[::1",
      "1.127.0.0",
    ]) {
      expect(isLoopbackAddress(address), address).toBe(false);
    }
  });
});
