/**
 * The onboarding web app: sign-in (Clerk, production), step 1 keys, step 2 generate (SSE),
 * step 3 usage. Vanilla TypeScript, bundled by scripts/build-web.ts into public/assets. Everything
 * shown from the API or a model goes through textContent or web/markdown.ts: no innerHTML.
 */
import type { z } from "zod";
import type { GenerateResult, GenerationUsage } from "../lib/generation/schemas.js";
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
};
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

// ---- state --------------------------------------------------------------------------------

let config: AppConfig;
let session = { currentStep: 1, progress: 0 };
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
  };
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await api(path, init);
  if (!response.ok) throw problemError(await readProblem(response));
  return (response.status === 204 ? undefined : await response.json()) as T;
}

// ---- failures as sentences -----------------------------------------------------------------

interface Sentence {
  text: string;
  link?: { href: string; text: string };
  retryAfter?: number;
}

/** What went wrong, said so a person understands it and knows what to do. */
export function sentenceFor(problem: Problem): Sentence {
  const who = problem.provider ? providerLabel(problem.provider) : "The provider";
  switch (problem.code) {
    case "missing-provider-key":
      return {
        text: `You have not saved a ${problem.provider ? providerLabel(problem.provider) : "provider"} API key yet, so nothing can be generated.`,
        link: { href: "#keys", text: "Add it in step 1" },
      };
    case "provider-rejected-key":
      return {
        text: `${who} rejected your API key: it may be mistyped, revoked or out of quota. Replace it in step 1.`,
        link: { href: "#keys", text: "Go to step 1" },
      };
    case "rate-limited":
      return { text: "Too many requests right now.", retryAfter: problem.retry_after ?? 30 };
    case "upstream-unavailable":
    case "upstream-timeout":
      return {
        text: `${who === "The provider" ? "The AI provider" : who} is not answering right now. Nothing was charged for the part that failed; try again in a minute.`,
      };
    case "database-unavailable":
      return {
        text: "Our database cannot be reached right now. Your saved keys are safe; try again in a few seconds.",
        retryAfter: problem.retry_after,
      };
    case "budget-exceeded":
      return { text: "This month's spending cap is reached, so generation is paused until it resets or you raise it." };
    case "invalid-key-format":
    case "invalid-request":
      return { text: problem.errors?.length ? "Some fields need fixing (see the messages beside them)." : problem.detail };
    case "network":
      return { text: "The service cannot be reached. Check your connection and try again." };
    case "server-misconfigured":
      return { text: "The service is not configured correctly. The operator has to fix it; please tell them." };
    default:
      return { text: `Something went wrong (${problem.status || "no answer"}): ${problem.detail}` };
  }
}

const countdowns = new Map<HTMLElement, ReturnType<typeof setInterval>>();

/** Shows `problem` as a sentence in `target` (with a link or a countdown), focusing it. */
function showProblem(target: HTMLElement, problem: Problem, focus = true): void {
  const previous = countdowns.get(target);
  if (previous) clearInterval(previous);
  const sentence = sentenceFor(problem);
  target.replaceChildren(document.createTextNode(sentence.text));
  target.dataset.code = problem.code;
  if (sentence.link) {
    target.append(" ");
    const a = el("a", { href: sentence.link.href }, sentence.link.text);
    target.append(a, ".");
  }
  if (sentence.retryAfter) {
    const counter = el("span", { class: "countdown" });
    target.append(" ", counter);
    let left = Math.ceil(sentence.retryAfter);
    const tick = () => {
      counter.textContent = left > 0 ? `Try again in ${left} second${left === 1 ? "" : "s"}.` : "You can try again now.";
      if (left <= 0) clearInterval(countdowns.get(target));
      left -= 1;
    };
    tick();
    countdowns.set(target, setInterval(tick, 1000));
  }
  show(target, true);
  if (focus) target.focus();
}
function clearProblem(target: HTMLElement): void {
  const previous = countdowns.get(target);
  if (previous) clearInterval(previous);
  target.replaceChildren();
  delete target.dataset.code;
  show(target, false);
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
  bar.value = session.progress;
  $("progress-text").textContent = `Step ${Math.min(session.currentStep, 3)} of 3, ${Math.round(session.progress)}% done`;
  document.querySelectorAll<HTMLElement>("#steps a").forEach((a, i) => {
    if (i + 1 === Math.min(session.currentStep, 3)) a.setAttribute("aria-current", "step");
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
    field.append(label, help, input, saved, error);
    container.append(field);
  }
}

function renderKeys(keys: KeyView[]): void {
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
    saved.append("Saved: ", el("code", { class: "hint" }, key.hint));
    if (key.status === "rejected") {
      // The reason's action says what to do (make a new key in AI Studio, restrict it, top up…).
      const action = key.lastError?.action;
      saved.append(
        action ? ` — ${providerLabel(p.id)} rejected this key: ${action}.` : ` — ${providerLabel(p.id)} rejected this key; replace it.`,
      );
    }
    if (key.status === "unreadable") saved.append(" — this key can no longer be read; enter it again.");
    const button = el(
      "button",
      { type: "button", class: "link-button", "data-delete": p.id, "aria-label": `Delete the saved ${p.label}` },
      "Delete",
    );
    button.addEventListener("click", () => void deleteKey(p.id));
    saved.append(" ", button);
    for (const notice of key.notices ?? []) {
      saved.append(el("span", { class: "key-notice", "data-code": notice.code }, ` ${notice.message} ${notice.action}`));
    }
  }
}

async function loadKeys(): Promise<{ keys: KeyView[]; missing: Provider[] }> {
  const list = await json<{ keys: KeyView[]; missing: Provider[] }>("/api/onboarding/api-keys");
  renderKeys(list.keys);
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
    const saved = await json<{ saved: Provider[]; storage: string[]; keys: KeyView[] }>("/api/onboarding/api-keys", {
      method: "POST",
      body: JSON.stringify(body),
    });
    for (const p of saved.saved) $<HTMLInputElement>(`key-${p}`).value = "";
    renderKeys(saved.keys);
    const where = saved.storage.includes("env") ? "in the .env file and the database" : "encrypted in the database";
    status.textContent = `Saved ${saved.saved.map(providerLabel).join(", ")} ${where}.`;
    if (saved.keys.some((k) => k.provider === "gemini")) await advance(2, 33);
  } catch (error) {
    status.textContent = "";
    if (error instanceof SignedOut) return;
    if (!(error instanceof ProblemError)) throw error;
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
    byField.push({ pointer: `/${problem.provider}`, message: `${providerLabel(problem.provider)} rejected this key: ${problem.detail}` });
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
    $("keys-status").textContent = `Deleted the ${providerLabel(provider)} key.`;
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
  show($("topic-error"), false);
  $("topic").removeAttribute("aria-invalid");
  const keywords = $<HTMLInputElement>("keywords")
    .value.split(",")
    .map((k) => k.trim())
    .filter(Boolean)
    .slice(0, config.limits.keywords.max);
  const wordCount = Number($<HTMLInputElement>("word-count").value) || config.limits.wordCount.default;
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
      status.textContent = "Stopped.";
      showProblem(errorBox, error.problem);
    } else if (!(error instanceof SignedOut)) {
      status.textContent = "Stopped.";
      showProblem(errorBox, { status: 0, code: "network", detail: String(error) });
    }
  } finally {
    if (generation === controller) generation = null;
    form.removeAttribute("aria-busy");
    $<HTMLButtonElement>("generate-button").disabled = false;
    $<HTMLButtonElement>("cancel-button").disabled = true;
  }
}

// ---- step 3: usage ---------------------------------------------------------------------------

interface DailyUsage {
  date: string;
  provider: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

function renderChart(daily: DailyUsage[]): void {
  const ns = "http://www.w3.org/2000/svg";
  const byDate = new Map<string, number>();
  for (const row of daily) byDate.set(row.date, (byDate.get(row.date) ?? 0) + row.costUsd);
  const dates = [...byDate.keys()].sort().slice(-14);
  const chart = $("usage-chart");
  chart.replaceChildren();
  if (dates.length === 0) return;
  const max = Math.max(...dates.map((d) => byDate.get(d)!), 0.0001);
  const width = 320;
  const height = 120;
  // Slots of at most 40 units: a single day is one slim bar, not the whole chart.
  const bar = Math.min(40, width / dates.length);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 16}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Spend per day, in USD");
  dates.forEach((date, i) => {
    const value = byDate.get(date)!;
    const h = Math.max(1, (value / max) * height);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(i * bar + 2));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("width", String(Math.max(1, bar - 4)));
    rect.setAttribute("height", String(h));
    rect.setAttribute("class", "bar");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${date}: ${usd(value)}`;
    rect.append(title);
    svg.append(rect);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", String(i * bar + bar / 2));
    label.setAttribute("y", String(height + 12));
    label.setAttribute("text-anchor", "middle");
    label.textContent = date.slice(5);
    svg.append(label);
  });
  chart.append(svg);
}

async function loadUsage(): Promise<void> {
  const errorBox = $("usage-error");
  clearProblem(errorBox);
  try {
    const usage = await json<{
      daily: DailyUsage[];
      totals: Record<string, { requests: number; costUsd: number }>;
      budget?: { monthlyUsd: number | null; spentUsd: number };
    }>("/api/usage");
    const body = $("usage-rows");
    body.replaceChildren();
    const rows = [...usage.daily].sort((a, b) => (a.date === b.date ? a.provider.localeCompare(b.provider) : b.date.localeCompare(a.date)));
    for (const row of rows) {
      const tr = el("tr");
      tr.append(
        el("td", {}, row.date),
        el("td", {}, providerLabel(row.provider)),
        el("td", { class: "num" }, String(row.requests)),
        el("td", { class: "num" }, `${row.inputTokens} / ${row.outputTokens}`),
        el("td", { class: "num" }, usd(row.costUsd)),
      );
      body.append(tr);
    }
    show($("usage-empty"), rows.length === 0);
    const total = Object.values(usage.totals).reduce((sum, t) => sum + t.costUsd, 0);
    const budget =
      usage.budget?.monthlyUsd != null ? ` This month: ${usd(usage.budget.spentUsd)} of your ${usd(usage.budget.monthlyUsd)} cap.` : "";
    $("usage-total").textContent = `Last 30 days: ${usd(total)} on your own keys.${budget}`;
    renderChart(usage.daily);
    if (session.currentStep >= 3) await advance(3, 100);
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (!(error instanceof ProblemError)) throw error;
    showProblem(errorBox, error.problem, false);
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
    if (error instanceof ProblemError) showProblem($("notice"), error.problem);
    else throw error;
  }
}

async function main(): Promise<void> {
  const response = await fetch("/api/config", { headers: { accept: "application/json" } }).catch(() => null);
  if (!response?.ok) {
    showProblem($("notice"), response ? await readProblem(response) : { status: 0, code: "network", detail: "" });
    return;
  }
  config = (await response.json()) as AppConfig;
  document.body.dataset.mode = config.mode;
  buildKeyFields();
  const wordCount = $<HTMLInputElement>("word-count");
  wordCount.min = String(config.limits.wordCount.min);
  wordCount.max = String(config.limits.wordCount.max);
  wordCount.value = String(config.limits.wordCount.default);
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
      showProblem($("notice"), { status: 500, code: "server-misconfigured", detail: "CLERK_PUBLISHABLE_KEY is not set" });
      return;
    }
    try {
      await loadClerkScript(config.clerkFrontendApi, config.clerkPublishableKey);
    } catch {
      showProblem($("notice"), { status: 0, code: "network", detail: "the sign-in service could not be loaded" });
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
