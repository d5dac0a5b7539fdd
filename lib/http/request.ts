/** Reading and validating request input: one place turns every failure into a 4xx problem. */
import type { z } from "zod";
import { AppError, type ErrorCode, type FieldError } from "./errors.js";
import { redact, truncate } from "../platform/log.js";

/** The largest request body, enforced before routing by middleware/body-limit.ts. */
export const MAX_BODY_BYTES = 16 * 1024;

/** Paths of the provider gateway (lib/gateway), whose bodies are prompts: a larger limit of their own. */
export const GATEWAY_PATH_PREFIX = "/api/gateway/";
/** The largest body of a gateway call (a prompt with its history; its input tokens are reserved from it). */
export const GATEWAY_MAX_BODY_BYTES = 256 * 1024;

/** The body limit of a path: MAX_BODY_BYTES, or GATEWAY_MAX_BODY_BYTES under GATEWAY_PATH_PREFIX. */
export function maxBodyBytesFor(path: string): number {
  return path.startsWith(GATEWAY_PATH_PREFIX) ? GATEWAY_MAX_BODY_BYTES : MAX_BODY_BYTES;
}

/** Longest field or parameter name echoed back: names are the caller's input, cut before redaction. */
const MAX_ECHOED_NAME = 100;

/** A caller-supplied name as it may be echoed: cut, and nothing key-shaped. */
function echoedName(name: string): string {
  return redact(truncate(name, MAX_ECHOED_NAME));
}

/** One JSON Pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`). */
function pointerSegment(name: string): string {
  return name.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Converts zod issues to `{pointer, message}` without ever echoing the input. */
export function issuesToErrors(issues: readonly z.core.$ZodIssue[], prefix = ""): FieldError[] {
  const errors: FieldError[] = [];
  for (const issue of issues) {
    const base = prefix + issue.path.map((p) => "/" + pointerSegment(String(p))).join("");
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        // The name is the caller's input: one shaped like a key (`{"AIza…": …}`) is not echoed.
        errors.push({ pointer: `${base}/${pointerSegment(echoedName(key))}`, message: "unknown field" });
      }
    } else {
      errors.push({ pointer: base || "/", message: issue.message });
    }
  }
  return errors;
}

export interface ValidationOptions {
  /** Picks a more specific code than invalid-request from the field errors (e.g. invalid-key-format). */
  codeFor?: (errors: FieldError[]) => ErrorCode;
  /**
   * Checks the exact text received once it parses as JSON, before the schema sees it (a
   * signed webhook: the signature covers these bytes); throws an AppError to refuse.
   */
  verify?: (text: string) => Promise<void>;
  /** Picks which form of a several-form body validates this JSON (see RouteSpec.body.formFor). */
  formFor?: (data: unknown) => z.ZodType;
}

function validationError(issues: readonly z.core.$ZodIssue[], where: string, options: ValidationOptions): AppError {
  const errors = issuesToErrors(issues);
  const code = options.codeFor?.(errors) ?? "invalid-request";
  const first = errors[0];
  const summary = first ? `${first.pointer}: ${first.message}` : "invalid input";
  return new AppError(code, {
    detail: `the ${where} is invalid (${summary}${errors.length > 1 ? `, and ${errors.length - 1} more` : ""})`,
    errors,
  });
}

/**
 * Reads a JSON body with `readBody` (capped by middleware/body-limit.ts, which answers the 413)
 * and validates it. Throws AppError 415/400 with the offending fields named; never echoes what
 * was sent.
 */
export async function readJsonBody<S extends z.ZodType>(
  request: Request,
  readBody: () => Promise<Uint8Array>,
  schema: S,
  options: ValidationOptions = {},
): Promise<z.output<S>> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type.trim())) {
    throw new AppError("unsupported-media-type", {
      detail: "send the body as JSON with content-type: application/json",
    });
  }
  const text = utf8(await readBody());
  if (text.trim() === "") {
    throw new AppError("invalid-json", {
      detail: "the body is empty; send a JSON object",
      errors: [{ pointer: "/", message: "empty body" }],
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new AppError("invalid-json", { detail: "the body is not valid JSON", errors: [{ pointer: "/", message: "malformed JSON" }] });
  }
  if (options.verify) await options.verify(text);
  const form = options.formFor?.(data) ?? schema;
  const parsed = form.safeParse(data);
  if (!parsed.success) throw validationError(parsed.error.issues, "body", options);
  return parsed.data as z.output<S>;
}

/**
 * Validates the path parameters (`:name` segments, as the router decoded them) against a zod
 * object schema: 404 when they do not fit, as for any path this service does not serve.
 */
export function readParams<S extends z.ZodType>(params: Record<string, string>, schema: S, path: string): z.output<S> {
  const parsed = schema.safeParse(params);
  if (!parsed.success) {
    const errors = issuesToErrors(parsed.error.issues);
    throw new AppError("not-found", {
      detail: `no endpoint at ${redact(truncate(path, 200))} (${errors[0]?.pointer ?? "/"}: ${errors[0]?.message ?? "invalid"})`,
      errors,
    });
  }
  return parsed.data;
}

/** Validates the query string (each parameter once) against a zod object schema. */
export function readQuery<S extends z.ZodType>(request: Request, schema: S): z.output<S> {
  const params = new URL(request.url).searchParams;
  const raw: Record<string, string> = {};
  for (const [key, value] of params) {
    if (key in raw) {
      throw new AppError("invalid-request", {
        detail: `query parameter ${echoedName(key)} is given more than once`,
        errors: [{ pointer: `/${pointerSegment(echoedName(key))}`, message: "repeated parameter" }],
      });
    }
    raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw validationError(parsed.error.issues, "query", {});
  return parsed.data;
}

function utf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new AppError("invalid-json", { detail: "the body is not valid UTF-8", errors: [{ pointer: "/", message: "invalid UTF-8" }] });
  }
}
