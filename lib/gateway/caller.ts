/**
 * Who may call the gateway, and for whom:
 * - the signed-in user, with their Clerk session token (`Authorization: Bearer <token>` or
 *   the `__session` cookie; development without one runs as DEV_USER_ID), for themselves only:
 *   naming another user (`x-byok-user`) is 404, as any other user's data is;
 * - an operator's backend with a service credential (`Authorization: Bearer bks_…`,
 *   lib/gateway/credentials.ts) and the user it acts for in `x-byok-user` (required).
 *
 * A service credential is checked inside the gateway's one statement before the upstream
 * call (lib/gateway/start.ts): nothing is counted, reserved or read for a credential that does
 * not check out, and the answer is 401. Whatever key the provider's SDK sends
 * (`x-goog-api-key`, `x-api-key`) is never read.
 */
import { AppError } from "../http/errors.js";
import type { Deps } from "../platform/runtime.js";
import { extractSessionToken } from "../platform/auth/token.js";
import { parseServiceCredential, type ParsedCredential } from "./credentials.js";

/** The header naming the user a service credential acts for. */
export const ACTS_FOR_HEADER = "x-byok-user";
const MAX_USER_ID = 128;

export type Caller = { kind: "session" | "dev-user"; userId: string } | { kind: "service"; userId: string; credential: ParsedCredential };

/** The audit's name for a caller: `session`, `dev-user` or `service:<credential id>`. */
export function callerLabel(caller: Caller): string {
  return caller.kind === "service" ? `service:${caller.credential.id}` : caller.kind;
}

const callers = new WeakMap<Request, Caller>();

/** Clerk verification, loaded once, on the first session caller (a service credential never needs it). */
let auth: Promise<typeof import("../platform/auth/user.js")> | undefined;
const loadAuth = () => (auth ??= import("../platform/auth/user.js"));

const unauthorized = (detail: string) =>
  new AppError("unauthorized", {
    detail,
    action: "send a Clerk session token, or a gateway service credential with x-byok-user, as Authorization: Bearer <token>",
    headers: { "www-authenticate": 'Bearer realm="byok-functions"' },
  });

/** A user id as a caller may name it: letters, digits, `_` and `-`, at most 128 (Clerk's are `user_…`). */
function isUserId(value: string): boolean {
  if (value.length === 0 || value.length > MAX_USER_ID) return false;
  for (const ch of value) {
    const ok = (ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || (ch >= "0" && ch <= "9") || ch === "_" || ch === "-";
    if (!ok) return false;
  }
  return true;
}

/**
 * The route's `authenticate` hook (lib/http/route.ts): finds the caller and the user the call
 * is for, and remembers it for `callerOf`. A service credential is only parsed here; its check
 * is part of the gateway's statement.
 */
export async function authenticateGatewayCaller(input: { request: Request; deps: Deps }): Promise<{ userId: string }> {
  const { request, deps } = input;
  const named = request.headers.get(ACTS_FOR_HEADER)?.trim();
  const token = extractSessionToken(request);
  const credential = token ? parseServiceCredential(token) : undefined;
  let caller: Caller;
  if (credential) {
    if (named === undefined || named === "")
      throw unauthorized(`a service credential must name the user it acts for in ${ACTS_FOR_HEADER}`);
    if (!isUserId(named)) throw unauthorized(`${ACTS_FOR_HEADER} is not a user id`);
    caller = { kind: "service", userId: named, credential };
  } else {
    const user = await (await loadAuth()).requireUser(deps, request);
    // Another user's data is 404 (docs/security.md): a session acts for its own user only.
    if (named !== undefined && named !== "" && named !== user.userId) {
      throw new AppError("not-found", {
        detail: `a session token acts for its own user only; ${ACTS_FOR_HEADER} needs a service credential`,
      });
    }
    caller = { kind: user.via === "clerk" ? "session" : "dev-user", userId: user.userId };
  }
  callers.set(request, caller);
  return { userId: caller.userId };
}

/** The caller `authenticateGatewayCaller` found for `request`. */
export function callerOf(request: Request): Caller {
  const caller = callers.get(request);
  if (!caller) throw new Error("gateway caller not authenticated");
  return caller;
}
