/**
 * Every route the app serves. Adding an endpoint: a file in this folder, one line here, and
 * (for Vercel) one file under api/ (README: "Adding an endpoint").
 */
import type { AnyRoute } from "../http/route.js";
import health from "./health.js";
import keys from "./keys.js";
import session from "./session.js";
import generate from "./generate.js";
import usage from "./usage.js";
import budget from "./budget.js";
import me from "./me.js";
import webhooks from "./webhooks.js";
import config from "./config.js";
import { openApiRoute } from "./openapi.js";

export const openApi = openApiRoute(() => routes);

export const routes: readonly AnyRoute[] = [...health, ...keys, ...session, ...generate, ...usage, ...budget, ...me, ...webhooks, ...config, openApi];
