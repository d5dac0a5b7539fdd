import { vercelFunction } from "../../lib/server/vercel.js";
import routes from "../../lib/onboarding/routes/session.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction(routes);
