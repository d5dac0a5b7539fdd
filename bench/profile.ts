/**
 * Summaries of a V8 CPU profile (`node --cpu-prof`): self time per function and per owner
 * (our files, each package, Node internals, GC), per request, so a floor profile and a
 * key-path profile can be subtracted to show where the extra time goes.
 */
import { readFileSync } from "node:fs";
import { sep } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  owner: string;
  /** Self time, ms. */
  ms: number;
}

export interface ProfileSummary {
  /** Profile wall time, ms. */
  wallMs: number;
  /** Sampled self time excluding (idle), ms. */
  busyMs: number;
  functions: SelfTime[];
  owners: { owner: string; ms: number }[];
}

const buildSrc = `${sep}bench${sep}.build${sep}src${sep}`;

/** Who a frame belongs to: `ours:<file>`, a package name, `node`, or a V8 pseudo-frame. */
export function ownerOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName.startsWith("(")) return functionName; // (garbage collector), (program), (idle)
    return "(native)";
  }
  const path = url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url;
  const nm = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (nm >= 0) {
    const rest = path.slice(nm + 14).split(sep);
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? "node_modules");
  }
  if (path.startsWith("node:")) return "node internals";
  const ours = path.indexOf(buildSrc);
  if (ours >= 0) return `ours: ${path.slice(ours + buildSrc.length).replace(/\.js$/, ".ts")}`;
  return path;
}

/**
 * Self times of a profile, optionally only of the samples between `window.fromMs` and
 * `window.toMs` after the profile started (to leave start-up and shutdown out).
 */
export function summarizeProfile(file: string, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const from = window ? window.fromMs * 1000 : -Infinity;
  const to = window ? window.toMs * 1000 : Infinity;
  let t = 0;
  let first = Infinity;
  let last = -Infinity;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0; // time of sample i, µs after startTime
    if (t < from || t > to) continue;
    const id = profile.samples[i]!;
    // timeDeltas[i] is the time before sample i; attribute the next delta to this sample.
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
    first = Math.min(first, t);
    last = Math.max(last, t);
  }
  const functions = new Map<string, SelfTime>();
  const owners = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") continue;
    busyUs += us;
    const owner = ownerOf(url, functionName);
    const name = `${functionName || "(anonymous)"}${url ? `:${lineNumber + 1}` : ""}`;
    const key = `${owner}|${name}`;
    const entry = functions.get(key) ?? { name, owner, ms: 0 };
    entry.ms += us / 1000;
    functions.set(key, entry);
    owners.set(owner, (owners.get(owner) ?? 0) + us / 1000);
  }
  return {
    wallMs: window ? Math.max(0, last - first) / 1000 : (profile.endTime - profile.startTime) / 1000,
    busyMs: busyUs / 1000,
    functions: [...functions.values()].sort((a, b) => b.ms - a.ms),
    owners: [...owners.entries()].map(([owner, ms]) => ({ owner, ms })).sort((a, b) => b.ms - a.ms),
  };
}

/** Owner groups coarse enough to compare two profiles: ours, each package, node, GC. */
export function ownerGroup(owner: string): string {
  if (owner.startsWith("ours: ")) return "ours";
  return owner;
}
