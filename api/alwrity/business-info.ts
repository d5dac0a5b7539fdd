import { vercelFunction } from "../../lib/server/vercel.js";
import { alwrityBusinessInfo } from "../../lib/compat/alwrity/routes/wizard.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityBusinessInfo]);
