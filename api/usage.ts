import { vercelFunction } from "../lib/server/vercel.js";
import routes from "../lib/generation/routes/usage.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction(routes);
