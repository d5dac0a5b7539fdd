import { vercelFunction } from "../../lib/server/vercel.js";
import { alwritySummary } from "../../lib/compat/alwrity/routes/final.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwritySummary]);
