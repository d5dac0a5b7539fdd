/**
 * Development mode serves the operator's `.env` keys to whoever asks, without sign-in: that is
 * only safe for requests from the developer's own machine. A DNS-rebinding page (its name
 * resolved to 127.0.0.1 after loading) reaches the server with its own name in `Host`, and a
 * proxy or tunnel in front reports a client elsewhere in `Forwarded` / `X-Forwarded-For`.
 *
 * A proxy on this machine can also hand it the internet's requests: nginx's default `proxy_pass`
 * rewrites `Host` to `127.0.0.1:3000`. So any proxy header (PROXY_HEADERS: `X-Real-IP`, `Via`,
 * `CF-Connecting-IP`, `True-Client-IP`, `X-Forwarded-*`, `Forwarded`, `X-Vercel-Forwarded-For`)
 * is refused unless everything it names is this machine (`vercel dev` adds
 * `X-Forwarded-For: 127.0.0.1`; so can a frontend dev server's proxy). A proxy that adds no
 * header at all cannot be told from the browser: that is why development is never the mode of
 * a server started as a service (docs/configuration.md "Modes").
 */
import { isIPv4, isIPv6 } from "node:net";

const LOOPBACK_HOST_NAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Why `request` is not from this machine, or null when it is. Names no header value. */
export type NotLocalReason = "host-not-loopback" | "forwarded-from-elsewhere";

function isDigits(text: string): boolean {
  for (const ch of text) if (ch < "0" || ch > "9") return false;
  return true;
}

/** `localhost`, `127.0.0.1` or `[::1]`, with or without a port (any case). */
export function isLoopbackHost(host: string): boolean {
  const value = host.trim().toLowerCase();
  let name = value;
  let port = "";
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0) return false;
    name = value.slice(0, close + 1);
    const rest = value.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return false;
    port = rest.slice(1);
  } else {
    const colon = value.indexOf(":");
    if (colon >= 0) {
      name = value.slice(0, colon);
      port = value.slice(colon + 1);
    }
  }
  return LOOPBACK_HOST_NAMES.has(name) && port.length <= 5 && isDigits(port);
}

/** A loopback IP address (127.0.0.0/8, ::1, ::ffff:127.x.x.x), optionally in brackets and with a port. */
export function isLoopbackAddress(node: string): boolean {
  let address = node.trim().toLowerCase();
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    if (close < 0) return false;
    address = address.slice(1, close);
  } else if (address.indexOf(":") === address.lastIndexOf(":") && address.includes(":")) {
    address = address.slice(0, address.indexOf(":")); // IPv4:port
  }
  if (address.startsWith("::ffff:") && isIPv4(address.slice(7))) address = address.slice(7);
  if (isIPv4(address)) return address.startsWith("127.");
  return isIPv6(address) && (address === "::1" || address === "0:0:0:0:0:0:0:1");
}

/** The clients a `Forwarded` header (RFC 7239) names; null for an element that names none. */
function forwardedClients(header: string): (string | null)[] {
  return header.split(",").map((element) => {
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=");
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== "for") continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value;
    }
    return null;
  });
}

/** Longest forwarding header looked at; a longer one is refused unread. */
const MAX_FORWARDING_HEADER = 1_024;

/** Headers that name the client's address: each entry must be a loopback address. */
const CLIENT_ADDRESS_HEADERS = ["x-forwarded-for", "x-real-ip", "x-vercel-forwarded-for", "cf-connecting-ip", "true-client-ip"] as const;

/**
 * Every header a proxy adds (nginx, Caddy, Apache, Cloudflare, Akamai, Vercel, RFC 7239, RFC 9110's
 * `Via`). Any of them means a proxy stands in front; development accepts that only when the
 * proxy says the client, and every host it names, is this machine.
 */
export const PROXY_HEADERS = ["forwarded", ...CLIENT_ADDRESS_HEADERS, "x-forwarded-host", "x-forwarded-proto", "via"] as const;

/** The `received-by` of each `Via` element (RFC 9110 7.6.3: `1.1 host:port comment`); null when missing. */
function viaReceivers(header: string): (string | null)[] {
  return header.split(",").map((element) => {
    const parts = element.trim().split(" ");
    return parts.length >= 2 && parts[1] !== "" ? parts[1]! : null;
  });
}

/**
 * Null when `request` is addressed to this machine (`Host`, or the URL's host when the
 * request carries no `Host` header, as requests built in-process do) and came through no
 * proxy, or only through one on this machine serving a loopback client; otherwise why not.
 *
 * A proxy is any of PROXY_HEADERS. Each must name loopback only: client addresses
 * (`Forwarded: for=`, `X-Forwarded-For`, `X-Real-IP`, …) loopback addresses, hosts
 * (`X-Forwarded-Host`, `Via`'s received-by) loopback names. `X-Forwarded-Proto` names nothing,
 * so it passes only beside a header that names the client (as `vercel dev` sends them); a
 * `Forwarded` element without `for=` is refused for the same reason.
 */
export function notLocalReason(request: Request): NotLocalReason | null {
  const headers = request.headers;
  const host = headers.get("host") ?? new URL(request.url).host;
  if (!isLoopbackHost(host)) return "host-not-loopback";
  for (const name of PROXY_HEADERS) {
    const value = headers.get(name);
    if (value !== null && value.length > MAX_FORWARDING_HEADER) return "forwarded-from-elsewhere";
  }
  const clients: (string | null)[] = [];
  const forwarded = headers.get("forwarded");
  if (forwarded !== null) clients.push(...forwardedClients(forwarded));
  for (const name of CLIENT_ADDRESS_HEADERS) {
    const value = headers.get(name);
    if (value !== null) clients.push(...value.split(","));
  }
  for (const client of clients) if (client === null || !isLoopbackAddress(client)) return "forwarded-from-elsewhere";
  const forwardedHost = headers.get("x-forwarded-host");
  if (forwardedHost !== null && !forwardedHost.split(",").every(isLoopbackHost)) return "forwarded-from-elsewhere";
  const via = headers.get("via");
  if (via !== null && !viaReceivers(via).every((by) => by !== null && isLoopbackHost(by))) return "forwarded-from-elsewhere";
  if (headers.get("x-forwarded-proto") !== null && clients.length === 0) return "forwarded-from-elsewhere";
  return null;
}
