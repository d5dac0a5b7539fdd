import { vercelFunction } from "../../lib/server/vercel.js";
import { alwrityHealth } from "../../lib/compat/alwrity/routes/health.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityHealth]);
