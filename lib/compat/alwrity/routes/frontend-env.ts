/**
 * POST /api/frontend-env/update — ALwrity's API-key step writes the CopilotKit key into the
 * frontend's .env in development. Development only (production: 404, nothing runs), one
 * variable only, into FRONTEND_ENV_FILE only.
 */
import { defineRoute, json } from "../../../http/route.js";
import { frontendEnvBody, frontendEnvResponse } from "../schemas.js";

export const alwrityFrontendEnv = defineRoute({
  method: "POST",
  path: "/api/frontend-env/update",
  operationId: "alwrityFrontendEnvUpdate",
  summary: "Write REACT_APP_COPILOTKIT_API_KEY into the frontend's .env (development only)",
  description:
    "Development only: production answers 404. Only `REACT_APP_COPILOTKIT_API_KEY`, only a well-formed CopilotKit key, only into FRONTEND_ENV_FILE " +
    "(unset: nothing is written, `written: false`). The value is never echoed.",
  tags: ["alwrity"],
  // No user: it writes the developer's own frontend .env, on their machine only (development
  // answers only local requests through no proxy, lib/platform/dev/local-only.ts), never a user's data.
  auth: false,
  developmentOnly: true,
  body: {
    schema: frontendEnvBody,
    description: "ALwrity's `{key, value, description}`.",
    example: { key: "REACT_APP_COPILOTKIT_API_KEY", value: "ck_pub_exampleexampleexample0000", description: "CopilotKit API key" },
    codeFor: (errors) => (errors.length > 0 && errors.every((e) => e.pointer === "/value") ? "invalid-key-format" : "invalid-request"),
  },
  responses: {
    200: {
      description: "Written (or nothing to write to).",
      content: { "application/json": { schema: frontendEnvResponse } },
      headers: ["Cache-Control"],
    },
  },
  problems: ["invalid-key-format"],
  handler: async ({ deps, body }) => {
    const file = deps.config.frontendEnvFile;
    if (!file) {
      return json({ success: true, key: body.key, written: false, message: "FRONTEND_ENV_FILE is not set: nothing written" });
    }
    await deps.envWriter.set(file, { [body.key]: body.value });
    deps.logger.info("frontend env updated", { variable: body.key });
    return json({ success: true, key: body.key, written: true, message: `${body.key} written to the frontend .env file` });
  },
});

export default [alwrityFrontendEnv];
