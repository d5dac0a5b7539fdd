import { vercelFunction } from "../../lib/server/vercel.js";
import { alwrityFrontendEnv } from "../../lib/compat/alwrity/routes/frontend-env.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityFrontendEnv]);
