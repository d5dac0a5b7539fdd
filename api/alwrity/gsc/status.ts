import { vercelFunction } from "../../../lib/server/vercel.js";
import { alwrityGscStatus } from "../../../lib/compat/alwrity/routes/integrations.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityGscStatus]);
