/**
 * The service version reported by /api/health and the OpenAPI document: package.json's.
 * A static JSON import, so bundlers (esbuild for Lambda, Vercel's builder) inline or trace
 * the file rather than needing it next to the code at run time.
 */
import pkg from "../../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
