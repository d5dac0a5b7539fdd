import { vercelFunction } from "../lib/server/vercel.js";
import { accountRoutes } from "../lib/account/routes/me.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction(accountRoutes);
