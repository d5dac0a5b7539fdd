/**
 * The web app's static files (public/, built from web/ by scripts/build-web.ts) for `npm start`
 * (Vercel serves public/ itself). `/` is index.html and `/docs` the API reference;
 * content-hashed assets (`/assets/name-HASH.ext`) are cached for a year, pages revalidated;
 * a precompressed `.br` or `.gz` twin is sent when the client accepts it. Every answer
 * carries the web app's security headers (lib/http/security-headers.ts). Only files listed at
 * startup are served (a map lookup: no path ever reaches the file system), never `/api/*`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { securityHeaders } from "../http/security-headers.js";

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

interface StaticFile {
  body: Buffer;
  br?: Buffer;
  gzip?: Buffer;
  contentType: string;
  immutable: boolean;
  etag: string;
}

/** `name-HASH.ext` as scripts/build-web.ts names assets (esbuild's `[name]-[hash]`: 8 base32 characters). */
function isHashed(name: string): boolean {
  const dot = name.lastIndexOf(".");
  const dash = name.lastIndexOf("-", dot);
  if (dot < 0 || dash < 0 || dot - dash - 1 !== 8) return false;
  for (const ch of name.slice(dash + 1, dot)) {
    if (!((ch >= "A" && ch <= "Z") || (ch >= "0" && ch <= "9"))) return false;
  }
  return true;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith(".")) continue;
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) walk(full, out);
    else out.push(full);
  }
  return out;
}

export interface StaticSite {
  /** The file's response, or null when `request` is not for a file of the site (the app answers it). */
  handle(request: Request): Response | null;
  /** How many files are served (0: public/ was not built). */
  size: number;
}

/** Loads `root` (public/) into memory and serves it with the web app's headers. */
export function staticSite(root: string, options: { clerkFrontendApi: string | null }): StaticSite {
  const files = new Map<string, StaticFile>();
  if (existsSync(root)) {
    for (const full of walk(root)) {
      const ext = extname(full);
      if (ext === ".br" || ext === ".gz") continue;
      const contentType = contentTypes[ext];
      if (!contentType) continue;
      const urlPath = "/" + relative(root, full).split(sep).join("/");
      const body = readFileSync(full);
      const stat = statSync(full);
      files.set(urlPath, {
        body,
        br: existsSync(full + ".br") ? readFileSync(full + ".br") : undefined,
        gzip: existsSync(full + ".gz") ? readFileSync(full + ".gz") : undefined,
        contentType,
        immutable: urlPath.startsWith("/assets/") && isHashed(urlPath.slice(urlPath.lastIndexOf("/") + 1)),
        etag: `"${body.length.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`,
      });
    }
  }
  const headers = securityHeaders(options.clerkFrontendApi);

  const lookup = (path: string): StaticFile | undefined => {
    if (path === "/" || path === "/index.html") return files.get("/index.html");
    if (path === "/docs" || path === "/docs/") return files.get("/docs/index.html");
    return files.get(path);
  };

  return {
    size: files.size,
    handle(request) {
      if (request.method !== "GET" && request.method !== "HEAD") return null;
      const path = new URL(request.url).pathname;
      if (path === "/api" || path.startsWith("/api/")) return null;
      const file = lookup(path);
      if (!file) return null;
      const responseHeaders = new Headers(headers);
      responseHeaders.set("content-type", file.contentType);
      responseHeaders.set("cache-control", file.immutable ? "public, max-age=31536000, immutable" : "no-cache");
      responseHeaders.set("etag", file.etag);
      responseHeaders.set("vary", "Accept-Encoding");
      if (request.headers.get("if-none-match") === file.etag) return new Response(null, { status: 304, headers: responseHeaders });
      const accepted = (request.headers.get("accept-encoding") ?? "").toLowerCase();
      let body = file.body;
      if (file.br && accepted.includes("br")) {
        body = file.br;
        responseHeaders.set("content-encoding", "br");
      } else if (file.gzip && accepted.includes("gzip")) {
        body = file.gzip;
        responseHeaders.set("content-encoding", "gzip");
      }
      responseHeaders.set("content-length", String(body.length));
      return new Response(request.method === "HEAD" ? null : new Uint8Array(body), { status: 200, headers: responseHeaders });
    },
  };
}

/** `fetch` serving the site's files first, everything else through `app`. */
export function withStaticSite<E>(site: StaticSite, fetch: (request: Request, env?: E) => Response | Promise<Response>) {
  return (request: Request, env?: E): Response | Promise<Response> => site.handle(request) ?? fetch(request, env);
}
