/**
 * Where a session token is read from and how its shape is checked (lib/platform/auth/token.ts),
 * rule by rule. Written from StrykerJS's surviving mutants (docs/mutation-testing.md).
 */
import { describe, expect, it } from "vitest";
import { decodeUnverified, extractSessionToken, tokenExpiryMs } from "../../lib/platform/auth/token.js";

const req = (headers: Record<string, string>) => new Request("http://localhost/api/x", { headers });
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const jws = (header: unknown, payload: unknown, signature = "sig") => `${b64(header)}.${b64(payload)}.${signature}`;

describe("extractSessionToken", () => {
  it("Authorization: exactly `Bearer <one token>`, any case, blanks around; anything else is null (never the cookie)", () => {
    expect(extractSessionToken(req({ authorization: "Bearer abc.def.ghi" }))).toBe("abc.def.ghi");
    expect(extractSessionToken(req({ authorization: "bearer\tabc" }))).toBe("abc");
    expect(extractSessionToken(req({ authorization: "Bearer abc \t" }))).toBe("abc");
    for (const value of ["Basic abc", "xBearer abc", "Bearer", "Bearer a b", "Bearer abc x", "Token Bearer abc", "Bearer abc;", ""]) {
      expect(extractSessionToken(req({ authorization: value, cookie: "__session=fromcookie" })), value).toBe(
        value === "Bearer abc;" ? "abc;" : null,
      );
    }
  });

  it("the __session cookie: by exact name, trimmed, unquoted, percent-decoded", () => {
    expect(extractSessionToken(req({ cookie: "__session=tok" }))).toBe("tok");
    expect(extractSessionToken(req({ cookie: "a=1; __session = tok2 ; b=2" }))).toBe("tok2");
    expect(extractSessionToken(req({ cookie: '__session="quoted"' }))).toBe("quoted");
    expect(extractSessionToken(req({ cookie: '__session="' }))).toBe('"');
    expect(extractSessionToken(req({ cookie: '__session=x"' }))).toBe('x"');
    expect(extractSessionToken(req({ cookie: '__session="y' }))).toBe('"y');
    expect(extractSessionToken(req({ cookie: "__session=a%2Eb" }))).toBe("a.b");
    expect(extractSessionToken(req({ cookie: "__session=%E0%A4%A" }))).toBe("%E0%A4%A");
    expect(extractSessionToken(req({ cookie: "__session_x=no; x__session=no" }))).toBeNull();
    expect(extractSessionToken(req({ cookie: "__session" }))).toBeNull();
    expect(extractSessionToken(req({ cookie: "=__session; __session=" }))).toBeNull();
    expect(extractSessionToken(req({ cookie: "__session=; __session=second" }))).toBe("second");
    expect(extractSessionToken(req({}))).toBeNull();
  });
});

describe("decodeUnverified / tokenExpiryMs", () => {
  it("takes a compact JWS of objects only, whole", () => {
    expect(decodeUnverified(jws({ alg: "RS256" }, { sub: "u" }))).toEqual({ header: { alg: "RS256" }, payload: { sub: "u" } });
    expect(decodeUnverified(jws({ alg: "RS256" }, { sub: "u" }, ""))).not.toBeNull();
    expect(decodeUnverified(`x ${jws({ alg: "RS256" }, { sub: "u" })}`)).toBeNull();
    expect(decodeUnverified(`${jws({ alg: "RS256" }, { sub: "u" })} x`)).toBeNull();
    expect(decodeUnverified(jws(null, { sub: "u" }))).toBeNull();
    expect(decodeUnverified(jws({ alg: "RS256" }, [1]))).toBeNull();
    expect(decodeUnverified(jws({ alg: "RS256" }, "text"))).toBeNull();
  });

  it("looks at tokens of up to 16 KiB only", () => {
    const base = jws({ alg: "RS256" }, { sub: "u" }, "");
    const exactly = base + "s".repeat(16 * 1024 - base.length);
    expect(exactly).toHaveLength(16 * 1024);
    expect(decodeUnverified(exactly)).not.toBeNull();
    expect(decodeUnverified(`${exactly}s`)).toBeNull();
  });

  it("reads exp in milliseconds, 0 when missing or not a number", () => {
    expect(tokenExpiryMs(jws({}, { exp: 1_700_000_000 }))).toBe(1_700_000_000_000);
    expect(tokenExpiryMs(jws({}, { exp: "1700000000" }))).toBe(0);
    expect(tokenExpiryMs(jws({}, {}))).toBe(0);
    expect(tokenExpiryMs("nodots")).toBe(0);
    expect(tokenExpiryMs("a.!!!.c")).toBe(0);
  });
});
