import { vercelFunction } from "../../../lib/server/vercel.js";
import { alwrityWordPressStatus } from "../../../lib/compat/alwrity/routes/integrations.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityWordPressStatus]);
