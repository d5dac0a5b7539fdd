/**
 * The one body limit (MAX_BODY_BYTES) and its one 413 payload-too-large. A declared
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
import { MAX_BODY_BYTES } from "../request.js";
import type { AppEnv } from "../context.js";

const tooLarge = () => new AppError("payload-too-large", { detail: `the body is larger than ${MAX_BODY_BYTES} bytes` });

async function readCapped(body: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
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
  const declared = c.req.header("content-length");
  if (Number(declared ?? "NaN") > MAX_BODY_BYTES) throw tooLarge();
  if (declared === undefined || c.req.header("transfer-encoding") !== undefined) {
    const bytes = await readCapped(c.req.raw.body);
    c.set("readBody", () => Promise.resolve(bytes));
  } else {
    let read: Promise<Uint8Array> | undefined;
    c.set("readBody", () => (read ??= readCapped(c.req.raw.body)));
  }
  await next();
};
