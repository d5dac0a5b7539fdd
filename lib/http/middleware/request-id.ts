/**
 * The request id: a client's `x-request-id` is kept for tracing unless it looks like a secret
 * (it is echoed and logged); otherwise a new one. The server's own id is made either way
 * (`serverRequestId`): audit and usage rows store it beside the client's, which anyone can choose. Every answer carries it. Hand-written because
 * `hono/request-id` accepts any `[\w-=]` id (an Exa key is a UUID) and has no hook to refuse one.
 */
import type { MiddlewareHandler } from "hono";
import { randomUUID } from "node:crypto";
import { redact } from "../../platform/log.js";
import type { AppEnv } from "../context.js";

/** `req_` + 24 hex digits (96 bits); no dashes, so an id never looks like an Exa key (a UUID). */
export function newRequestId(): string {
  const uuid = randomUUID().replace(/-/g, "");
  return "req_" + uuid.slice(0, 12) + uuid.slice(13, 25);
}

const incomingRequestId = /^[A-Za-z0-9._:-]{8,128}$/;

export const requestId: MiddlewareHandler<AppEnv> = async (c, next) => {
  const incoming = c.req.header("x-request-id");
  // The server's own id is always made, and stored beside the client's (which anyone can choose).
  const serverId = newRequestId();
  const id = incoming && incomingRequestId.test(incoming) && redact(incoming) === incoming ? incoming : serverId;
  c.set("requestId", id);
  c.set("serverRequestId", serverId);
  await next();
  // After the handler (or the error handler) made the response: every answer carries it.
  // Set on the response's own headers: hono's `c.header()` after the response exists rebuilds
  // it from `res.body`, which turns a small JSON string into a web stream (undici's Response,
  // @hono/node-server's fast path lost): that cost more CPU than the key path itself.
  try {
    c.res.headers.set("x-request-id", id);
  } catch {
    c.header("x-request-id", id); // immutable headers (a fetched Response passed through)
  }
};
