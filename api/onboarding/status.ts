import { vercelFunction } from "../../lib/server/vercel.js";
import { alwrityStatus } from "../../lib/routes/alwrity/progress.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([alwrityStatus]);
