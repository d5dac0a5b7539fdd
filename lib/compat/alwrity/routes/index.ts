/** ALwrity's onboarding routes, together (the ALwrity issue; README "Use it with ALwrity's frontend"). */
import type { AnyRoute } from "../../../http/route.js";
import keys from "./keys.js";
import steps from "./steps.js";
import progress from "./progress.js";
import final from "./final.js";
import frontendEnv from "./frontend-env.js";
import health from "./health.js";
import wizard from "./wizard.js";
import integrations from "./integrations.js";

export const alwrityRoutes: readonly AnyRoute[] = [
  ...health,
  ...keys,
  ...steps,
  ...progress,
  ...wizard,
  ...integrations,
  ...final,
  ...frontendEnv,
];
