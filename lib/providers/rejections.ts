/**
 * Why a provider refused a key, as a stable code with what the user should do about it. A
 * `provider-rejected-key` problem carries the code as `reason`, key health keeps it
 * (`lastError.reason`), and the web app shows the action. Facts behind each Gemini reason:
 * docs/provider-facts.md. No imports: the error mapping (lib/providers) and the key list
 * both use it.
 */
export const keyRejectionReasons = {
  "key-invalid": "the provider does not recognise this key: copy it again, or create a new one",
  "standard-key-retired":
    "Google no longer accepts standard Gemini keys (AIza…): create a new key in Google AI Studio (aistudio.google.com/apikey) and save it here",
  "key-unrestricted":
    "Google rejects unrestricted standard keys: create a new key in Google AI Studio (aistudio.google.com/apikey), " +
    "or restrict this one to the Generative Language API in the Google Cloud console",
  "key-type-unsupported":
    "Google refused this kind of key for the Gemini API (ACCESS_TOKEN_TYPE_UNSUPPORTED): create a new key in Google AI Studio " +
    "(aistudio.google.com/apikey) and save it here",
  "key-service-blocked":
    "this key may not call the Gemini API (its restrictions block the Generative Language API): allow that API for the key, " +
    "or create a new key in Google AI Studio",
  "key-suspended": "the provider suspended this key or its project (often after a leak): create a new key and save it here",
  "out-of-credits": "the provider account behind this key is out of credits: top it up, or save another key",
  "key-rejected": "the provider refused this key: save a working key",
} as const;

export type KeyRejectionReason = keyof typeof keyRejectionReasons;

export function isKeyRejectionReason(value: unknown): value is KeyRejectionReason {
  return typeof value === "string" && Object.hasOwn(keyRejectionReasons, value);
}
