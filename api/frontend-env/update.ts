import { vercelFunction } from "../../lib/server/vercel.js";
import { alwrityFrontendEnv } from "../../lib/routes/alwrity/frontend-env.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityFrontendEnv]);
