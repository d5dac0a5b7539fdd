/**
 * Development mode serves the operator's `.env` keys to whoever asks, without sign-in: that is
 * only safe for requests from the developer's own machine. A DNS-rebinding page (its name
 * resolved to 127.0.0.1 after loading) reaches the server with its own name in `Host`, and a
 * proxy or tunnel in front reports a client elsewhere in `Forwarded` / `X-Forwarded-For`.
 *
 * A forwarding header that names only loopback clients is a proxy on this machine serving
 * this machine (`vercel dev` adds `X-Forwarded-For: 127.0.0.1`; so can a frontend dev
 * server's proxy), which is allowed; any other client, or a forwarding header that does not
 * say who the client is, is refused.
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

/**
 * Null when `request` is addressed to this machine (`Host`, or the URL's host when the
 * request carries no `Host` header, as requests built in-process do) and came through no
 * proxy, or only through one serving a loopback client; otherwise why not.
 */
export function notLocalReason(request: Request): NotLocalReason | null {
  const host = request.headers.get("host") ?? new URL(request.url).host;
  if (!isLoopbackHost(host)) return "host-not-loopback";
  const clients: (string | null)[] = [];
  const forwarded = request.headers.get("forwarded");
  const forwardedFor = request.headers.get("x-forwarded-for");
  for (const header of [forwarded, forwardedFor]) {
    if (header !== null && header.length > MAX_FORWARDING_HEADER) return "forwarded-from-elsewhere";
  }
  if (forwarded !== null) clients.push(...forwardedClients(forwarded));
  if (forwardedFor !== null) clients.push(...forwardedFor.split(","));
  for (const client of clients) if (client === null || !isLoopbackAddress(client)) return "forwarded-from-elsewhere";
  return null;
}
