/**
 * The onboarding web app: sign-in (Clerk, production), step 1 keys, step 2 generate (SSE),
 * step 3 usage. Vanilla TypeScript, bundled by scripts/build-web.ts into public/assets. Everything
 * shown from the API or a model goes through textContent or web/markdown.ts: no innerHTML.
 */
import type { z } from "zod";
import type { GenerateResult, GenerationUsage, UsageResponse } from "../lib/generation/schemas.js";
import type { problemSchema } from "../lib/http/schemas.js";
import type { keyView } from "../lib/keys/schemas.js";
import type { ConfigResponse } from "../lib/system/schemas.js";
import { renderMarkdown } from "./markdown.js";
import { readSse } from "./sse.js";

// ---- types of the API (the parts the page reads) ----------------------------------------

// The API's own types (import type: erased by esbuild, so none of lib/ reaches the bundle).
type AppConfig = ConfigResponse;
type ProviderConfig = ConfigResponse["providers"][number];
type Provider = ProviderConfig["id"];
type KeyView = z.output<typeof keyView>;
/** A problem as the page handles it: the API's, or one the page makes up (status 0: network). */
type Problem = Pick<z.output<typeof problemSchema>, "status" | "code" | "detail" | "errors" | "retry_after"> & {
  title?: string;
  provider?: string;
  action?: string;
  /** The problem's other members (a 402's estimate and what is left, a lost key ring's key id…). */
  extra?: Record<string, unknown>;
};
type Budget = UsageResponse["budget"];
type Source = GenerateResult["sources"][number];
type Usage = GenerationUsage;

interface ClerkLike {
  load(options?: unknown): Promise<void>;
  user?: { id: string; primaryEmailAddress?: { emailAddress: string } | null } | null;
  session?: { getToken(): Promise<string | null> } | null;
  mountSignIn(element: HTMLElement, props?: unknown): void;
  signOut?(): Promise<void>;
  addListener?(listener: (resources: { user?: unknown }) => void): void;
}
declare global {
  interface Window {
    Clerk?: ClerkLike;
  }
}

// ---- small DOM helpers ------------------------------------------------------------------

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element as T;
};
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) if (value !== undefined) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}
function show(element: HTMLElement, visible: boolean): void {
  element.hidden = !visible;
}
const usd = (n: number) => `$${n.toFixed(n < 0.01 && n > 0 ? 4 : 2)}`;
const count = (n: number) => n.toLocaleString("en-US");
const day = (iso: string) => new Date(iso).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
const when = (iso: string) =>
  new Date(iso).toLocaleString("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: "UTC" }) + " UTC";

// ---- state --------------------------------------------------------------------------------

let config: AppConfig;
let session = { currentStep: 1, progress: 0 };
/** The required providers without a key in force (the list's `missing`): progress cannot claim more. */
let missingRequired: Provider[] = [];
const providerLabel = (id: string) => config?.providers.find((p) => p.id === id)?.label.replace(/ (API|public) key$/, "") ?? id;

class SignedOut extends Error {}

// ---- sign-in (production) ----------------------------------------------------------------

function loadClerkScript(frontendApi: string, publishableKey: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = `https://${frontendApi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`;
    script.crossOrigin = "anonymous";
    script.async = true;
    script.dataset.clerkPublishableKey = publishableKey;
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => reject(new Error("ClerkJS did not load")));
    document.head.appendChild(script);
  });
}

function showSignIn(reason: string): void {
  show($("app"), false);
  show($("signin"), true);
  $("signin-reason").textContent = reason;
  const clerk = window.Clerk;
  const mount = $("clerk-signin");
  if (clerk && mount.childElementCount === 0) clerk.mountSignIn(mount);
  $("signin-title").focus();
}

async function sessionToken(): Promise<string> {
  const token = await window.Clerk?.session?.getToken().catch(() => null);
  if (!token) {
    showSignIn("You are signed out. Sign in to continue.");
    throw new SignedOut();
  }
  return token;
}

// ---- API --------------------------------------------------------------------------------

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("accept")) headers.set("accept", "application/json");
  if (init.body !== undefined) headers.set("content-type", "application/json");
  if (config.mode === "production") headers.set("authorization", `Bearer ${await sessionToken()}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw problemError({ status: 0, code: "network", detail: "the service could not be reached" });
  }
  if (response.status === 401) {
    showSignIn("Your session has expired or you are signed out. Sign in again to continue.");
    throw new SignedOut();
  }
  return response;
}

class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}
const problemError = (problem: Problem) => new ProblemError(problem);

async function readProblem(response: Response): Promise<Problem> {
  let body: Partial<Problem> = {};
  try {
    body = (await response.json()) as Partial<Problem>;
  } catch {
    /* not JSON: a proxy's page */
  }
  const retry = Number(response.headers.get("retry-after") ?? body.retry_after);
  return {
    status: response.status,
    code: typeof body.code === "string" ? body.code : "http-" + response.status,
    detail: typeof body.detail === "string" ? body.detail : response.statusText,
    provider: typeof body.provider === "string" ? body.provider : undefined,
    errors: Array.isArray(body.errors) ? body.errors : undefined,
    retry_after: Number.isFinite(retry) && retry > 0 ? retry : undefined,
    action: typeof body.action === "string" ? body.action : undefined,
    extra: body as Record<string, unknown>,
  };
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await api(path, init);
  if (!response.ok) throw problemError(await readProblem(response));
  return (response.status === 204 ? undefined : await response.json()) as T;
}

// ---- failures as sentences -----------------------------------------------------------------

interface Sentence {
  /** What happened, for a status line ("Not started: …", "Stopped: …"). */
  headline: string;
  text: string;
  link?: { href: string; text: string };
  retryAfter?: number;
  /** A "Try again" button helps (at once, or when the countdown ends). */
  retry?: boolean;
  /** Steps the server knows (a lost key ring's two ways out). */
  steps?: string[];
}

const num = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);
const str = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined);

/** The reason a provider gave for refusing a key, without the API's "gemini rejected the saved API key (HTTP 400):" preamble. */
function rejectionReason(problem: Problem): string {
  const detail = problem.detail ?? "";
  const cut = detail.indexOf("): ");
  return cut >= 0 ? detail.slice(cut + 3) : "";
}

/** What went wrong, said so a person understands it and knows what to do. */
export function sentenceFor(problem: Problem): Sentence {
  const who = problem.provider ? providerLabel(problem.provider) : "The provider";
  const extra = problem.extra ?? {};
  switch (problem.code) {
    case "missing-provider-key":
      return {
        headline: `Not started: your ${problem.provider ? providerLabel(problem.provider) : "provider"} key is missing.`,
        text: `You have not saved a ${problem.provider ? providerLabel(problem.provider) : "provider"} API key yet, so nothing can be generated.`,
        link: { href: "#keys", text: "Add it in step 1" },
      };
    case "provider-rejected-key": {
      const reason = rejectionReason(problem);
      return {
        headline: `Stopped: ${who} refused your key.`,
        text: `${who} rejected your API key${reason ? `: ${reason}` : ": it may be mistyped, revoked or out of quota"}. Replace it in step 1.`,
        link: { href: "#keys", text: "Go to step 1" },
      };
    }
    case "rate-limited":
      return {
        headline: "Not started: too many requests.",
        text: "Too many requests right now.",
        retryAfter: problem.retry_after ?? 30,
        retry: true,
      };
    case "upstream-unavailable":
    case "upstream-timeout": {
      const name = who === "The provider" ? "The AI provider" : who;
      return {
        headline: `Stopped: ${name} did not answer.`,
        text: `${name} is not answering right now. Nothing was charged for the part that failed; try again in a minute.`,
        retry: true,
      };
    }
    case "database-unavailable":
      return {
        headline: "Not done: the database cannot be reached.",
        text: problem.retry_after
          ? "Our database cannot be reached right now. Your saved keys are safe."
          : "Our database cannot be reached right now. Your saved keys are safe; try again in a few seconds.",
        retryAfter: problem.retry_after,
        retry: true,
      };
    case "budget-exceeded": {
      const estimate = num(extra.estimateUsd);
      const left = num(extra.remainingUsd);
      const cap = num(extra.monthlyUsd);
      const resets = str(extra.resetsAt);
      const fits =
        estimate !== undefined && left !== undefined && cap !== undefined
          ? `This post could cost up to ${usd(estimate)}, and ${usd(Math.max(0, left))} of your ${usd(cap)} monthly cap is left${resets ? ` until ${day(resets)}` : ""}.`
          : "This month's spending cap is reached.";
      return {
        headline: "Not started: over your spending cap.",
        text: `${fits} To go ahead: ask for fewer words, turn off research with Exa, or raise your cap.`,
        link: { href: "#spending", text: "Change your cap" },
      };
    }
    case "invalid-key-format":
    case "invalid-request":
      return {
        headline: "Not sent: some fields need fixing.",
        text: problem.errors?.length ? "Some fields need fixing: see the messages beside them." : problem.detail,
      };
    case "network":
      return {
        headline: "Stopped: the service cannot be reached.",
        text: "The service cannot be reached. Check your connection and try again.",
        retry: true,
      };
    case "clerk-unavailable":
      return {
        headline: "Sign-in unavailable.",
        text: `The sign-in service (Clerk, at ${problem.detail}) did not load, while this service answers. A browser extension, a network filter or an outage at Clerk may be blocking it. Reload the page to try again.`,
      };
    case "clerk-not-configured":
      return {
        headline: "Sign-in not set up.",
        text: "Sign-in is not set up on this server: CLERK_PUBLISHABLE_KEY is missing, so nobody can sign in. The operator has to set it (npm run check-config -- --production lists what is missing).",
      };
    case "server-misconfigured":
      if (extra.reason === "keyring-missing") {
        const ids = str(extra.missingKeyIds) ?? "?";
        const file = str(extra.envFile) ?? ".env";
        return {
          headline: "Your saved keys cannot be read.",
          text: `The KEY_ENCRYPTION_KEYS line that holds key id ${ids} is missing from ${file}, and your saved keys are sealed with it. Two ways out:`,
          steps: [
            `Restore that line in ${file} from a backup of the file (or from the environment the server ran with before), then reload this page. Your saved keys come back as they were.`,
            "Or start over: delete the saved keys (they cannot be read anyway), then enter them again.",
          ],
        };
      }
      return {
        headline: "Not done: the server is misconfigured.",
        text: `The service is not configured correctly${problem.detail ? ` (${problem.detail})` : ""}. The operator has to fix it.`,
      };
    default:
      return { headline: "Not done.", text: `Something went wrong (${problem.status || "no answer"}): ${problem.detail}` };
  }
}

const countdowns = new Map<HTMLElement, ReturnType<typeof setInterval>>();

/**
 * Shows `problem` as a sentence in `target` (with a link, a countdown, a "Try again" button
 * calling `retry` where one helps), focusing it. Returns the sentence (its headline is for a status line).
 */
function showProblem(target: HTMLElement, problem: Problem, focus = true, retry?: () => void): Sentence {
  const previous = countdowns.get(target);
  if (previous) clearInterval(previous);
  const sentence = sentenceFor(problem);
  target.replaceChildren(el("p", {}, sentence.text));
  const line = target.firstElementChild as HTMLElement;
  target.dataset.code = problem.code;
  if (sentence.link) line.append(" ", el("a", { href: sentence.link.href }, sentence.link.text), ".");
  if (sentence.steps) {
    const list = el("ol", { class: "steps-out" });
    for (const step of sentence.steps) list.append(el("li", {}, step));
    target.append(list);
    if (problem.extra?.reason === "keyring-missing") {
      const button = el("button", { type: "button", id: "start-over" }, "Delete the saved keys and start over");
      button.addEventListener("click", () => void startOver(target));
      target.append(button);
    }
  }
  const offerRetry = () => {
    if (!retry || !sentence.retry || target.querySelector(".retry")) return;
    const button = el("button", { type: "button", class: "retry secondary" }, "Try again");
    button.addEventListener("click", () => retry());
    target.append(button);
  };
  if (sentence.retryAfter) {
    const counter = el("span", { class: "countdown" });
    line.append(" ", counter);
    let left = Math.ceil(sentence.retryAfter);
    const tick = () => {
      counter.textContent = left > 0 ? `Try again in ${left} second${left === 1 ? "" : "s"}.` : "You can try again now.";
      if (left <= 0) {
        clearInterval(countdowns.get(target));
        offerRetry();
      }
      left -= 1;
    };
    tick();
    countdowns.set(target, setInterval(tick, 1000));
  } else offerRetry();
  show(target, true);
  if (focus) target.focus();
  return sentence;
}
function clearProblem(target: HTMLElement): void {
  const previous = countdowns.get(target);
  if (previous) clearInterval(previous);
  target.replaceChildren();
  delete target.dataset.code;
  show(target, false);
}

/** The lost key ring's second way out: delete every saved key (each 204 or 404), then start again. */
async function startOver(target: HTMLElement): Promise<void> {
  for (const p of config.providers) {
    await json(`/api/onboarding/api-keys?provider=${encodeURIComponent(p.id)}`, { method: "DELETE" }).catch((error: unknown) => {
      if (!(error instanceof ProblemError && error.problem.code === "key-not-found")) throw error;
    });
  }
  clearProblem(target);
  await startApp();
  $("keys-status").textContent = "The saved keys were deleted. Enter your keys again.";
  $(`key-${config.providers[0]!.id}`).focus();
}

// ---- onboarding session --------------------------------------------------------------------

async function advance(step: number, progress: number): Promise<void> {
  if (progress <= session.progress && step <= session.currentStep) return;
  session = { currentStep: Math.max(step, session.currentStep), progress: Math.max(progress, session.progress) };
  renderProgress();
  try {
    session = await json("/api/onboarding/session", { method: "PUT", body: JSON.stringify(session) });
    renderProgress();
  } catch (error) {
    if (!(error instanceof SignedOut)) console.warn("progress not saved", error);
  }
}
function renderProgress(): void {
  const bar = $<HTMLProgressElement>("progress");
  // A required key deleted since: back to step 1, whatever the session says.
  const missing = missingRequired[0];
  const step = missing ? 1 : Math.min(session.currentStep, 3);
  const progress = missing ? 0 : session.progress;
  bar.value = progress;
  $("progress-text").textContent = missing
    ? `Step 1 of 3: save your ${providerLabel(missing)} key (0% done)`
    : `Step ${step} of 3, ${Math.round(progress)}% done`;
  document.querySelectorAll<HTMLElement>("#steps a").forEach((a, i) => {
    if (i + 1 === step) a.setAttribute("aria-current", "step");
    else a.removeAttribute("aria-current");
  });
}

// ---- step 1: keys ------------------------------------------------------------------------

function buildKeyFields(): void {
  const container = $("key-fields");
  for (const p of config.providers) {
    const id = `key-${p.id}`;
    const field = el("div", { class: "field", id: `${id}-field` });
    const label = el("label", { for: id }, p.label);
    if (!p.required) label.append(el("span", { class: "optional" }, " (optional)"));
    const input = el("input", {
      id,
      name: p.id,
      type: p.returnsValue ? "text" : "password",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: p.placeholder,
      "aria-describedby": `${id}-help ${id}-saved ${id}-error`,
    });
    const help = el("p", { id: `${id}-help`, class: "help" }, `${p.purpose} Format: ${p.format}. `);
    help.append(el("a", { href: p.whereToGet, target: "_blank", rel: "noopener noreferrer" }, `Get your ${p.label}`));
    const saved = el("p", { id: `${id}-saved`, class: "saved" });
    const error = el("p", { id: `${id}-error`, class: "error field-error", hidden: "" });
    // Typing a new value: the previous outcome no longer applies.
    input.addEventListener("input", () => {
      error.textContent = "";
      show(error, false);
      input.removeAttribute("aria-invalid");
      $("keys-status").textContent = "";
    });
    field.append(label, help, input, saved, error);
    container.append(field);
  }
}

const sourceWords = (key: KeyView, p: ProviderConfig): string => {
  switch (key.source) {
    case "env-file":
      return "In use from the .env file on this machine.";
    case "process-env":
      return `In use from this server's environment (${envVarOf(p.id)}), not from the .env file.`;
    case "database":
      return config.mode === "development" ? "In use from the database (not in the .env file)." : "Saved encrypted, for you alone.";
    default:
      return "";
  }
};
const envVarOf = (provider: string) => `${provider.toUpperCase()}_API_KEY`;

/** The key's health in words, and what to do about it. */
function statusWords(key: KeyView, p: ProviderConfig): { label: string; text: string } {
  const name = providerLabel(p.id);
  switch (key.status) {
    case "ok":
      return { label: "Working", text: `${name} accepted it${key.lastUsedAt ? `; last used ${when(key.lastUsedAt)}` : ""}.` };
    case "rejected":
      return {
        label: "Refused",
        text: key.lastError?.action
          ? `${name} refused this key: ${key.lastError.action}. Enter a new key above.`
          : `${name} refused this key; enter a new key above.`,
      };
    case "unreadable":
      return {
        label: "Unreadable",
        text: "This key can no longer be read (it was sealed with an encryption key this server no longer has); enter it again above.",
      };
    default:
      return { label: "Not used yet", text: key.validated ? `${name} accepted it when it was saved.` : "It has not been used yet." };
  }
}

function renderKeys(keys: KeyView[], missing: Provider[] = []): void {
  missingRequired = config.providers.filter((p) => p.required && missing.includes(p.id)).map((p) => p.id);
  renderProgress();
  for (const p of config.providers) {
    const saved = $(`key-${p.id}-saved`);
    const key = keys.find((k) => k.provider === p.id);
    saved.replaceChildren();
    if (!key) {
      saved.textContent = p.required ? "Not saved yet (required)." : "Not saved.";
      saved.dataset.state = "missing";
      continue;
    }
    saved.dataset.state = key.status ?? "ok";
    const words = statusWords(key, p);
    const head = el("p", { class: "key-head" });
    head.append(
      "Saved: ",
      el("code", { class: "hint" }, key.hint),
      " ",
      el("span", { class: "badge", "data-status": key.status }, words.label),
    );
    saved.append(head, el("p", { class: "key-status" }, `${words.text} ${sourceWords(key, p)}`.trim()));
    for (const notice of key.notices ?? []) {
      saved.append(el("p", { class: "key-notice", "data-code": notice.code }, `${notice.message} ${notice.action}`));
    }
    if (key.source === "process-env") {
      saved.append(el("p", { class: "help" }, `To remove it, unset ${envVarOf(p.id)} and restart the server.`));
      continue;
    }
    const button = el(
      "button",
      { type: "button", class: "link-button", "data-delete": p.id, "aria-label": `Delete the saved ${p.label}` },
      "Delete",
    );
    button.addEventListener("click", () => confirmDelete(p, saved, button));
    saved.append(button);
  }
}

/** Delete asks first, in place: what it removes, then "Delete" or "Keep it" (focus on "Keep it"). */
function confirmDelete(p: ProviderConfig, card: HTMLElement, trigger: HTMLButtonElement): void {
  if (card.querySelector(".confirm")) return;
  const where = config.mode === "development" ? ` from the database and its ${envVarOf(p.id)} line from the .env file` : "";
  const box = el("div", { class: "confirm", role: "group", "aria-label": `Confirm deleting the ${p.label}` });
  const question = el("p", {}, `Delete the saved ${providerLabel(p.id)} key${where}? Nothing can use it afterwards.`);
  const yes = el("button", { type: "button", class: "danger" }, `Delete the ${providerLabel(p.id)} key`);
  const no = el("button", { type: "button", class: "secondary" }, "Keep it");
  yes.addEventListener("click", () => void deleteKey(p.id));
  no.addEventListener("click", () => {
    box.remove();
    trigger.hidden = false;
    trigger.focus();
  });
  box.append(question, yes, " ", no);
  trigger.hidden = true;
  card.append(box);
  no.focus();
}

async function loadKeys(): Promise<{ keys: KeyView[]; missing: Provider[] }> {
  const list = await json<{ keys: KeyView[]; missing: Provider[] }>("/api/onboarding/api-keys");
  renderKeys(list.keys, list.missing);
  return list;
}

function clearKeyErrors(): void {
  for (const p of config.providers) {
    const error = $(`key-${p.id}-error`);
    error.textContent = "";
    show(error, false);
    $(`key-${p.id}`).removeAttribute("aria-invalid");
  }
  clearProblem($("keys-error"));
}

async function saveKeys(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  clearKeyErrors();
  const body: Record<string, unknown> = {};
  for (const p of config.providers) {
    const value = $<HTMLInputElement>(`key-${p.id}`).value.trim();
    if (value) body[p.id] = value;
  }
  const status = $("keys-status");
  if (Object.keys(body).length === 0) {
    const first = config.providers[0]!;
    fieldError(first.id, "Enter at least one key to save.");
    $(`key-${first.id}`).focus();
    return;
  }
  if ($<HTMLInputElement>("validate").checked) body.validate = true;
  status.textContent = body.validate ? "Checking with Gemini and saving…" : "Saving…";
  const button = $<HTMLButtonElement>("save-keys");
  button.disabled = true;
  try {
    const saved = await json<{ saved: Provider[]; unchanged: Provider[]; storage: string[]; keys: KeyView[] }>("/api/onboarding/api-keys", {
      method: "POST",
      body: JSON.stringify(body),
    });
    for (const p of saved.saved) $<HTMLInputElement>(`key-${p}`).value = "";
    renderKeys(
      saved.keys,
      config.providers.filter((p) => !saved.keys.some((k) => k.provider === p.id)).map((p) => p.id),
    );
    const where = saved.storage.includes("env") ? "in the .env file and the database" : "encrypted in the database";
    const checked = body.validate ? "Gemini accepted the key. " : "";
    const unchanged = saved.unchanged.length ? ` Unchanged: ${saved.unchanged.map(providerLabel).join(", ")}.` : "";
    status.textContent = saved.saved.length
      ? `${checked}Saved ${saved.saved.map(providerLabel).join(", ")} ${where}.${unchanged}`
      : `${checked}Nothing to save: the keys you entered are the ones already saved.`;
    if (saved.keys.some((k) => k.provider === "gemini")) await advance(2, 33);
  } catch (error) {
    status.textContent = "";
    if (error instanceof SignedOut) return;
    if (!(error instanceof ProblemError)) throw error;
    status.textContent = error.problem.code === "provider-rejected-key" ? "Not saved: Gemini refused the key." : "Not saved.";
    showKeyProblem(error.problem);
  } finally {
    button.disabled = false;
  }
}

function fieldError(provider: string, message: string): void {
  const error = $(`key-${provider}-error`);
  error.textContent = message;
  show(error, true);
  $(`key-${provider}`).setAttribute("aria-invalid", "true");
}

/** Field problems beside their fields (from `errors[].pointer`), focus on the first; the rest as a sentence. */
function showKeyProblem(problem: Problem): void {
  const byField = (problem.errors ?? []).filter((e) => config.providers.some((p) => e.pointer === `/${p.id}`));
  if (problem.code === "provider-rejected-key" && problem.provider) {
    const reason = rejectionReason(problem);
    byField.push({
      pointer: `/${problem.provider}`,
      message: `${providerLabel(problem.provider)} rejected this key, so it was not saved${reason ? `: ${reason}` : "."}`,
    });
  }
  for (const e of byField) fieldError(e.pointer.slice(1), e.message);
  const first = config.providers.find((p) => byField.some((e) => e.pointer === `/${p.id}`));
  if (first) {
    $(`key-${first.id}`).focus();
    if (byField.length === (problem.errors?.length ?? 0) || problem.code === "provider-rejected-key") return;
  }
  showProblem($("keys-error"), problem, !first);
}

async function deleteKey(provider: Provider): Promise<void> {
  clearKeyErrors();
  try {
    await json(`/api/onboarding/api-keys?provider=${encodeURIComponent(provider)}`, { method: "DELETE" });
    $("keys-status").textContent = `Deleted the ${providerLabel(provider)} key. Nothing will use it again.`;
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (!(error instanceof ProblemError)) throw error;
    if (error.problem.code !== "key-not-found") showProblem($("keys-error"), error.problem);
  }
  await loadKeys().catch(() => {});
  $(`key-${provider}`).focus();
}

// ---- step 2: generate ----------------------------------------------------------------------

let generation: AbortController | null = null;

function renderSources(sources: Source[]): void {
  const list = $("sources");
  list.replaceChildren();
  sources.forEach((source, i) => {
    const li = el("li", { id: `source-${i + 1}` });
    const title = source.title.trim() || source.url;
    let safeUrl: string | null = null;
    try {
      const url = new URL(source.url);
      if (url.protocol === "https:" || url.protocol === "http:") safeUrl = url.href;
    } catch {
      /* not a URL: shown as text */
    }
    if (safeUrl) li.append(el("a", { href: safeUrl, target: "_blank", rel: "noopener noreferrer nofollow" }, title));
    else li.append(document.createTextNode(title));
    list.append(li);
  });
  show($("sources-section"), sources.length > 0);
}

function describeUsage(usage: Usage, keySource: string | undefined): string {
  const parts = [
    `Gemini (${usage.gemini.model}): ${usage.gemini.inputTokens} input + ${usage.gemini.outputTokens} output tokens, ${usd(usage.gemini.costUsd)}`,
  ];
  if (usage.exa.requests > 0)
    parts.push(`Exa: ${usage.exa.requests} search${usage.exa.requests === 1 ? "" : "es"}, ${usd(usage.exa.costUsd)}`);
  const paid =
    keySource === "env"
      ? "Paid with the keys in this machine's .env file (development)."
      : keySource === "database"
        ? "Paid with your own saved keys."
        : "";
  return `${parts.join("; ")}. Total ${usd(usage.totalCostUsd)}. ${paid}`.trim();
}

async function generate(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const form = $<HTMLFormElement>("generate-form");
  const errorBox = $("generate-error");
  clearProblem(errorBox);
  const topic = $<HTMLInputElement>("topic").value.trim();
  if (topic.length < config.limits.topic.min) {
    const topicError = $("topic-error");
    topicError.textContent = `Write a topic of at least ${config.limits.topic.min} characters.`;
    show(topicError, true);
    $("topic").setAttribute("aria-invalid", "true");
    $("topic").focus();
    return;
  }
  for (const field of ["topic", "word-count"]) {
    show($(`${field}-error`), false);
    $(field).removeAttribute("aria-invalid");
  }
  const keywords = $<HTMLInputElement>("keywords")
    .value.split(",")
    .map((k) => k.trim())
    .filter(Boolean)
    .slice(0, config.limits.keywords.max);
  const wordCountText = $<HTMLInputElement>("word-count").value.trim();
  const wordCount = wordCountText === "" ? config.limits.wordCount.default : Number(wordCountText);
  const body = { topic, ...(keywords.length ? { keywords } : {}), wordCount, research: $<HTMLInputElement>("research").checked };

  const controller = new AbortController();
  generation = controller;
  const post = $("post");
  const status = $("generate-status");
  let markdown = "";
  let sources: Source[] = [];
  let usage: Usage | undefined;
  let frame = 0;
  const paint = () => {
    frame = 0;
    renderMarkdown(post, markdown, sources.length);
  };
  post.replaceChildren();
  renderSources([]);
  $("generate-usage").textContent = "";
  status.textContent = "Starting…";
  $<HTMLButtonElement>("generate-button").disabled = true;
  $<HTMLButtonElement>("cancel-button").disabled = false;
  form.setAttribute("aria-busy", "true");
  try {
    const response = await api("/api/blog/generate", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok || !response.body) throw problemError(await readProblem(response));
    for await (const message of readSse(response.body)) {
      const data = JSON.parse(message.data) as unknown;
      switch (message.event) {
        case "status": {
          const s = data as { phase: string; message?: string };
          status.textContent = s.message
            ? `${s.phase === "research" ? "Research" : "Writing"}: ${s.message}`
            : s.phase === "research"
              ? "Researching sources…"
              : "Writing…";
          break;
        }
        case "sources":
          sources = data as Source[];
          renderSources(sources);
          break;
        case "delta":
          markdown += (data as { text: string }).text;
          if (!frame) frame = requestAnimationFrame(paint);
          break;
        case "usage":
          usage = data as Usage;
          break;
        case "done": {
          const done = data as { markdown: string; sources: Source[]; usage: Usage; keySource: string };
          markdown = done.markdown;
          sources = done.sources;
          renderSources(sources);
          paint();
          status.textContent = "Done.";
          $("generate-usage").textContent = describeUsage(done.usage ?? usage!, done.keySource);
          await advance(3, 67);
          break;
        }
        case "error": {
          const problem = (data as { problem: Problem }).problem;
          throw problemError({
            ...problem,
            retry_after: typeof problem.retry_after === "number" && problem.retry_after > 0 ? problem.retry_after : undefined,
          });
        }
      }
    }
  } catch (error) {
    if (frame) cancelAnimationFrame(frame);
    if ((error as Error).name === "AbortError") {
      status.textContent = "Cancelled. Nothing more will be generated or billed for this post.";
    } else if (error instanceof ProblemError) {
      status.textContent = failed(error.problem);
    } else if (!(error instanceof SignedOut)) {
      status.textContent = failed({ status: 0, code: "network", detail: String(error) });
    }
  } finally {
    if (generation === controller) generation = null;
    form.removeAttribute("aria-busy");
    $<HTMLButtonElement>("generate-button").disabled = false;
    $<HTMLButtonElement>("cancel-button").disabled = true;
    // What this generation cost (or what a cancel or a failure left) shows at once; a cancelled
    // call is settled by the server just after the stream closes, so its cost is asked for again.
    void loadUsage();
    void loadKeys().catch(() => {}); // what the generation learnt about the keys (working, refused, last used)
    if (controller.signal.aborted) setTimeout(() => void loadUsage(), 1500);
  }
}

/** A failed generation: field messages beside their fields, or the sentence with a retry; returns the status line. */
function failed(problem: Problem): string {
  const errorBox = $("generate-error");
  const fields: Record<string, string> = { "/topic": "topic", "/wordCount": "word-count" };
  const beside = (problem.errors ?? []).filter((e) => fields[e.pointer]);
  if (beside.length > 0) {
    for (const e of beside) {
      const id = fields[e.pointer]!;
      const message = $(`${id}-error`);
      message.textContent =
        id === "word-count"
          ? `Enter a word count from ${config.limits.wordCount.min} to ${config.limits.wordCount.max}.`
          : `Write a topic of ${config.limits.topic.min} to ${config.limits.topic.max} characters.`;
      show(message, true);
      $(id).setAttribute("aria-invalid", "true");
    }
    $(fields[beside[0]!.pointer]!).focus();
    if (beside.length === problem.errors!.length) return "Not sent: some fields need fixing.";
  }
  const retry = () => $<HTMLFormElement>("generate-form").requestSubmit();
  return showProblem(errorBox, problem, beside.length === 0, retry).headline;
}

// ---- step 3: usage and spending ---------------------------------------------------------------

type DailyUsage = UsageResponse["daily"][number];
const providerColours: Record<string, string> = { gemini: "#0b57d0", exa: "#8a3ffc" };
const colourOf = (provider: string) => providerColours[provider] ?? "#57606a";

/** Spend per day and provider: stacked bars with a value axis and each day's total; the table below holds the same numbers. */
function renderChart(daily: DailyUsage[]): void {
  const ns = "http://www.w3.org/2000/svg";
  const dates = [...new Set(daily.map((r) => r.date))].sort().slice(-14);
  const chart = $("usage-chart");
  chart.replaceChildren();
  show($("usage-figure"), dates.length > 0);
  if (dates.length === 0) return;
  const shown = [...new Set(daily.map((r) => r.provider))].sort();
  const totalOf = (date: string) => daily.filter((r) => r.date === date).reduce((sum, r) => sum + r.costUsd, 0);
  const max = Math.max(...dates.map(totalOf), 0.0001);
  const [left, top, width, height] = [44, 14, 300, 110];
  const slot = width / Math.max(dates.length, 4);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${left + width + 4} ${top + height + 18}`);
  svg.setAttribute("role", "img");
  svg.setAttribute(
    "aria-label",
    `Spend per day and provider, in USD, over ${dates.length} day${dates.length === 1 ? "" : "s"}; highest day ${usd(max)}. The table below has every value.`,
  );
  const text = (x: number, y: number, value: string, anchor: string, cls = "") => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", String(x));
    t.setAttribute("y", String(y));
    t.setAttribute("text-anchor", anchor);
    if (cls) t.setAttribute("class", cls);
    t.textContent = value;
    svg.append(t);
  };
  const line = (x1: number, y1: number, x2: number, y2: number) => {
    const l = document.createElementNS(ns, "line");
    for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, String(v));
    l.setAttribute("class", "axis");
    svg.append(l);
  };
  // The value axis: 0, half and the highest day.
  for (const fraction of [0, 0.5, 1]) {
    const y = top + height - fraction * height;
    line(left, y, left + width, y);
    text(left - 4, y + 3, usd(max * fraction), "end", "tick");
  }
  dates.forEach((date, i) => {
    let y = top + height;
    for (const provider of shown) {
      const value = daily.filter((r) => r.date === date && r.provider === provider).reduce((sum, r) => sum + r.costUsd, 0);
      if (value <= 0) continue;
      const h = Math.max(1, (value / max) * height);
      y -= h;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", String(left + i * slot + slot * 0.15));
      rect.setAttribute("y", String(y));
      rect.setAttribute("width", String(slot * 0.7));
      rect.setAttribute("height", String(h));
      rect.setAttribute("fill", colourOf(provider));
      rect.setAttribute("class", "bar");
      rect.dataset.provider = provider;
      svg.append(rect);
    }
    text(left + i * slot + slot / 2, y - 3, usd(totalOf(date)), "middle", "value");
    text(left + i * slot + slot / 2, top + height + 12, date.slice(5), "middle", "tick");
  });
  chart.append(svg);
  const legend = $("usage-legend");
  legend.replaceChildren("Spend per day (UTC), stacked by provider: ");
  shown.forEach((provider, i) => {
    legend.append(el("span", { class: "swatch", "data-provider": provider, "aria-hidden": "true" }), providerLabel(provider));
    if (i < shown.length - 1) legend.append(", ");
  });
  for (const swatch of legend.querySelectorAll<HTMLElement>(".swatch")) swatch.style.background = colourOf(swatch.dataset.provider ?? "");
}

/** What a provider's row used, in its own terms: Gemini's tokens, Exa's searches. */
function usedWords(row: DailyUsage): string {
  const [one, many] = row.provider === "exa" ? ["search", "searches"] : ["call", "calls"];
  const calls = `${count(row.requests)} ${row.requests === 1 ? one : many}`;
  if (row.inputTokens === 0 && row.outputTokens === 0) return calls;
  return `${calls}: ${count(row.inputTokens)} tokens in, ${count(row.outputTokens)} out`;
}

let budget: Budget | undefined;

function renderBudget(next: Budget): void {
  budget = next;
  const cap = next.monthlyUsd;
  const resets = day(next.resetsAt);
  const spent = `${usd(next.spentUsd)} spent`;
  const reserved = next.reservedUsd > 0 ? `, ${usd(next.reservedUsd)} reserved by a post being written` : "";
  $("budget-text").textContent =
    cap === null
      ? `No cap: ${spent}${reserved} this month. The month resets on ${resets} (UTC).`
      : `${spent}${reserved}, ${usd(Math.max(0, next.remainingUsd ?? 0))} left of your ${usd(cap)} cap${next.source === "default" ? " (the service's default)" : ""}. It resets on ${resets} (UTC).`;
  const bar = $("budget-bar");
  show(bar, cap !== null && cap > 0);
  if (cap) {
    (bar.querySelector(".spent") as HTMLElement).style.width = `${Math.min(100, (next.spentUsd / cap) * 100)}%`;
    (bar.querySelector(".reserved") as HTMLElement).style.width = `${Math.min(100, (next.reservedUsd / cap) * 100)}%`;
  }
  const input = $<HTMLInputElement>("budget-cap");
  if (document.activeElement !== input) input.value = cap === null ? "" : String(cap);
  if (next.maxMonthlyUsd !== null) input.max = String(next.maxMonthlyUsd);
  $("budget-help").textContent =
    next.maxMonthlyUsd !== null
      ? `Up to ${usd(next.maxMonthlyUsd)} a month (this service's maximum), so a cap is required. A post whose worst case does not fit is not started.`
      : "Any amount, or none. A post whose worst case does not fit is not started.";
  show($("budget-remove"), next.maxMonthlyUsd === null && cap !== null);
}

async function setCap(monthlyUsd: number | null): Promise<void> {
  const error = $("budget-error");
  const input = $("budget-cap");
  show(error, false);
  input.removeAttribute("aria-invalid");
  const status = $("budget-status");
  try {
    const next = await json<Budget>("/api/usage/budget", { method: "PUT", body: JSON.stringify({ monthlyUsd }) });
    renderBudget(next);
    status.textContent = next.monthlyUsd === null ? "Cap removed: no monthly limit." : `Cap set to ${usd(next.monthlyUsd)} a month.`;
  } catch (failure) {
    status.textContent = "";
    if (failure instanceof SignedOut) return;
    if (!(failure instanceof ProblemError)) throw failure;
    const max = budget?.maxMonthlyUsd;
    error.textContent =
      failure.problem.code === "invalid-request" && max != null
        ? `Enter an amount from $0 to ${usd(max)} (this service's maximum).`
        : sentenceFor(failure.problem).text;
    show(error, true);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

function submitCap(event: SubmitEvent): void {
  event.preventDefault();
  const raw = $<HTMLInputElement>("budget-cap").value.trim();
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value) || value < 0) {
    const error = $("budget-error");
    error.textContent = "Enter the cap as an amount in USD, for example 5 or 2.50.";
    show(error, true);
    $("budget-cap").setAttribute("aria-invalid", "true");
    $("budget-cap").focus();
    return;
  }
  void setCap(Math.round(value * 100) / 100);
}

async function loadUsage(): Promise<void> {
  const errorBox = $("usage-error");
  clearProblem(errorBox);
  try {
    const usage = await json<UsageResponse>("/api/usage");
    const body = $("usage-rows");
    body.replaceChildren();
    const rows = [...usage.daily].sort((a, b) => (a.date === b.date ? a.provider.localeCompare(b.provider) : b.date.localeCompare(a.date)));
    for (const row of rows) {
      const tr = el("tr");
      tr.append(
        el("td", { class: "date" }, row.date),
        el("td", {}, providerLabel(row.provider)),
        el("td", {}, usedWords(row)),
        el("td", { class: "num" }, usd(row.costUsd)),
      );
      body.append(tr);
    }
    show($("usage-empty"), rows.length === 0);
    const total = Object.values(usage.totals).reduce((sum, t) => sum + t.costUsd, 0);
    $("usage-total").textContent = `Last 30 days: ${usd(total)} on your own keys.`;
    renderBudget(usage.budget);
    renderChart(usage.daily);
    if (session.currentStep >= 3 && rows.length > 0) await advance(3, 100);
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (!(error instanceof ProblemError)) throw error;
    showProblem(errorBox, error.problem, false, () => void loadUsage());
  }
}

// ---- account ---------------------------------------------------------------------------------

const confirmPhrase = "delete my account";

function describeAccount(): void {
  if (config.mode === "development") {
    $("account-what").textContent =
      "Development: everything runs as the developer. Download what this service holds (no key values), or delete it all.";
    $("delete-help").textContent =
      "Deletes the saved keys, onboarding progress and usage history from the database, and removes the GEMINI_API_KEY, EXA_API_KEY and COPILOTKIT_API_KEY lines from the .env file (other lines, such as KEY_ENCRYPTION_KEYS, stay). This month's spend still counts against the cap.";
  } else {
    $("account-what").textContent = "Download everything this service holds about you (never a key's value), or delete it all.";
    $("delete-help").textContent =
      "Deletes your saved keys, onboarding progress and usage history, then signs you out. It cannot be undone. This month's spend still counts against the cap.";
  }
}

async function exportAccount(): Promise<void> {
  const status = $("account-status");
  try {
    const data = await json<unknown>("/api/me/export");
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "byok-account-export.json" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    status.textContent = "Downloaded byok-account-export.json.";
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (!(error instanceof ProblemError)) throw error;
    status.textContent = `Not downloaded. ${sentenceFor(error.problem).text}`;
  }
}

async function deleteAccount(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const input = $<HTMLInputElement>("delete-confirm");
  const error = $("delete-error");
  if (input.value.trim().toLowerCase() !== confirmPhrase) {
    error.textContent = `Type "${confirmPhrase}" to confirm; nothing was deleted.`;
    show(error, true);
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  show(error, false);
  input.removeAttribute("aria-invalid");
  const status = $("account-status");
  try {
    await json("/api/me", { method: "DELETE" });
    input.value = "";
    if (config.mode === "production") {
      await window.Clerk?.signOut?.().catch(() => {});
      showSignIn("Your account was deleted: your keys, progress and usage history are gone.");
      return;
    }
    session = { currentStep: 1, progress: 0 };
    await loadKeys();
    await loadUsage();
    status.textContent = "Deleted: the saved keys, progress and usage history, and the key lines in .env.";
    $(`key-${config.providers[0]!.id}`).focus();
  } catch (failure) {
    if (failure instanceof SignedOut) return;
    if (!(failure instanceof ProblemError)) throw failure;
    status.textContent = `Not deleted. ${sentenceFor(failure.problem).text}`;
  }
}

// ---- start ---------------------------------------------------------------------------------

async function startApp(): Promise<void> {
  show($("signin"), false);
  show($("app"), true);
  const user = window.Clerk?.user;
  const who = $("who");
  who.replaceChildren();
  if (config.mode === "production" && user) {
    who.append(`Signed in as ${user.primaryEmailAddress?.emailAddress ?? user.id} `);
    const out = el("button", { type: "button", class: "link-button" }, "Sign out");
    out.addEventListener("click", () => void window.Clerk?.signOut?.().then(() => showSignIn("You signed out.")));
    who.append(out);
  }
  try {
    session = await json("/api/onboarding/session");
    renderProgress();
    await loadKeys();
    await loadUsage();
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (error instanceof ProblemError) showProblem($("notice"), error.problem, true, () => void retryStart());
    else throw error;
  }
}

async function retryStart(): Promise<void> {
  clearProblem($("notice"));
  await startApp();
}

async function main(): Promise<void> {
  const response = await fetch("/api/config", { headers: { accept: "application/json" } }).catch(() => null);
  if (!response?.ok) {
    showProblem($("notice"), response ? await readProblem(response) : { status: 0, code: "network", detail: "" }, true, () =>
      location.reload(),
    );
    return;
  }
  config = (await response.json()) as AppConfig;
  document.body.dataset.mode = config.mode;
  buildKeyFields();
  const wordCount = $<HTMLInputElement>("word-count");
  wordCount.min = String(config.limits.wordCount.min);
  wordCount.max = String(config.limits.wordCount.max);
  wordCount.value = String(config.limits.wordCount.default);
  $("word-count-help").textContent = `From ${config.limits.wordCount.min} to ${config.limits.wordCount.max} words; fewer words cost less.`;
  $("budget-form").addEventListener("submit", (e) => submitCap(e as SubmitEvent));
  $("budget-remove").addEventListener("click", () => void setCap(null));
  $("export-button").addEventListener("click", () => void exportAccount());
  $("delete-form").addEventListener("submit", (e) => void deleteAccount(e as SubmitEvent));
  describeAccount();
  $("keys-form").addEventListener("submit", (e) => void saveKeys(e as SubmitEvent));
  $("generate-form").addEventListener("submit", (e) => void generate(e as SubmitEvent));
  $("cancel-button").addEventListener("click", () => generation?.abort());
  $("usage-refresh").addEventListener("click", () => void loadUsage());

  if (config.mode === "development") {
    const banner = $("dev-banner");
    banner.textContent = `Development mode: keys you save are written to the .env file on this machine (and its database), and every request runs as the developer (${config.devUserId ?? "local-dev"}). There is no sign-in.`;
    show(banner, true);
    await startApp();
    return;
  }
  if (!window.Clerk) {
    if (!config.clerkPublishableKey || !config.clerkFrontendApi) {
      showProblem($("notice"), { status: 500, code: "clerk-not-configured", detail: "CLERK_PUBLISHABLE_KEY is not set" });
      return;
    }
    try {
      await loadClerkScript(config.clerkFrontendApi, config.clerkPublishableKey);
    } catch {
      // This service answered (/api/config above): it is Clerk's script that did not load.
      showProblem($("notice"), { status: 0, code: "clerk-unavailable", detail: config.clerkFrontendApi });
      return;
    }
  }
  const clerk = window.Clerk!;
  await clerk.load();
  let started = false;
  clerk.addListener?.(({ user }) => {
    if (user && !started) {
      started = true;
      void startApp();
    }
  });
  if (clerk.user && clerk.session) {
    started = true;
    await startApp();
  } else showSignIn("Sign in to save your keys and generate posts billed to your own accounts.");
}

main().catch((error: unknown) => {
  if (error instanceof SignedOut) return;
  // Clerk failing to load or any unexpected failure: a sentence, never a blank page.
  console.error(error);
  showProblem($("notice"), { status: 0, code: "network", detail: String(error) });
});
