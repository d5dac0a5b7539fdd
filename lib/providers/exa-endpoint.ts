/**
 * Where the Exa API lives. Kept apart from the client (exa.ts) so the gateway can use it
 * without loading exa-js.
 */
export const EXA_DEFAULT_BASE_URL = "https://api.exa.ai";
