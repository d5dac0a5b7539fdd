/**
 * Development-mode `.env` maintenance: set or remove a few `NAME=value` assignments while
 * leaving every other byte of the file as it was.
 *
 * What it writes must mean the same thing to `dotenv`, `node --env-file` and python-dotenv.
 * Values are written unquoted, so they are restricted to printable ASCII without whitespace,
 * quotes (' " `), `#` (a comment for dotenv even without a space before it), `$`
 * (python-dotenv interpolates `${…}`) and backslash (escapes). `=` is allowed: all three
 * split an assignment at its first `=` and keep the rest verbatim (tests/unit/env-file.happy.test.ts
 * proves it for every allowed character), and base64 keyring entries need it.
 *
 * Refusal is thrown, not returned: values reach this module already validated by the
 * provider schemas, so a bad one here is a bug. `set`/`unset` throw
 * `AppError("invalid-key-format")` naming the variable and the offending character class,
 * never the value, before touching the file.
 *
 * Existing assignments are found the way dotenv finds them (`KEY=value`, `KEY: value`,
 * `export`, quoted values over several lines, `\n`, `\r\n` or bare `\r` line ends), since
 * dotenv is what reads the file back (lib/platform/dev/dotenv.ts, `readEnvFile`). Every edit is then
 * checked by parsing its result with dotenv: one that would not read exactly as intended (a
 * removed key still there, another key changed) is refused with a 500 and the file is left
 * as it was, so a key deleted through the API can never linger in `.env`.
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
import { AppError } from "../../http/errors.js";

/** Names we manage: conventional environment variable names. */
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

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

/**
 * Dotenv's own assignment pattern (dotenv 18, the `LINE` expression of its default parser),
 * with capture groups added, which change nothing about what matches: 1 leading blanks,
 * 2 `export `, 3 the name, 4 the separator (`=` with blanks around it, or `:` and at least
 * one blank: `KEY: value`), 5 the raw value (a quoted value may span lines). It runs on text
 * whose line breaks are normalised as dotenv does first (`\r\n` and a bare `\r` become `\n`).
 * Like dotenv's, it is not linear on pathological files; it only ever sees the developer's
 * own `.env` (which dotenv parses anyway), never request input.
 * tests/unit/env-file.happy.test.ts checks, on generated files, that it finds what dotenv finds.
 */
const dotenvAssignment =
  /^(\s*)((?:export\s+)?)([\w.-]+)(\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?$/dgm;

/** An assignment as dotenv reads it, located in the (BOM-less, latin1) text. */
export interface EnvAssignment {
  name: string;
  /** The whole physical lines the assignment occupies: [start, end), last terminator included. */
  start: number;
  end: number;
  /** The raw value as written (latin1, quotes and all); "" when there is none. */
  rawValue: string;
  /** The text before the name on its first line (indentation and `export `), when that is all it is. */
  prefix: string;
  /** Terminator of the last line: "\n", "\r\n", "\r" or "" at end of file. */
  eol: string;
  /**
   * False when the lines also hold something dotenv reads as another assignment or as part
   * of one (a `KEY:` whose value is on the next line, a U+2028 inside a line): such an
   * assignment cannot be replaced or removed on its own.
   */
  alone: boolean;
}

/**
 * The latin1 text as dotenv's pattern sees it: one character per byte, every byte that is
 * part of a UTF-8 encoded whitespace character (U+00A0, U+2028, U+FEFF…) replaced by that
 * character and every other non-ASCII byte by U+0001 (neither space, word, quote nor line
 * break, like any other non-ASCII character), then dotenv's line break normalisation.
 * `offsets[i]` is the latin1 offset of view character `i` (`offsets[view.length]` = end).
 * `inside[i]` is true for the latin1 offsets that continue a multi-byte character.
 */
function dotenvView(text: string): { view: string; offsets: number[]; inside: boolean[] } {
  const chars: string[] = [];
  const inside: boolean[] = [];
  for (let i = 0; i < text.length; ) {
    const code = text.charCodeAt(i);
    if (code < 0x80) {
      chars.push(text[i] as string);
      inside.push(false);
      i++;
      continue;
    }
    const sequence = utf8SequenceAt(text, i);
    if (sequence === undefined) {
      chars.push("\x01");
      inside.push(false);
      i++;
      continue;
    }
    const char = String.fromCodePoint(sequence.codePoint);
    const stand = /\s/.test(char) ? char : "\x01";
    for (let k = 0; k < sequence.length; k++) {
      chars.push(stand);
      inside.push(k > 0);
    }
    i += sequence.length;
  }
  let view = "";
  const offsets: number[] = [];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string;
    offsets.push(i);
    if (char === "\r") {
      view += "\n";
      if (chars[i + 1] === "\n") i++;
    } else {
      view += char;
    }
  }
  offsets.push(text.length);
  return { view, offsets, inside };
}

/** The well-formed UTF-8 character starting at `i` of latin1 `text`, if there is one. */
function utf8SequenceAt(text: string, i: number): { codePoint: number; length: number } | undefined {
  const lead = text.charCodeAt(i);
  let length: number;
  let codePoint: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) [length, codePoint] = [2, lead & 0x1f];
  else if (lead >= 0xe0 && lead <= 0xef) {
    [length, codePoint] = [3, lead & 0x0f];
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    [length, codePoint] = [4, lead & 0x07];
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else return undefined;
  for (let k = 1; k < length; k++) {
    const byte = i + k < text.length ? text.charCodeAt(i + k) : -1;
    if (byte < (k === 1 ? low : 0x80) || byte > (k === 1 ? high : 0xbf)) return undefined;
    codePoint = (codePoint << 6) | (byte & 0x3f);
  }
  return { codePoint, length };
}

/**
 * The assignments dotenv reads in latin1 `text` (without its BOM), in file order, located
 * by whole physical lines so that replacing or removing one keeps every other byte.
 */
export function scanEnvText(text: string): EnvAssignment[] {
  const { view, offsets, inside } = dotenvView(text);
  const at = (viewIndex: number) => offsets[viewIndex] as number;
  const found: EnvAssignment[] = [];
  for (const match of view.matchAll(dotenvAssignment)) {
    const indices = match.indices as RegExpIndicesArray;
    const [exportStart] = indices[2] as [number, number];
    const [nameStart] = indices[3] as [number, number];
    const separatorEnd = (indices[4] as [number, number])[1];
    const valueSpan = indices[5];
    const valueEnd = valueSpan ? valueSpan[1] : separatorEnd;
    const lineStart = view.lastIndexOf("\n", exportStart - 1) + 1;
    const newline = view.indexOf("\n", valueEnd);
    const lineEnd = newline === -1 ? view.length : newline + 1;
    const before = view.slice(lineStart, nameStart);
    const rawPrefix = text.slice(at(lineStart), at(nameStart));
    // dotenv's `^` also matches after U+2028 and U+2029, which no editor shows as a line end:
    // that is the only way a second assignment, or anything but blanks and `export`, can stand
    // on the same physical line as a name (every other `^` follows a "\n" of the view), so such
    // a line is never changed alone.
    const alone = !/[\u2028\u2029]/.test(view.slice(lineStart, lineEnd));
    let valueStart = valueSpan ? at(valueSpan[0]) : at(valueEnd);
    while (inside[valueStart]) valueStart++; // a separator blank that is one multi-byte character
    found.push({
      name: match[3] as string,
      start: at(lineStart),
      end: at(lineEnd),
      rawValue: valueSpan ? text.slice(valueStart, at(valueEnd)) : "",
      prefix: /^[ \t]*(?:export[ \t]+)?$/.test(rawPrefix) ? rawPrefix : /^\s*export\s/.test(before) ? "export " : "",
      eol: newline === -1 ? "" : text.slice(at(newline), at(lineEnd)),
      alone,
    });
  }
  return found;
}

/**
 * The pure text transformation behind `set`/`unset`: replaces the first assignment of each
 * name in `values` in place (keeping its indentation and `export `), removes later ones and
 * every assignment of a name in `remove`, appends names that were missing. Everything else
 * is kept byte for byte. `text` is latin1-decoded file content. Assignments are found as
 * dotenv finds them (`KEY=value`, `KEY: value`, `export`, quoted values over several lines,
 * `\n`, `\r\n` or bare `\r` line ends). Throws `AppError("internal-error")` when an
 * assignment to change shares its lines with another one (see `EnvAssignment.alone`), or when
 * the file's last assignment would read an appended line as its value (a last line `NAME:`).
 */
export function updateEnvText(text: string, values: Record<string, string>, remove: readonly string[] = []): string {
  const hasBom = text.startsWith(bom);
  const content = hasBom ? text.slice(bom.length) : text;
  const defaultEol = /\r\n|\r|\n/.exec(content)?.[0] ?? "\n";
  const toSet = new Map(Object.entries(values));
  const toRemove = new Set(remove);
  const found = scanEnvText(content);
  const touched = found.filter((a) => toSet.has(a.name) || toRemove.has(a.name));
  const entangled = [...new Set(touched.filter((a) => !a.alone).map((a) => a.name))];
  if (entangled.length > 0) {
    throw new AppError("internal-error", {
      detail: `the .env file was left unchanged: ${entangled.join(", ")} shares its line with another assignment, so it cannot be changed alone; edit the file by hand`,
    });
  }
  const written = new Set<string>();
  let out = "";
  let cursor = 0;
  for (const assignment of touched) {
    out += content.slice(cursor, assignment.start);
    cursor = assignment.end;
    const { name } = assignment;
    // Only the first one is replaced: a later duplicate would override it in every parser.
    if (toSet.has(name) && !written.has(name)) {
      out += `${assignment.prefix}${name}=${toSet.get(name)}${assignment.eol}`;
      written.add(name);
    }
  }
  out += content.slice(cursor);
  const missing = [...toSet].filter(([name]) => !written.has(name));
  if (missing.length > 0 && out !== "" && !/[\r\n]$/.test(out)) out += defaultEol;
  const blockStart = out.length;
  for (const [name, value] of missing) out += `${name}=${value}${defaultEol}`;
  const result = scanEnvText(out);
  // A last line `NAME:` with nothing after it takes the next line as its value in dotenv.
  const swallowing = result.find((a) => a.start < blockStart && a.end > blockStart);
  if (swallowing) {
    throw new AppError("internal-error", {
      detail: `the .env file was left unchanged: its last assignment (${swallowing.name}) would read the added line as its value; edit the file by hand`,
    });
  }
  // Removing lines can join the ones around them into an assignment (a bare `A` line, then
  // ` = x`: dotenv's blank before `=` may be a line break): the result must hold exactly the
  // assignments intended, each untouched one with its value as it was written.
  const expected = rawValues(found);
  for (const name of toRemove) expected.delete(name);
  for (const [name, value] of toSet) expected.set(name, value);
  const actual = rawValues(result);
  const changed = [...new Set([...expected.keys(), ...actual.keys()])].filter((name) => expected.get(name) !== actual.get(name));
  if (changed.length > 0) {
    throw new AppError("internal-error", {
      detail: `the .env file was left unchanged: the lines around the edit would read differently (${changed.join(", ")}); edit the file by hand`,
    });
  }
  return (hasBom ? bom : "") + out;
}

/** Each name's raw value as dotenv keeps it (the last assignment wins). */
function rawValues(assignments: readonly EnvAssignment[]): Map<string, string> {
  return new Map(assignments.map((a) => [a.name, a.rawValue]));
}

/**
 * Refuses an edit unless dotenv (its default parser and its `fast` one) reads `after` exactly
 * as intended: every name in `values` with its new value, every name in `remove` gone, every
 * other name as in `before`. Names only, never values, in the error.
 */
export function checkEnvEdit(
  path: string,
  before: string | undefined,
  after: string,
  values: Record<string, string>,
  remove: readonly string[],
): void {
  const wrong = new Set<string>();
  for (const fast of [false, true]) {
    const was = before === undefined ? {} : dotenv.parse(Buffer.from(before, "latin1"), { fast });
    const now = dotenv.parse(Buffer.from(after, "latin1"), { fast });
    const read = (parsed: Record<string, string>, name: string) => (Object.hasOwn(parsed, name) ? parsed[name] : undefined);
    for (const name of new Set([...Object.keys(was), ...Object.keys(now), ...Object.keys(values), ...remove])) {
      const expected = Object.hasOwn(values, name) ? values[name] : remove.includes(name) ? undefined : read(was, name);
      if (read(now, name) !== expected) wrong.add(name);
    }
  }
  if (wrong.size > 0) {
    throw new AppError("internal-error", {
      detail: `${path} was left unchanged: after the edit dotenv would not read ${[...wrong].join(", ")} as intended; edit the file by hand`,
    });
  }
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
    await this.update(path, values, [], true);
  }

  /** Removes every assignment of `names` from the file at `path`; a missing file stays missing. */
  async unset(path: string, names: readonly string[]): Promise<void> {
    names.forEach(assertName);
    if (names.length === 0) return;
    await this.update(path, {}, names, false);
  }

  private update(path: string, values: Record<string, string>, remove: readonly string[], create: boolean): Promise<void> {
    const key = resolve(path);
    return serialize(key, async () => {
      const target = await resolveTarget(key);
      const before = await readLatin1(target);
      if (before === undefined && !create) return;
      const after = updateEnvText(before ?? "", values, remove);
      if (after === before) return;
      // What dotenv will read is what counts: an edit it would read otherwise is not written.
      checkEnvEdit(path, before, after, values, remove);
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
