/**
 * Every route the app serves. Adding an endpoint: a file in this folder, one line here, and
 * (for Vercel) one file under api/ (README: "Adding an endpoint").
 */
import type { AnyRoute } from "./http/route.js";
import health from "./system/routes/health.js";
import keys from "./keys/routes/api-keys.js";
import session from "./onboarding/routes/session.js";
import generate from "./generation/routes/generate.js";
import usage from "./generation/routes/usage.js";
import budget from "./generation/routes/budget.js";
import me from "./account/routes/me.js";
import webhooks from "./account/routes/webhooks.js";
import config from "./system/routes/config.js";
import gateway from "./gateway/routes/gateway.js";
import { alwrityRoutes } from "./compat/alwrity/routes/index.js";
import { openApiRoute } from "./system/routes/openapi.js";

// The builder is loaded on the first document request only (it is the heaviest module of all).
export const openApi = openApiRoute(async () => (await import("./openapi.js")).openApiJson(routes));

export const routes: readonly AnyRoute[] = [
  ...health,
  ...keys,
  ...session,
  ...generate,
  ...usage,
  ...budget,
  ...me,
  ...webhooks,
  ...config,
  ...gateway,
  ...alwrityRoutes,
  openApi,
];
