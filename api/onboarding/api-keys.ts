import { vercelFunction } from "../../lib/server/vercel.js";
import routes from "../../lib/keys/routes/api-keys.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction(routes);
