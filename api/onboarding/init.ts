import { vercelFunction } from "../../lib/server/vercel.js";
import { alwrityInit } from "../../lib/compat/alwrity/routes/progress.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityInit]);
