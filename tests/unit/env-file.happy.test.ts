import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename as fsRename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import dotenv from "dotenv";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKeyringEntry } from "../../lib/platform/crypto.js";
import { AppError } from "../../lib/http/errors.js";
import {
  EnvFileWriter,
  envValueProblem,
  checkEnvEdit,
  readEnvFile,
  scanEnvText,
  updateEnvText,
  type RenameFile,
} from "../../lib/platform/dev/env-file.js";
import { testSeed } from "../helpers/seed.js";
import { parseWithDotenv, parseWithNode, parseWithPython, pythonDotenvMissing } from "../helpers/dotenv-parsers.js";

if (pythonDotenvMissing) console.warn(`[env-file.happy.test] python-dotenv check ${pythonDotenvMissing}`);

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "byok-envfile-"));
  file = join(dir, ".env");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const read = (path = file) => readFile(path, "latin1");
const tempFiles = async () => (await readdir(dir)).filter((name) => name.endsWith(".tmp"));

describe("EnvFileWriter.set", () => {
  it("creates a missing file with mode 0600", async () => {
    await new EnvFileWriter().set(file, { GEMINI_API_KEY: "AIzaabc", EXA_API_KEY: "x-1" });
    expect(await read()).toBe("GEMINI_API_KEY=AIzaabc\nEXA_API_KEY=x-1\n");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("keeps comments and other lines byte for byte, replaces in place, keeps `export `", async () => {
    const original = [
      "# Backend settings",
      "",
      "DATABASE_URL=postgres://u:p@localhost/db # local",
      "export GEMINI_API_KEY=old-gemini",
      "   # indented comment with GEMINI_API_KEY=not-this-one",
      '  export   EXA_API_KEY = "old exa"  ',
      "OTHER='single quoted'",
      "GEMINI_API_KEY=duplicate-later",
      "export GEMINI_API_KEY=another-duplicate",
      "TRAILING=1",
      "",
    ].join("\n");
    await writeFile(file, original);
    await new EnvFileWriter().set(file, { GEMINI_API_KEY: "new-gemini", EXA_API_KEY: "new-exa", COPILOTKIT_API_KEY: "ck" });
    expect(await read()).toBe(
      [
        "# Backend settings",
        "",
        "DATABASE_URL=postgres://u:p@localhost/db # local",
        "export GEMINI_API_KEY=new-gemini",
        "   # indented comment with GEMINI_API_KEY=not-this-one",
        "  export   EXA_API_KEY=new-exa",
        "OTHER='single quoted'",
        "TRAILING=1",
        "COPILOTKIT_API_KEY=ck",
        "",
      ].join("\n"),
    );
  });

  it("adds a newline before appending to a file that lacks one, and keeps a last line without one", async () => {
    await writeFile(file, "A=1");
    await new EnvFileWriter().set(file, { B: "2" });
    expect(await read()).toBe("A=1\nB=2\n");

    await writeFile(file, "A=1\nB=old");
    await new EnvFileWriter().set(file, { B: "new" });
    expect(await read()).toBe("A=1\nB=new");
  });

  it("keeps CRLF line endings and appends with CRLF", async () => {
    await writeFile(file, "# c\r\nA=1\r\nB=2\r\n");
    await new EnvFileWriter().set(file, { A: "x", C: "3" });
    expect(await read()).toBe("# c\r\nA=x\r\nB=2\r\nC=3\r\n");
  });

  it("keeps a UTF-8 BOM and bytes that are not valid UTF-8", async () => {
    const original = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from("# caf"),
      Buffer.from([0xe9, 0xff, 0xfe]),
      Buffer.from(" é\nA=1\n"),
    ]);
    await writeFile(file, original);
    await new EnvFileWriter().set(file, { A: "2" });
    const expected = Buffer.concat([original.subarray(0, original.length - "A=1\n".length), Buffer.from("A=2\n")]);
    expect((await readFile(file)).equals(expected)).toBe(true);
  });

  it("does not touch look-alike lines inside a multi-line quoted value", async () => {
    const original = ['PEM="-----BEGIN KEY-----', "GEMINI_API_KEY=inside-the-pem", '-----END KEY-----"', "GEMINI_API_KEY=real", ""].join(
      "\n",
    );
    await writeFile(file, original);
    await new EnvFileWriter().set(file, { GEMINI_API_KEY: "new" });
    expect(await read()).toBe(original.replace("GEMINI_API_KEY=real", "GEMINI_API_KEY=new"));
    expect(parseWithDotenv(file).GEMINI_API_KEY).toBe("new");
    expect(parseWithNode(file).GEMINI_API_KEY).toBe("new");
  });

  it("replaces a multi-line quoted assignment of the key as a whole", async () => {
    await writeFile(file, 'A=1\nGEMINI_API_KEY="line1\nline2"\nB=2\n');
    await new EnvFileWriter().set(file, { GEMINI_API_KEY: "k" });
    expect(await read()).toBe("A=1\nGEMINI_API_KEY=k\nB=2\n");
  });

  it("does not mistake names that merely start with the key for it", async () => {
    await writeFile(file, "GEMINI_API_KEY_OLD=a\nMY_GEMINI_API_KEY=b\nexportGEMINI_API_KEY=c\n");
    await new EnvFileWriter().set(file, { GEMINI_API_KEY: "k" });
    expect(await read()).toBe("GEMINI_API_KEY_OLD=a\nMY_GEMINI_API_KEY=b\nexportGEMINI_API_KEY=c\nGEMINI_API_KEY=k\n");
  });

  it("is idempotent, and does not rewrite a file the edit leaves as it is", async () => {
    await writeFile(file, "# keep\nexport A=0\nB=1\n");
    let renames = 0;
    const writer = new EnvFileWriter({
      rename: (from, to) => {
        renames++;
        return fsRename(from, to);
      },
    });
    await writer.set(file, { A: "x", C: "y" });
    expect(renames).toBe(1);
    const once = await read();
    await writer.set(file, { A: "x", C: "y" });
    await writer.set(file, { C: "y", A: "x" });
    await writer.unset(file, ["NOT_THERE"]);
    expect(renames).toBe(1);
    expect(await read()).toBe(once);
    expect(once).toBe("# keep\nexport A=x\nB=1\nC=y\n");
  });

  it("follows a symlinked file and keeps the link", async () => {
    const real = join(dir, "real.env");
    await writeFile(real, "A=1\n");
    await symlink(real, file);
    await new EnvFileWriter().set(file, { A: "2" });
    expect((await lstat(file)).isSymbolicLink()).toBe(true);
    expect(await readlink(file)).toBe(real);
    expect(await read(real)).toBe("A=2\n");
  });

  it("serialises concurrent writes to one file (no lost updates)", async () => {
    const writers = [new EnvFileWriter(), new EnvFileWriter()];
    await writeFile(file, "# start\n");
    await Promise.all(Array.from({ length: 40 }, (_, i) => writers[i % 2]!.set(file, { [`K${i}`]: `v${i}` })));
    const parsed = await readEnvFile(file);
    for (let i = 0; i < 40; i++) expect(parsed[`K${i}`], `K${i}`).toBe(`v${i}`);
    expect(await tempFiles()).toEqual([]);
  });

  it("keeps a write queued behind one in flight after an earlier one has finished", async () => {
    // The second write is held at its rename; the third is sent after the first has finished.
    // It must wait for the second, or the second's rename would drop the third's key.
    await writeFile(file, "# start\n");
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let secondAtRename!: () => void;
    const secondReady = new Promise<void>((resolve) => (secondAtRename = resolve));
    let calls = 0;
    const writer = new EnvFileWriter({
      rename: async (from, to) => {
        if (++calls === 2) {
          secondAtRename();
          await held;
        }
        await fsRename(from, to);
      },
    });
    const first = writer.set(file, { K1: "v1" });
    const second = writer.set(file, { K2: "v2" });
    await first;
    await secondReady;
    let thirdDone = false;
    const third = writer.set(file, { K3: "v3" }).then(() => (thirdDone = true));
    // Time enough for a third write that skipped the queue to finish (with the queue it cannot).
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(thirdDone).toBe(false);
    release();
    await Promise.all([second, third]);
    expect(await readEnvFile(file)).toEqual({ K1: "v1", K2: "v2", K3: "v3" });
  });

  it("closes every file it opens", async () => {
    if (process.platform !== "linux") return;
    const openFiles = async () => (await readdir("/proc/self/fd")).length;
    const writer = new EnvFileWriter();
    await writer.set(file, { W: "0" });
    const before = await openFiles();
    for (let i = 1; i <= 20; i++) await writer.set(file, { W: String(i) });
    expect(await openFiles()).toBeLessThan(before + 5);
  });

  it("leaves a missing file missing when there is nothing to set", async () => {
    await new EnvFileWriter().set(file, {});
    expect(await readdir(dir)).toEqual([]);
  });

  it("keeps serving writes after one fails", async () => {
    let fail = true;
    const writer = new EnvFileWriter({
      rename: async (from, to) => {
        if (fail) {
          fail = false;
          throw new Error("disk full");
        }
        const { rename } = await import("node:fs/promises");
        await rename(from, to);
      },
    });
    const first = writer.set(file, { A: "1" });
    const second = writer.set(file, { B: "2" });
    await expect(first).rejects.toThrow("disk full");
    await second;
    expect(await read()).toBe("B=2\n");
  });
});

describe("atomicity", () => {
  it("leaves the original untouched and no temp file behind when the write fails before the rename", async () => {
    const original = "# mine\nexport GEMINI_API_KEY=old\nOTHER=1\n";
    await writeFile(file, original);
    const seen: Array<{ from: string; to: string; content: string; mode: number }> = [];
    const crashing: RenameFile = async (from, to) => {
      seen.push({ from, to, content: await read(from), mode: (await stat(from)).mode & 0o777 });
      throw new Error("simulated crash before rename");
    };
    await expect(new EnvFileWriter({ rename: crashing }).set(file, { GEMINI_API_KEY: "new" })).rejects.toThrow(
      "simulated crash before rename",
    );
    expect(await read()).toBe(original);
    expect(await tempFiles()).toEqual([]);
    // The temp file was complete, private and in the same directory (so rename is atomic).
    expect(seen).toHaveLength(1);
    expect(dirname(seen[0]!.from)).toBe(dir);
    expect(seen[0]!.to).toBe(file);
    expect(seen[0]!.content).toBe("# mine\nexport GEMINI_API_KEY=new\nOTHER=1\n");
    expect(seen[0]!.mode).toBe(0o600);
  });

  it("does not create the file when the first write fails", async () => {
    const crashing: RenameFile = async () => {
      throw new Error("crash");
    };
    await expect(new EnvFileWriter({ rename: crashing }).set(file, { A: "1" })).rejects.toThrow("crash");
    expect(await readdir(dir)).toEqual([]);
  });

  it("ignores a temp file left over by a crashed process", async () => {
    await writeFile(file, "A=1\n");
    const leftover = join(dir, ".env.99999.deadbeefcafe.tmp");
    await writeFile(leftover, "A=half-writ");
    await new EnvFileWriter().set(file, { B: "2" });
    expect(await read()).toBe("A=1\nB=2\n");
    expect(await readEnvFile(file)).toEqual({ A: "1", B: "2" });
    expect(await read(leftover)).toBe("A=half-writ"); // not ours to delete, and never read
  });
});

describe("EnvFileWriter.unset", () => {
  it("removes every assignment of the names and nothing else", async () => {
    await writeFile(file, "# c\nexport A=1\nB=2\n  A=3\n# A=comment\nC=4");
    await new EnvFileWriter().unset(file, ["A", "C"]);
    expect(await read()).toBe("# c\nB=2\n# A=comment\n");
  });

  it("leaves a missing file missing and an unchanged file alone", async () => {
    await new EnvFileWriter().unset(file, ["A"]);
    expect(await readdir(dir)).toEqual([]);
    await writeFile(file, "B=1\n");
    await new EnvFileWriter().unset(file, ["A"]);
    expect(await read()).toBe("B=1\n");
  });
});

describe("refusing values that could break out of a line", () => {
  const classes: Array<[string, string[], string]> = [
    [
      "control characters and line breaks",
      ["\n", "\r", "\r\n", "\0", "\t", "\x1b", "\x7f", "\v", "\f"],
      "contains a control character or line break",
    ],
    ["whitespace", [" ", "\u00a0", "\u2028", "\u2029", "\u3000", "\ufeff"], "contains whitespace"],
    ["non-ASCII", ["é", "\u200b", "🔑"], "contains a non-ASCII character"],
    ["quotes", ['"', "'", "`"], "contains a quote character"],
    ["hash", ["#"], 'contains "#"'],
    ["dollar", ["$", "${HOME}"], 'contains "$"'],
    ["backslash", ["\\", "\\n"], "contains a backslash"],
  ];

  for (const [name, chars, message] of classes) {
    it(`refuses ${name} before touching the file, without echoing the value`, async () => {
      const original = "# keep\nGEMINI_API_KEY=old\n";
      await writeFile(file, original);
      for (const char of chars) {
        for (const value of [`AIzaSecretPart${char}`, `${char}AIzaSecretPart`, `AIza${char}SecretPart`]) {
          const error = await new EnvFileWriter().set(file, { OK: "fine", GEMINI_API_KEY: value }).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error instanceof AppError, JSON.stringify(value)).toBe(true);
          if (!(error instanceof AppError)) continue;
          expect(error.code).toBe("invalid-key-format");
          expect(error.detail).toBe(`refusing to write GEMINI_API_KEY to the .env file: the value ${message}`);
          expect(error.detail).not.toContain("SecretPart");
          expect(error.message).not.toContain("SecretPart");
          expect(await read()).toBe(original);
        }
      }
      expect(await tempFiles()).toEqual([]);
    });
  }

  it("does not create a file for a refused value", async () => {
    await expect(new EnvFileWriter().set(file, { A: "a b" })).rejects.toMatchObject({ code: "invalid-key-format" });
    expect(await readdir(dir)).toEqual([]);
  });

  it("refuses names that are not environment variable names", async () => {
    for (const name of ["", "1A", "A B", "A=B", "A\nB", "A-B", "export A", "#A"]) {
      const message = `not an environment variable name: ${JSON.stringify(name)}`;
      await expect(new EnvFileWriter().set(file, { [name]: "v" }), JSON.stringify(name)).rejects.toThrow(new TypeError(message));
      await expect(new EnvFileWriter().unset(file, [name])).rejects.toThrow(new TypeError(message));
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it("envValueProblem accepts exactly printable ASCII minus whitespace, quotes, #, $ and backslash", () => {
    for (let code = 0; code < 0x3000; code++) {
      const char = String.fromCharCode(code);
      const allowed = code >= 0x21 && code <= 0x7e && !`"'\`#$\\`.includes(char);
      expect(envValueProblem(`a${char}b`) === undefined, `U+${code.toString(16)}`).toBe(allowed);
    }
    expect(envValueProblem("")).toBeUndefined();
    for (const notText of [42, null, undefined, {}, ["a"]]) expect(envValueProblem(notText as never)).toBe("is not a string");
  });
});

/** Every character the writer accepts, in every position, plus realistic values. */
function agreementValues(): Record<string, string> {
  const allowed: string[] = [];
  for (let code = 0x21; code <= 0x7e; code++) {
    const char = String.fromCharCode(code);
    if (envValueProblem(char) === undefined) allowed.push(char);
  }
  const values: Record<string, string> = {
    GEMINI_API_KEY: "AIzaSyA1b2C3d4E5f6G7h8I9j0K_l-MnOpQrStU",
    EXA_API_KEY: "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    COPILOTKIT_API_KEY: "ck_pub_0123456789abcdefABCDEF_-xyz",
    REACT_APP_COPILOTKIT_API_KEY: "ck_pub_0123456789abcdefABCDEF_-xyz",
    KEY_ENCRYPTION_KEYS: `${generateKeyringEntry("k2")},${generateKeyringEntry("k1")}`,
    EMPTY: "",
    EQ_START: "=abc",
    EQ_END: "abc==",
    EQ_ONLY: "=",
    EQ_MANY: "a=b=c==",
    URLISH: "https://user:pw@host:5432/db?sslmode=require&x=1",
    ALL: allowed.join(""),
  };
  allowed.forEach((char, i) => {
    values[`ONE_${i}`] = char;
    values[`MID_${i}`] = `a${char}b`;
    values[`END_${i}`] = `ab${char}`;
    values[`TWO_${i}`] = `${char}${char}`;
  });
  // Deterministic pseudo-random strings over the allowed alphabet.
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < 300; i++) {
    const length = next() % 60;
    values[`RAND_${i}`] = Array.from({ length }, () => allowed[next() % allowed.length]).join("");
  }
  return values;
}

describe("parser agreement: what the writer writes reads back identically", () => {
  const existing = [
    "# existing settings all three parsers read the same way",
    "PLAIN=value",
    "export EXPORTED=exported-value",
    "SPACED = spaced",
    'DOUBLE="double quoted"',
    "SINGLE='single quoted'",
    "COMMENTED=value # trailing comment",
    "GEMINI_API_KEY=old-gemini",
    "export EXA_API_KEY=old-exa",
    "",
  ].join("\n");
  const existingValues = {
    PLAIN: "value",
    EXPORTED: "exported-value",
    SPACED: "spaced",
    DOUBLE: "double quoted",
    SINGLE: "single quoted",
    COMMENTED: "value",
  };

  let expected: Record<string, string>;
  beforeEach(async () => {
    await writeFile(file, existing);
    const values = agreementValues();
    await new EnvFileWriter().set(file, values);
    expected = { ...existingValues, ...values };
    // Also replaced in place: EXA_API_KEY keeps its `export `.
    expect(await read()).toContain(`export EXA_API_KEY=${values.EXA_API_KEY}\n`);
  });

  it("(a) dotenv.parse and readEnvFile", async () => {
    expect(parseWithDotenv(file)).toEqual(expected);
    expect(await readEnvFile(file)).toEqual(expected);
  });

  it("(b) node --env-file", () => {
    expect(parseWithNode(file)).toEqual(expected);
  });

  it("(c) python-dotenv", (ctx) => {
    if (pythonDotenvMissing) ctx.skip(pythonDotenvMissing);
    expect(parseWithPython(file)).toEqual(expected);
  });

  it("after an unset too", async (ctx) => {
    await new EnvFileWriter().unset(file, ["GEMINI_API_KEY", "EXA_API_KEY", "EMPTY"]);
    const { GEMINI_API_KEY: _g, EXA_API_KEY: _e, EMPTY: _m, ...rest } = expected;
    expect(parseWithDotenv(file)).toEqual(rest);
    expect(parseWithNode(file)).toEqual(rest);
    if (pythonDotenvMissing) ctx.skip(pythonDotenvMissing);
    expect(parseWithPython(file)).toEqual(rest);
  });
});

describe("why the refused characters are refused", () => {
  // Written by hand (the writer refuses them): each one is read back as something other
  // than the literal value by at least one parser.
  const samples = ["x${HOME}y", "a#b", "'q", '"q', "`q", "ab ", " ab", "a\\nb'"];

  it("at least one parser changes each value", async (ctx) => {
    if (pythonDotenvMissing) ctx.skip(pythonDotenvMissing);
    const lines = samples.map((value, i) => `S${i}=${value}`);
    await writeFile(file, lines.join("\n") + "\n");
    const parsed = [parseWithDotenv(file), parseWithNode(file), parseWithPython(file)];
    samples.forEach((value, i) => {
      const readings = parsed.map((p) => p[`S${i}`]);
      expect(
        readings.every((r) => r === value),
        `${JSON.stringify(value)} read as ${JSON.stringify(readings)}`,
      ).toBe(false);
    });
  });
});

describe("readEnvFile", () => {
  it("returns {} for a missing file", async () => {
    expect(await readEnvFile(join(dir, "nope.env"))).toEqual({});
  });

  it("fails on a path that cannot be read, rather than reading it as empty", async () => {
    await mkdir(file);
    await expect(readEnvFile(file)).rejects.toMatchObject({ code: "EISDIR" });
    await expect(new EnvFileWriter().unset(file, ["A"])).rejects.toMatchObject({ code: "EISDIR" });
    await expect(new EnvFileWriter().set(file, { A: "1" })).rejects.toMatchObject({ code: "EISDIR" });
  });

  it("parses with dotenv", async () => {
    await writeFile(file, "# c\nexport A=1\nB='two words'\n");
    expect(await readEnvFile(file)).toEqual({ A: "1", B: "two words" });
  });
});

describe("updateEnvText", () => {
  it("is the same transformation the writer applies", () => {
    expect(updateEnvText("", { A: "1" })).toBe("A=1\n");
    expect(updateEnvText("A=0\nA=1\n", { A: "2" })).toBe("A=2\n");
    expect(updateEnvText("X=1\nA=0\n", {}, ["A"])).toBe("X=1\n");
  });
});

describe("what dotenv understands beyond KEY=value", () => {
  it("removes a `KEY: value` line, so a key deleted through the API is gone for dotenv", async () => {
    await writeFile(file, "# mine\nGEMINI_API_KEY: OLD\nOTHER=1\n");
    await new EnvFileWriter().unset(file, ["GEMINI_API_KEY"]);
    expect(await read()).toBe("# mine\nOTHER=1\n");
    expect(parseWithDotenv(file)).toEqual({ OTHER: "1" });
  });

  it("replaces `KEY: value`, `export KEY: value` and `KEY:` with its value on the next line", async () => {
    await writeFile(file, "A: old-a\n  export B:   old-b # note\nC:\nold-c\nD=1\n");
    await new EnvFileWriter().set(file, { A: "new-a", B: "new-b", C: "new-c" });
    expect(await read()).toBe("A=new-a\n  export B=new-b\nC=new-c\nD=1\n");
    expect(parseWithDotenv(file)).toEqual({ A: "new-a", B: "new-b", C: "new-c", D: "1" });
  });

  it("treats a bare \\r as a line end, as dotenv does, and appends with it", async () => {
    await writeFile(file, "A=1\rGEMINI_API_KEY=OLD\rB=2\r");
    expect(parseWithDotenv(file)).toEqual({ A: "1", GEMINI_API_KEY: "OLD", B: "2" });
    await new EnvFileWriter().unset(file, ["GEMINI_API_KEY"]);
    expect(await read()).toBe("A=1\rB=2\r");
    await new EnvFileWriter().set(file, { A: "x", C: "3" });
    expect(await read()).toBe("A=x\rB=2\rC=3\r");
    expect(parseWithDotenv(file)).toEqual({ A: "x", B: "2", C: "3" });
  });

  it("finds assignments after mixed line ends and keeps each line's own", async () => {
    await writeFile(file, "A=1\r\nB: 2\rC=3\nD=4");
    await new EnvFileWriter().set(file, { B: "b", D: "d" });
    expect(await read()).toBe("A=1\r\nB=b\rC=3\nD=d");
  });

  it("removes a value dotenv reads from the line after `KEY=` together with it", async () => {
    await writeFile(file, 'GEMINI_API_KEY=\n"OLD"\nB=2\n');
    expect(parseWithDotenv(file).GEMINI_API_KEY).toBe("OLD");
    await new EnvFileWriter().unset(file, ["GEMINI_API_KEY"]);
    expect(parseWithDotenv(file)).toEqual({ B: "2" });
  });
});

describe("scanEnvText: where each assignment is, by whole lines", () => {
  const at = (name: string, start: number, end: number, rawValue: string, prefix: string, eol: string, alone = true) => ({
    name,
    start,
    end,
    rawValue,
    prefix,
    eol,
    alone,
  });
  // Texts are latin1 (one character per byte): "\xC2\xA0" is U+00A0 in UTF-8, "\xE3\x80\x80" U+3000.
  const cases: Array<[string, ReturnType<typeof at>[]]> = [
    ["A=1\nB=2", [at("A", 0, 4, "1", "", "\n"), at("B", 4, 7, "2", "", "")]],
    ["  export  A=1\r\nB=2\r", [at("A", 0, 15, "1", "  export  ", "\r\n"), at("B", 15, 19, "2", "", "\r")]],
    ["\texport\tA = 1\r", [at("A", 0, 14, " 1", "\texport\t", "\r")]],
    // Whitespace that is not a blank or a tab before the name: only `export ` is kept.
    ["\xC2\xA0export A=1\n", [at("A", 0, 13, "1", "export ", "\n")]],
    ["export\xC2\xA0A=1", [at("A", 0, 11, "1", "export ", "")]],
    ["\xC2\xA0A=1\n", [at("A", 0, 6, "1", "", "\n")]],
    // `NAME:` takes one blank as its separator: when that blank is a multi-byte character, the value starts after all of it.
    ["A:\xC2\xA0v\n", [at("A", 0, 6, "v", "", "\n")]],
    ["A:\xE3\x80\x80v", [at("A", 0, 6, "v", "", "")]],
    // U+2028 ends a line for dotenv, not for an editor: both assignments share one line.
    [
      "A=1 # c\xE2\x80\xA8B=2\nC=3\n",
      [at("A", 0, 14, "1 ", "", "\n", false), at("B", 0, 14, "2", "", "\n", false), at("C", 14, 18, "3", "", "\n")],
    ],
    // `X:` at a line's end reads the next line as its value.
    ["X:\nY=1\nZ=2\n", [at("X", 0, 7, "Y=1", "", "\n"), at("Z", 7, 11, "2", "", "\n")]],
    ["A='x\ny'\r\nB=2", [at("A", 0, 9, "'x\ny'", "", "\r\n"), at("B", 9, 12, "2", "", "")]],
    ["A=\nB", [at("A", 0, 3, "", "", "\n")]],
    ["A=1\r\r\nB=2", [at("A", 0, 4, "1", "", "\r"), at("B", 6, 9, "2", "", "")]],
    ["A=1\n\xC3\xA9\nB=2", [at("A", 0, 4, "1", "", "\n"), at("B", 7, 10, "2", "", "")]],
    ["A=\xE2\x80\x80v\r\n", [at("A", 0, 8, "\xE2\x80\x80v", "", "\r\n")]],
    ["A=1\xE2\x80\xA8B=2\n", [at("A", 0, 10, "1\xE2\x80\xA8B=2", "", "\n", false)]],
    ["\xE2\x80\xA8\nA=1\n", [at("A", 4, 8, "1", "", "\n")]],
    ["  A=1\n", [at("A", 0, 6, "1", "  ", "\n")]],
    ["A=`b # c`\nB=`l1\nl2`", [at("A", 0, 10, "`b # c`", "", "\n"), at("B", 10, 19, "`l1\nl2`", "", "")]],
    // Not UTF-8, so not whitespace to dotenv (it reads U+FFFD): overlong encodings of a space, a
    // lead byte that never starts a character, a sequence cut short by the end of the file.
    ["A:\xC0\xA0v", []],
    ["A:\xC0\x80\xA0v", []],
    ["A:\x80\x80\xA0v", []],
    ["A:\xE0\x80\xA0v", []],
    ["A:\xF0\x80\xA0v", []],
    ["A:\xF0\x80\x80\xA0v", []],
    ["A:\xE2\x80", []],
    ["A:\xC2", []],
    // A blank before `=` may be a line break; so may the one after `export`.
    ["A\n=1\n", [at("A", 0, 5, "1", "", "\n")]],
    ["export\nA=1", [at("A", 0, 10, "1", "export ", "")]],
    // Only the assignment's own line counts for its prefix.
    ["export B=2\n\xC2\xA0A=1\n", [at("B", 0, 11, "2", "export ", "\n"), at("A", 11, 17, "1", "", "\n")]],
    // Text before the name on its physical line (after a U+2028) is no prefix, `export` in it or not.
    ["# export \xE2\x80\xA8A=1\n", [at("A", 0, 16, "1", "", "\n", false)]],
    ["export A", []],
    ["  x.y-z :  v  # c \n", []],
  ];
  for (const [text, expected] of cases) {
    it(JSON.stringify(text), () => {
      expect(scanEnvText(text)).toEqual(expected);
    });
  }
});

describe("refusing an edit dotenv would read otherwise", () => {
  async function refusal(original: string | Buffer, change: (writer: EnvFileWriter) => Promise<void>) {
    await writeFile(file, original);
    const error = await change(new EnvFileWriter()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error instanceof AppError, String(error)).toBe(true);
    if (!(error instanceof AppError)) throw error;
    expect(error.status).toBe(500);
    expect((await readFile(file)).equals(Buffer.from(original))).toBe(true);
    expect(await tempFiles()).toEqual([]);
    return error;
  }

  it("refuses a removal that would change another key, names it, and leaves the file alone", async () => {
    // Removing the middle line would make dotenv read "SECRETVALUE" as X's value.
    const error = await refusal('X=\nGEMINI_API_KEY=OLDSECRET\n"SECRETVALUE"\n', (w) => w.unset(file, ["GEMINI_API_KEY"]));
    expect(error.detail).toBe(
      "the .env file was left unchanged: the lines around the edit would read differently (X); edit the file by hand",
    );
    // A bare name on the line before, and `=` on the line after: removing the line between joins them.
    const joined = await refusal("A\nGEMINI_API_KEY=OLDSECRET\n = 1\nB\nGEMINI_API_KEY=OLDSECRET\n = 2\n", (w) =>
      w.unset(file, ["GEMINI_API_KEY"]),
    );
    expect(joined.detail).toBe(
      "the .env file was left unchanged: the lines around the edit would read differently (A, B); edit the file by hand",
    );
  });

  it("refuses to edit a key that shares its line with another assignment", async () => {
    // U+2028 is a line end for dotenv's pattern but not for a text editor.
    const error = await refusal(Buffer.from("A=1 # c\u2028GEMINI_API_KEY=OLDSECRET\nB=2\n"), (w) => w.unset(file, ["GEMINI_API_KEY"]));
    expect(error.detail).toBe(
      "the .env file was left unchanged: GEMINI_API_KEY shares its line with another assignment, so it cannot be changed alone; edit the file by hand",
    );
    await refusal(Buffer.from("A=1 # c\u2028GEMINI_API_KEY=OLDSECRET\nB=2\n"), (w) => w.set(file, { GEMINI_API_KEY: "NEW" }));
    const both = await refusal(Buffer.from("A=1 # c\u2028GEMINI_API_KEY=OLDSECRET\nB=2\n"), (w) => w.unset(file, ["GEMINI_API_KEY", "A"]));
    expect(both.detail).toBe(
      "the .env file was left unchanged: A, GEMINI_API_KEY shares its line with another assignment, so it cannot be changed alone; edit the file by hand",
    );
  });

  it("names every key the edit would change, and never a value", () => {
    let error: unknown;
    try {
      checkEnvEdit(".env", "A=SECRET1\nB=SECRET2\nC=3\n", "C=3\n", {}, []);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe("internal-error");
    expect((error as AppError).detail).toBe(
      ".env was left unchanged: after the edit dotenv would not read A, B as intended; edit the file by hand",
    );
  });

  it("refuses to add a key after a last line `NAME:` that would read the added line as its value", async () => {
    // dotenv's `NAME:` separator is a colon and at least one blank, and a line break is one.
    for (const original of ["X:", "X:\n", "X:\r\n", "A=1\nexport X:\r"]) {
      const error = await refusal(original, (w) => w.set(file, { GEMINI_API_KEY: "NEW" }));
      expect(error.detail, JSON.stringify(original)).toBe(
        "the .env file was left unchanged: its last assignment (X) would read the added line as its value; edit the file by hand",
      );
    }
    // A blank after the colon ends the value on that line: the key is added below it.
    for (const original of ["X: \n", "X:\t", "X: v\n"]) {
      await writeFile(file, original);
      await new EnvFileWriter().set(file, { GEMINI_API_KEY: "NEW" });
      const after = await read();
      expect(after.startsWith(original), JSON.stringify(original)).toBe(true);
      expect(dotenv.parse(after)).toEqual({ ...dotenv.parse(original), GEMINI_API_KEY: "NEW" });
    }
  });
});

/**
 * dotenv's own value processing (trim, unquote, `\n`/`\r` escapes in double quotes), applied
 * to the raw values the scanner located: with it, the scanner must reproduce dotenv.parse.
 */
function dotenvValue(rawLatin1: string): string {
  let value = Buffer.from(rawLatin1, "latin1").toString("utf8").replace(/\r\n?/g, "\n").trim();
  const quote = value[0];
  value = value.replace(/^(['"`])([\s\S]*)\1$/gm, "$2");
  if (quote === '"') value = value.replace(/\\n/g, "\n").replace(/\\r/g, "\r");
  return value;
}

function scannedValues(bytes: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of scanEnvText(bytes.toString("latin1"))) out[a.name] = dotenvValue(a.rawValue);
  return out;
}

/** Files made of the pieces that matter to dotenv's grammar, in any order (as text; written as UTF-8). */
const envPiece = fc.constantFrom(
  "A",
  "B",
  "GEMINI_API_KEY",
  "x.y-z",
  "export ",
  "export",
  "=",
  ": ",
  ":",
  " = ",
  " ",
  "\t",
  "\n",
  "\r",
  "\r\n",
  "\u00a0",
  "\u2028",
  "\u3000",
  "\u1680",
  "\ufeff",
  "é",
  "\ufffd",
  "'",
  '"',
  "`",
  "#",
  "\\",
  "\\n",
  "value",
  "1",
  "old",
  "# comment\n",
  "A=",
  "B: ",
  "GEMINI_API_KEY=",
  "\nGEMINI_API_KEY: ",
  "\nA=",
);

/**
 * Byte sequences at the edges of well-formed UTF-8 (as latin1 characters, one per byte): the
 * first and last valid continuation byte after each lead that narrows it (E0, ED, F0, F4), one
 * byte past each edge, overlong encodings of a space (C0 A0, E0 80 A0, F0 80 80 A0), leads that
 * never start a character (80, C1, F5, FF), truncated sequences, and the whitespace characters
 * dotenv's `\s` sees in every length (U+00A0, U+1680, U+2028, U+3000, U+FEFF).
 */
const utf8EdgeBytes = fc.constantFrom(
  "\xC2\xA0",
  "\xC1\xA0",
  "\xC0\xA0",
  "\xC2",
  "\xDF\xBF",
  "\xDF\xC0",
  "\xC2\x7F",
  "\xE1\x9A\x80",
  "\xE2\x80\xA8",
  "\xE2\x80",
  "\xE2\x80\x7F",
  "\xE2\x80\xC0",
  "\xE3\x80\x80",
  "\xEF\xBB\xBF",
  "\xE0\xA0\x80",
  "\xE0\x9F\xBF",
  "\xE0\x80\xA0",
  "\xED\x9F\xBF",
  "\xED\xA0\x80",
  "\xEE\x80\x80",
  "\xF0\x90\x80\x80",
  "\xF0\x8F\xBF\xBF",
  "\xF0\x80\x80\xA0",
  "\xF0\x80\xA0",
  "\xC0\x80\xA0",
  "\x80\x80\xA0",
  "\xF4\x8F\xBF\xBF",
  "\xF4\x90\x80\x80",
  "\xF1\x80\x80",
  "\xF5\x80\x80\x80",
  "\x80",
  "\xBF",
  "\xFF",
);
const envTextPieces = fc.array(fc.oneof({ weight: 3, arbitrary: envPiece.map(asLatin1) }, { weight: 1, arbitrary: utf8EdgeBytes }), {
  maxLength: 24,
});
/** A file as latin1 text (one character per byte), any bytes at all. */
const envBytes = envTextPieces.map((pieces) => pieces.join(""));

/**
 * Files line by line from dotenv's grammar (indentation, `export`, name, separator, value,
 * comment, line end), with the UTF-8 edge sequences and multi-byte whitespace in every slot
 * where one changes what dotenv reads: random pieces rarely line up into `A:` + U+00A0 + value.
 */
const edgeOr = (...choices: string[]) =>
  fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...choices.map(asLatin1)) }, { weight: 1, arbitrary: utf8EdgeBytes });
const grammarLine = fc
  .tuple(
    edgeOr("", " ", "\t", "\u00a0", "\u3000"),
    fc.constantFrom("", "export ", "export\t", "export  ", asLatin1("export\u00a0"), asLatin1("export\u2028"), "export"),
    fc.constantFrom("A", "B", "GEMINI_API_KEY", "x.y-z"),
    edgeOr("=", " = ", ": ", ":", ":\t", ":\u00a0", "=\u00a0", "\u00a0=", ":\u3000", ":\ufeff", ":\u1680"),
    edgeOr(
      "",
      "v",
      "old value",
      "'q'",
      '"dq"',
      '"l1\nl2"',
      "`b`",
      "`b # c`",
      "`l1\nl2`",
      "x # note",
      "#c",
      "\u00a0v",
      "v\u2028B=2",
      "\u00e9",
    ),
    edgeOr("", " ", " # c", "\u00a0"),
  )
  .map((parts) => parts.join(""));
const grammarText = fc
  .tuple(
    fc.array(fc.oneof({ weight: 4, arbitrary: grammarLine }, { weight: 1, arbitrary: envTextPieces.map((p) => p.join("")) }), {
      maxLength: 6,
    }),
    fc.array(fc.constantFrom("\n", "\r\n", "\r", asLatin1("\u2028")), { minLength: 6, maxLength: 6 }),
  )
  .map(([lines, eols]) => lines.map((line, i) => line + (eols[i] as string)).join(""))
  .chain((text) => fc.constantFrom(text, text.replace(/(?:\r\n|\r|\n)$/, "")));

function asLatin1(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

/** Typical files: one common form per line. */
const envLine = fc.oneof(
  fc.constantFrom("# comment", "", "   ", "OTHER=1", "export OTHER2=two", 'QUOTED="a b"', "SINGLE='c # d'", 'PEM="l1\nl2"'),
  fc
    .tuple(
      fc.constantFrom("", "  ", "export ", "\texport  "),
      fc.constantFrom("A", "B", "GEMINI_API_KEY"),
      fc.constantFrom("=", " = ", ": ", ":\t"),
      fc.constantFrom("v", "old value", "'q'", '"dq"', "", "x # note", "AIzaOld"),
    )
    .map(([prefix, name, separator, value]) => `${prefix}${name}${separator}${value}`),
);
const typicalEnvText = fc
  .tuple(fc.array(envLine, { maxLength: 8 }), fc.constantFrom("\n", "\r\n", "\r"), fc.boolean())
  .map(([lines, eol, last]) => lines.join(eol) + (last && lines.length > 0 ? eol : ""));

const edit = fc.record({
  values: fc.dictionary(fc.constantFrom("A", "B", "GEMINI_API_KEY", "NEW_ONE"), fc.constantFrom("n1", "AIzaNew", "=x=", ""), {
    maxKeys: 3,
  }),
  remove: fc.subarray(["A", "B", "GEMINI_API_KEY", "x"]),
});

describe("properties", () => {
  it("the scanner finds exactly the assignments and values dotenv reads", () => {
    fc.assert(
      fc.property(fc.oneof(envBytes, grammarText, typicalEnvText), (text) => {
        const bytes = Buffer.from(text, "latin1");
        expect(scannedValues(bytes)).toEqual(dotenv.parse(bytes));
      }),
      { seed: testSeed("env-file scanner parity"), numRuns: 3000 },
    );
  });

  it("an edit is either read by both dotenv parsers exactly as intended or refused before writing", () => {
    fc.assert(
      fc.property(fc.oneof(envBytes, grammarText, typicalEnvText), edit, (before, { values, remove }) => {
        const removeOnly = remove.filter((name) => !(name in values));
        let after: string;
        try {
          after = updateEnvText(before, values, removeOnly);
        } catch (error) {
          expect(error instanceof AppError && error.status === 500 && /^the \.env file was left unchanged: /.test(error.detail ?? "")).toBe(
            true,
          );
          return;
        }
        // No reliance on the writer's own check (checkEnvEdit): the text itself must be right.
        for (const fast of [false, true]) {
          const was = dotenv.parse(Buffer.from(before, "latin1"), { fast });
          const intended: Record<string, string> = { ...was, ...values };
          for (const name of removeOnly) delete intended[name];
          const now = dotenv.parse(Buffer.from(after, "latin1"), { fast });
          expect(Object.entries(now).sort()).toEqual(Object.entries(intended).sort());
        }
        checkAgainstWriter(before, after, values, removeOnly);
      }),
      { seed: testSeed("env-file edit property"), numRuns: 3000 },
    );
  });

  it("typical files are always edited, never refused, and read back as intended", () => {
    fc.assert(
      fc.property(typicalEnvText, edit, (text, { values, remove }) => {
        const removeOnly = remove.filter((name) => !(name in values));
        const after = updateEnvText(text, values, removeOnly);
        checkAgainstWriter(text, after, values, removeOnly);
        const now = dotenv.parse(Buffer.from(after, "latin1"));
        for (const [name, value] of Object.entries(values)) expect(now[name]).toBe(value);
        for (const name of removeOnly) expect(now).not.toHaveProperty(name);
      }),
      { seed: testSeed("env-file typical edits"), numRuns: 3000 },
    );
  });
});

function checkAgainstWriter(before: string, after: string, values: Record<string, string>, remove: string[]): void {
  checkEnvEdit(".env", before, after, values, remove);
}
