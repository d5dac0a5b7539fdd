import { vercelFunction } from "../lib/server/vercel.js";
import { openApi } from "../lib/routes.js";

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = vercelFunction([openApi]);
