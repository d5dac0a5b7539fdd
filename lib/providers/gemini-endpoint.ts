/**
 * Where the Gemini API lives. Kept apart from the client (gemini.ts) so the key check
 * (gemini-check.ts) can use it without loading the SDK.
 */
export const GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com";
export const GEMINI_API_VERSION = "v1beta";
