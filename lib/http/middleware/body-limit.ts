/**
 * The one body limit (MAX_BODY_BYTES; GATEWAY_MAX_BODY_BYTES for the gateway's paths) and its one 413 payload-too-large. A declared
 * content-length over it is refused unread, before routing. A body without one (chunked) is read
 * here, before routing too, and refused as soon as it passes the limit. A body with one is read
 * when a route parses it (`c.var.readBody`, for readJsonBody), still capped: the declared length
 * may be understated. As it was with hono/body-limit (which trusts a content-length, hence a
 * second cap in readJsonBody before): same answers, one mechanism.
 *
 * GET and HEAD are skipped (they never carry a body): looking at `request.body` makes
 * @hono/node-server build a full undici Request, with two AbortControllers, for nothing.
 */
import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors.js";
import { maxBodyBytesFor } from "../request.js";
import type { AppEnv } from "../context.js";

const tooLarge = (limit: number) => new AppError("payload-too-large", { detail: `the body is larger than ${limit} bytes` });

async function readCapped(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

export const bodyLimit: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD") return next();
  // The gateway's prompts get a larger limit of their own (lib/http/request.ts maxBodyBytesFor).
  const limit = maxBodyBytesFor(c.req.path);
  const declared = c.req.header("content-length");
  if (Number(declared ?? "NaN") > limit) throw tooLarge(limit);
  if (declared === undefined || c.req.header("transfer-encoding") !== undefined) {
    const bytes = await readCapped(c.req.raw.body, limit);
    c.set("readBody", () => Promise.resolve(bytes));
  } else {
    let read: Promise<Uint8Array> | undefined;
    c.set("readBody", () => (read ??= readCapped(c.req.raw.body, limit)));
  }
  await next();
};
