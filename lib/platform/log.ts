/**
 * Structured logging: one JSON object per line, carrying the request id. Callers pass only
 * safe fields (ids, providers, counts). As a second line of defence every line is scrubbed
 * of anything shaped like a provider key, a bearer token/JWT or a stored ciphertext, and of
 * the exact keys the request handles (`redactAlso`), whatever their shape.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | null | undefined | string[]>;

/** Where lines go. The default writes to stdout/stderr; tests pass a capturing sink. */
export type LogSink = (level: LogLevel, line: string) => void;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** A child for one request: it and its own children share a fresh set of `redactAlso` values. */
  scope(fields: LogFields): Logger;
  /**
   * Scrubs these exact values from every later line of this logger and of the loggers it
   * shares a scope with (see `scope`: a request): the keys a request handles are redacted
   * even when no pattern knows their shape. Values under 8 characters are ignored.
   */
  redactAlso(...secrets: readonly (string | undefined)[]): void;
}

/**
 * Secret shapes. Each runs in linear time over any input (tests/unit/linear-regex.security.test.ts
 * feeds each a 16 KiB and a 64 KiB worst case): every repeat is either bounded, or the last
 * element of its pattern (a greedy class at the end always succeeds, so nothing backtracks
 * into it). JWTs are found by `redactJwtsInRun` instead: `eyJ…\.…\.…` as one regex backtracks
 * over the whole base64url run after every `eyJ` that is not followed by two dots
 * (quadratic: 64 KiB of "eyJ" took 2 s).
 */
const secretPatterns: RegExp[] = [
  /AIza[0-9A-Za-z_-]{10,}/g, // Gemini standard keys (and other Google API keys)
  // Gemini authorization keys: "AQ." + about 50 base64url characters; "IQ." has been seen too,
  // so any two capitals and a dot before 16 or more key characters (docs/provider-facts.md).
  /\b[A-Z]{2}\.[0-9A-Za-z_-]{16,}/g,
  /ck_pub_[0-9A-Za-z_-]{6,}/g, // CopilotKit publishable keys
  /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, // Exa keys are UUIDs
  /\b[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/_-]{16}:[A-Za-z0-9+/=_-]{20,}/g, // keyId:nonce:ciphertext
  /(sk|pk)_(live|test)_[0-9A-Za-z]{8,}/g, // Clerk secret / publishable keys
];

/** Runs of base64url characters and dots at least as long as the shortest JWT (15): where JWTs hide. */
const dottedRun = /[0-9A-Za-z_.-]{15,}/g;
const REDACTED = "[redacted]";

/**
 * JWTs (Clerk session tokens) in one run of base64url characters and dots, as the pattern
 * `eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*` would find them, segment by
 * segment: a segment holding `eyJ` and 5 more characters, a next segment of 5 or more and a
 * third (possibly empty) one are replaced from the `eyJ` on. Linear in the run's length.
 */
function redactJwtsInRun(run: string): string {
  if (!run.includes("eyJ")) return run;
  const segments = run.split(".");
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    // The leftmost `eyJ` has the most characters after it: if it lacks 5, every later one does.
    const at = segment.indexOf("eyJ");
    if (at >= 0 && segment.length - at >= 8 && i + 2 < segments.length && segments[i + 1]!.length >= 5) {
      out.push(segment.slice(0, at) + REDACTED);
      i += 2; // the payload and the whole signature go with it
    } else {
      out.push(segment);
    }
  }
  return out.join(".");
}

/** Replaces anything shaped like a secret with "[redacted]". Linear in the length of `text`. */
export function redact(text: string): string {
  // JWTs first: a key-shaped piece inside one must not split it and leave the rest behind.
  let out = text.replace(dottedRun, redactJwtsInRun);
  for (const pattern of secretPatterns) out = out.replace(pattern, REDACTED);
  return out;
}

/**
 * The longest string a log field keeps: longer ones are cut (and marked) before the line is
 * redacted, so a caller-supplied value cannot make one log line arbitrarily expensive.
 */
export const MAX_LOG_FIELD_CHARS = 2_000;

/** `text` cut to `max` characters, marked when it was longer; for caller-supplied strings. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[${text.length - max} more characters]`;
}

function boundedFields(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return fields;
  let out: LogFields | undefined;
  for (const [name, value] of Object.entries(fields)) {
    let bounded = value;
    if (typeof value === "string" && value.length > MAX_LOG_FIELD_CHARS) bounded = truncate(value, MAX_LOG_FIELD_CHARS);
    else if (Array.isArray(value) && value.some((v) => v.length > MAX_LOG_FIELD_CHARS)) {
      bounded = value.map((v) => truncate(v, MAX_LOG_FIELD_CHARS));
    }
    if (bounded !== value) (out ??= { ...fields })[name] = bounded;
  }
  return out ?? fields;
}

const defaultSink: LogSink = (level, line) => {
  if (level === "error" || level === "warn") process.stderr.write(line + "\n");
  else process.stdout.write(line + "\n");
};

/** The shortest value `redactAlso` takes: shorter ones would scrub ordinary words. */
const MIN_SECRET_CHARS = 8;

/** `line` without any of `secrets`, raw or as JSON escapes them. Linear in `line` per secret. */
/** `line` with every one of `secrets` replaced, raw or as JSON would escape it. */
export function redactExact(line: string, secrets: ReadonlySet<string>): string {
  let out = line;
  for (const secret of secrets) {
    out = out.split(secret).join(REDACTED);
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret) out = out.split(escaped).join(REDACTED);
  }
  return out;
}

export function createLogger(options: { level?: LogLevel; sink?: LogSink; fields?: LogFields; secrets?: Set<string> } = {}): Logger {
  const min = order[options.level ?? "info"];
  const sink = options.sink ?? defaultSink;
  const base = boundedFields(options.fields) ?? {};
  // Shared with children: a key registered anywhere in a request is scrubbed everywhere in it.
  const secrets = options.secrets ?? new Set<string>();
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (order[level] < min) return;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      level,
      msg: truncate(msg, MAX_LOG_FIELD_CHARS),
      ...base,
      ...boundedFields(fields),
    });
    sink(level, redact(secrets.size > 0 ? redactExact(line, secrets) : line));
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger({ level: options.level, sink, fields: { ...base, ...fields }, secrets }),
    scope: (fields) => createLogger({ level: options.level, sink, fields: { ...base, ...fields } }),
    redactAlso: (...values) => {
      for (const value of values) if (value !== undefined && value.length >= MIN_SECRET_CHARS) secrets.add(value);
    },
  };
}

/** A sink that keeps every line in memory (tests assert that no secret ever reaches one). */
export function memorySink(): { sink: LogSink; lines: string[] } {
  const lines: string[] = [];
  return { sink: (_level, line) => lines.push(line), lines };
}
