/**
 * Structured logging: one JSON object per line, carrying the request id. Callers pass only
 * safe fields (ids, providers, counts). As a second line of defence every line is scrubbed
 * of anything shaped like a provider key, a bearer token/JWT or a stored ciphertext.
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
}

const secretPatterns: RegExp[] = [
  /AIza[0-9A-Za-z_-]{10,}/g, // Gemini / Google API keys
  /ck_pub_[0-9A-Za-z_-]{6,}/g, // CopilotKit publishable keys
  /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, // Exa keys are UUIDs
  /eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*/g, // JWTs (Clerk session tokens)
  /\b[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/_-]{16}:[A-Za-z0-9+/=_-]{20,}/g, // keyId:nonce:ciphertext
  /(sk|pk)_(live|test)_[0-9A-Za-z]{8,}/g, // Clerk secret / publishable keys
];

/** Replaces anything shaped like a secret with "[redacted]". */
export function redact(text: string): string {
  let out = text;
  for (const pattern of secretPatterns) out = out.replace(pattern, "[redacted]");
  return out;
}

const defaultSink: LogSink = (level, line) => {
  if (level === "error" || level === "warn") process.stderr.write(line + "\n");
  else process.stdout.write(line + "\n");
};

export function createLogger(options: { level?: LogLevel; sink?: LogSink; fields?: LogFields } = {}): Logger {
  const min = order[options.level ?? "info"];
  const sink = options.sink ?? defaultSink;
  const base = options.fields ?? {};
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (order[level] < min) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields });
    sink(level, redact(line));
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger({ level: options.level, sink, fields: { ...base, ...fields } }),
  };
}

/** A sink that keeps every line in memory (tests assert that no secret ever reaches one). */
export function memorySink(): { sink: LogSink; lines: string[] } {
  const lines: string[] = [];
  return { sink: (_level, line) => lines.push(line), lines };
}
