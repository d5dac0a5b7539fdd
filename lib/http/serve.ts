/** Runs one route's definition (lib/http/route.ts): auth, path parameters, query, body, handler. */
import { readJsonBody, readParams, readQuery } from "./request.js";
import type { AnyRoute } from "./route.js";
import type { AppContext } from "./context.js";

/** Clerk verification, loaded by the first request that needs a user: public-only functions (health) never load it. */
let auth: Promise<typeof import("../platform/auth/user.js")> | undefined;
const loadAuth = () => (auth ??= import("../platform/auth/user.js"));

const noBody = () => Promise.resolve(new Uint8Array(0));

/** `c`: the app's context (its deps, its request, its body reader); `params`: the router's `:name` segments. */
export async function serve(route: AnyRoute, c: AppContext, params: Record<string, string>): Promise<Response> {
  const deps = c.get("deps");
  const request = c.req.raw;
  // Who is asking comes first: an unauthenticated caller learns nothing about the path either.
  const userId = route.auth
    ? route.authenticate
      ? (await route.authenticate({ request, deps })).userId
      : (await (await loadAuth()).requireUser(deps, request)).userId
    : undefined;
  const parsedParams = route.params ? readParams(params, route.params.schema, c.req.path) : undefined;
  const query = route.query ? readQuery(request, route.query.schema) : undefined;
  const verify = route.body?.verify;
  const body = route.body
    ? await readJsonBody(request, c.get("readBody") ?? noBody, route.body.schema, {
        codeFor: route.body.codeFor,
        formFor: route.body.formFor,
        ...(verify ? { verify: (text: string) => verify({ text, request, deps }) } : {}),
      })
    : undefined;
  return route.handler({ request, deps, userId, body, query, params: parsedParams });
}
