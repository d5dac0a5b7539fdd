import { defineConfig } from "drizzle-kit";
import { loadConfig } from "./lib/platform/env.js";

// Generation needs no database; `npm run db:migrate` (scripts/db-migrate.ts) applies migrations.
const config = loadConfig();

export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
  ...(config.database.url ? { dbCredentials: { url: config.database.url } } : {}),
});
