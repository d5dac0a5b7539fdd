import { vercelFunction } from "../../../../lib/server/vercel.js";
import { alwrityCompleteStep } from "../../../../lib/compat/alwrity/routes/steps.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityCompleteStep]);
