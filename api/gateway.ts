import { vercelFunction } from "../lib/server/vercel.js";
import routes from "../lib/gateway/routes/gateway.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction(routes);
