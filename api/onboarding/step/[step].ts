import { vercelFunction } from "../../../lib/server/vercel.js";
import { alwrityStepData } from "../../../lib/compat/alwrity/routes/steps.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityStepData]);
