/** The service version reported by /api/health (kept in step with package.json). */
export const VERSION = "0.1.0";
