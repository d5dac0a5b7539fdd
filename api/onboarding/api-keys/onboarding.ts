import { vercelFunction } from "../../../lib/server/vercel.js";
import { alwrityOnboardingKeys } from "../../../lib/compat/alwrity/routes/keys.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityOnboardingKeys]);
