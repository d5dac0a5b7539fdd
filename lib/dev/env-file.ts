/**
 * Development-mode `.env` maintenance: set or remove a few `NAME=value` assignments while
 * leaving every other byte of the file as it was.
 *
 * What it writes must mean the same thing to `dotenv`, `node --env-file` and python-dotenv.
 * Values are written unquoted, so they are restricted to printable ASCII without whitespace,
 * quotes (' " `), `#` (a comment for dotenv even without a space before it), `$`
 * (python-dotenv interpolates `${…}`) and backslash (escapes). `=` is allowed: all three
 * split an assignment at its first `=` and keep the rest verbatim (tests/unit/env-file.test.ts
 * proves it for every allowed character), and base64 keyring entries need it.
 *
 * Refusal is thrown, not returned: values reach this module already validated by the
 * provider schemas, so a bad one here is a bug. `set`/`unset` throw
 * `AppError("invalid-key-format")` naming the variable and the offending character class,
 * never the value, before touching the file.
 *
 * Writes are atomic (temp file in the same directory, mode 0600, fsync, rename, fsync of
 * the directory) and serialised per path within the process, so concurrent saves cannot
 * lose each other's updates. The file is processed as latin1 so bytes that are not valid
 * UTF-8 survive unchanged.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, realpath, rename as fsRename, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import dotenv from "dotenv";
import { AppError } from "../http/errors.js";

/** Names we manage: conventional environment variable names. */
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An assignment line as the parsers see it: optional indentation and `export `, a name,
 * `=` with optional blanks around it, then the value. Dotenv also reads names with `.`/`-`.
 */
const assignmentPattern = /^([ \t]*(?:export[ \t]+)?)([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*(.*)$/;

const bom = "\xEF\xBB\xBF"; // UTF-8 byte order mark, as latin1 characters

/** Why `value` cannot be written unquoted into a `.env` file; `undefined` when it can. */
export function envValueProblem(value: string): string | undefined {
  if (typeof value !== "string") return "is not a string";
  if (/[\x00-\x1F\x7F]/.test(value)) return "contains a control character or line break";
  if (/\s/u.test(value)) return "contains whitespace";
  if (/[^\x21-\x7E]/.test(value)) return "contains a non-ASCII character";
  if (/["'`]/.test(value)) return "contains a quote character";
  if (value.includes("#")) return 'contains "#"';
  if (value.includes("$")) return 'contains "$"';
  if (value.includes("\\")) return "contains a backslash";
  return undefined;
}

function assertWritable(values: Record<string, string>): void {
  for (const [name, value] of Object.entries(values)) {
    assertName(name);
    const problem = envValueProblem(value);
    if (problem !== undefined) {
      throw new AppError("invalid-key-format", {
        detail: `refusing to write ${name} to the .env file: the value ${problem}`,
      });
    }
  }
}

function assertName(name: string): void {
  if (!envNamePattern.test(name)) throw new TypeError(`not an environment variable name: ${JSON.stringify(name)}`);
}

interface Entry {
  /** Raw lines with their terminators, exactly as read. */
  raw: string;
  /** For assignments: the text before the name (indentation, `export `). */
  prefix?: string;
  name?: string;
  /** Terminator of the entry's last line: "\n", "\r\n" or "" at end of file. */
  eol: string;
}

/** Splits latin1 text into entries: single lines, or multi-line quoted assignments. */
function tokenize(text: string): Entry[] {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const entries: Entry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const body = line.replace(/\r?\n$/, "");
    const match = assignmentPattern.exec(body);
    if (match === null) {
      entries.push({ raw: line, eol: line.slice(body.length) });
      continue;
    }
    const [, prefix = "", name = "", value = ""] = match;
    // A quoted value may run over several lines (all three parsers allow it); what is
    // inside is not an assignment even if it looks like one.
    let last = i;
    const quote = value[0];
    if (quote === '"' || quote === "'" || quote === "`") {
      const closing = findClosingQuote(lines, i, body.length - value.length, quote);
      if (closing !== undefined) last = closing;
    }
    const raw = lines.slice(i, last + 1).join("");
    const lastLine = lines[last] as string;
    entries.push({ raw, prefix, name, eol: lastLine.slice(lastLine.replace(/\r?\n$/, "").length) });
    i = last;
  }
  return entries;
}

/**
 * Line index holding the quote that closes the one at `column` of line `start`, skipping
 * backslash-escaped quotes as dotenv does; `undefined` when it is never closed (then the
 * parsers read the line as a plain value).
 */
function findClosingQuote(lines: string[], start: number, column: number, quote: string): number | undefined {
  let offset = column + 1;
  for (let i = start; i < lines.length; i++) {
    const line = lines[i] as string;
    for (let j = i === start ? offset : 0; j < line.length; j++) {
      const char = line[j];
      if (char === "\\" && line[j + 1] === quote) j++;
      else if (char === quote) return i;
    }
    offset = 0;
  }
  return undefined;
}

/**
 * The pure text transformation behind `set`/`unset`: replaces the first assignment of each
 * name in `values` in place (keeping its indentation and `export `), removes later ones and
 * every assignment of a name in `remove`, appends names that were missing. Everything else
 * is kept byte for byte. `text` is latin1-decoded file content.
 */
export function updateEnvText(text: string, values: Record<string, string>, remove: readonly string[] = []): string {
  const hasBom = text.startsWith(bom);
  const content = hasBom ? text.slice(bom.length) : text;
  const defaultEol = content.includes("\r\n") ? "\r\n" : "\n";
  const toSet = new Map(Object.entries(values));
  const toRemove = new Set(remove);
  const written = new Set<string>();
  let out = "";
  for (const entry of tokenize(content)) {
    const name = entry.name;
    if (name !== undefined && toSet.has(name)) {
      if (written.has(name)) continue; // a later duplicate would override ours in every parser
      out += `${entry.prefix ?? ""}${name}=${toSet.get(name)}${entry.eol}`;
      written.add(name);
    } else if (name !== undefined && toRemove.has(name)) {
      continue;
    } else {
      out += entry.raw;
    }
  }
  const missing = [...toSet].filter(([name]) => !written.has(name));
  if (missing.length > 0) {
    if (out !== "" && !out.endsWith("\n")) out += defaultEol;
    for (const [name, value] of missing) out += `${name}=${value}${defaultEol}`;
  }
  return (hasBom ? bom : "") + out;
}

/** Replaces `from` → `to`; injectable so tests can simulate a crash at the last step. */
export type RenameFile = (from: string, to: string) => Promise<void>;

export interface EnvFileWriterOptions {
  rename?: RenameFile;
}

const queues = new Map<string, Promise<void>>();

/** Runs `task` after every earlier task for the same key, whatever their outcome. */
function serialize<T>(key: string, task: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const run = previous.then(task);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return run;
}

/** Updates dotenv files atomically; see the module comment for the rules. */
export class EnvFileWriter {
  private readonly rename: RenameFile;

  constructor(options: EnvFileWriterOptions = {}) {
    this.rename = options.rename ?? fsRename;
  }

  /**
   * Sets `values` in the dotenv file at `path`, creating it (mode 0600) if missing.
   * Throws `AppError("invalid-key-format")` for a value that cannot be written safely.
   */
  async set(path: string, values: Record<string, string>): Promise<void> {
    assertWritable(values);
    if (Object.keys(values).length === 0) return;
    await this.update(path, (text) => updateEnvText(text ?? "", values), true);
  }

  /** Removes every assignment of `names` from the file at `path`; a missing file stays missing. */
  async unset(path: string, names: readonly string[]): Promise<void> {
    names.forEach(assertName);
    if (names.length === 0) return;
    await this.update(path, (text) => (text === undefined ? undefined : updateEnvText(text, {}, names)), false);
  }

  private update(path: string, change: (text: string | undefined) => string | undefined, create: boolean): Promise<void> {
    const key = resolve(path);
    return serialize(key, async () => {
      const target = await resolveTarget(key);
      const before = await readLatin1(target);
      const after = change(before);
      if (after === undefined || after === before) return;
      if (before === undefined && !create) return;
      await this.writeAtomically(target, after);
    });
  }

  private async writeAtomically(target: string, text: string): Promise<void> {
    const dir = dirname(target);
    const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    let created = false;
    try {
      const handle = await open(temp, "wx", 0o600);
      created = true;
      try {
        await handle.chmod(0o600); // whatever the umask
        await handle.writeFile(text, "latin1");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.rename(temp, target);
      created = false;
    } catch (error) {
      if (created) await unlink(temp).catch(() => undefined);
      throw error;
    }
    await syncDirectory(dir);
  }
}

/** Follows a symlinked `.env` so the link survives the rename; a missing file resolves to itself. */
async function resolveTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

async function readLatin1(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "latin1");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Makes the rename durable; not every platform lets a directory be opened, so best effort. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}

/** Reads a dotenv file with `dotenv.parse`; a missing file is `{}`. */
export async function readEnvFile(path: string): Promise<Record<string, string>> {
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw error;
  }
  return dotenv.parse(content);
}
