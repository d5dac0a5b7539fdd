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
      // Exactly what `vercel dev` sends its functions (the Vercel CLI's getProxyHeaders, with xfwd).
      {
        "x-real-ip": "::ffff:127.0.0.1",
        "x-vercel-forwarded-for": "::ffff:127.0.0.1",
        "x-vercel-deployment-url": "localhost:3000",
        "x-vercel-id": "dev1::abcde-1234",
        "x-forwarded-host": "localhost:3000",
        "x-forwarded-proto": "http",
        "x-forwarded-for": "::ffff:127.0.0.1",
      },
    ];
    for (const headers of allowed) expect(reasonFor({ ...nginx, ...headers }), JSON.stringify(headers)).toBeNull();
  });

  it("the Host rule still comes first", () => {
    expect(reasonFor({ host: "attacker.example", "x-real-ip": "127.0.0.1" })).toBe("host-not-loopback");
    expect(reasonFor({}, "http://evil.example/")).toBe("host-not-loopback");
    expect(reasonFor({}, "http://[::1]:3000/")).toBeNull();
  });
});

describe("Forwarded (RFC 7239), header lengths and odd spellings", () => {
  const allowed = (headers: Record<string, string>) => expect(reasonFor({ ...nginx, ...headers }), JSON.stringify(headers)).toBeNull();
  const refused = (headers: Record<string, string>) =>
    expect(reasonFor({ ...nginx, ...headers }), JSON.stringify(headers)).toBe("forwarded-from-elsewhere");

  it("reads the for= of each element, quoted or not, whatever comes before it", () => {
    allowed({ forwarded: "for=127.0.0.1" });
    allowed({ forwarded: 'for="127.0.0.1"' });
    allowed({ forwarded: 'for="[::1]:51000"' });
    allowed({ forwarded: 'for= "[::1]:5000"' });
    allowed({ forwarded: "proto=http;for=127.0.0.1" });
    allowed({ forwarded: "proto=http; for=127.0.0.1" });
    allowed({ forwarded: "by=203.0.113.1;for=127.0.0.1" });
    allowed({ forwarded: "For=127.0.0.1, FOR=::1" });
    allowed({ forwarded: "=junk;for=127.0.0.1" });
  });

  it("refuses an element without for=, and for= values that only look loopback after a wrong unquoting", () => {
    refused({ forwarded: "by=127.0.0.1" });
    refused({ forwarded: "host=localhost;proto=http" });
    refused({ forwarded: "for=127.0.0.1, by=127.0.0.1" });
    refused({ forwarded: 'for=x127.0.0.1"' });
    refused({ forwarded: "for=x127.0.0.1x" });
    refused({ forwarded: 'for="127.0.0.1x' });
    refused({ forwarded: 'for="' });
    refused({ forwarded: 'for=""' });
    refused({ forwarded: "for=_hidden" });
    refused({ forwarded: "for=unknown" });
  });

  it("a forwarding header of up to 1,024 characters is read; a longer one is refused unread", () => {
    // Two entries with blanks between them (Headers trims only the ends), 1,024 characters in all.
    const padded = (entry: string) => `${entry},${" ".repeat(1_024 - 2 * entry.length - 1)}${entry}`;
    const values: Record<string, string> = {
      "x-forwarded-for": padded("127.0.0.1"),
      "x-real-ip": padded("127.0.0.1"),
      forwarded: padded("for=127.0.0.1"),
      via: padded("1.1 localhost"),
      "x-forwarded-host": padded("localhost"),
    };
    for (const [name, value] of Object.entries(values)) {
      expect(value.length, name).toBe(1_024);
      allowed({ [name]: value });
      refused({ [name]: value.replace(",", ", ") });
    }
    refused({ "x-forwarded-for": Array(120).fill("127.0.0.1").join(", ") });
  });

  it("Via: each element's received-by must be a loopback name, with its port", () => {
    allowed({ via: "1.1 localhost:3000" });
    allowed({ via: "HTTP/1.1 127.0.0.1, 2 [::1]:8080 (a comment)" });
    refused({ via: "1.1  localhost" }); // no received-by where it belongs
    refused({ via: "1.1 localhost.evil.example" });
    refused({ via: "localhost" });
  });
});

describe("isLoopbackHost / isLoopbackAddress", () => {
  it("host names", () => {
    for (const host of [
      "localhost",
      "localhost:1",
      "localhost:",
      "localhost:9",
      "localhost:65535",
      "127.0.0.1:3000",
      "[::1]",
      "[::1]:3000",
      " LocalHost ",
    ]) {
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
      "localhost:3a",
      "localhost:/",
      "localhost:655350",
      ":3000",
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
      "[::11",
      "1.127.0.0",
      "abcdefg127.0.0.1",
      "::fffe:127.0.0.1",
    ]) {
      expect(isLoopbackAddress(address), address).toBe(false);
    }
  });
});
