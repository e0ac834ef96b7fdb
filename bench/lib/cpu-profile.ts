// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went within a window:
// idle, GC, self time by function, and time by component (inclusive: a sample counts for every
// component on its stack, so the column does not add up to 100 %).
import { readFileSync } from "node:fs";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a profile's time went, in microseconds. */
export interface ProfileSummary {
  readonly totalUs: number;
  readonly idleUs: number;
  readonly gcUs: number;
  /** Self time by function, largest first. */
  readonly functions: readonly { name: string; where: string; us: number }[];
  /** Inclusive time by component, largest first. */
  readonly components: readonly { name: string; us: number }[];
  /** Whether the window matched the profile's clock (otherwise the whole profile was used). */
  readonly windowed: boolean;
}

/**
 * The component of a call frame: a package under node_modules, a Tessera layer of dist/, Node's
 * internals, or the V8 pseudo-frames.
 */
export function componentOf(url: string, functionName: string): string {
  if (url === "") {
    if (functionName.startsWith("(")) return functionName;
    return "native (C++ bindings: crypto, sqlite, …)";
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg) return pkg;
  const layer = /\/dist\/([^/]+)\//.exec(url)?.[1];
  if (layer) return `tessera ${layer}/`;
  if (url.startsWith("node:")) {
    const module = /^node:(?:internal\/)?([^/]+)/.exec(url)?.[1] ?? "internal";
    return `node:${module}`;
  }
  if (url.includes("/bench/")) return "bench";
  return url;
}

function shortLocation(url: string, line: number): string {
  const pkg = /node_modules\/(.*)$/.exec(url)?.[1];
  const local = /\/(dist\/.*|bench\/.*)$/.exec(url)?.[1];
  return `${pkg ?? local ?? url}:${line + 1}`;
}

/** Summarizes `file`, counting only samples between `fromUs` and `toUs` (V8's monotonic clock). */
export function summarizeProfile(file: string, fromUs?: number, toUs?: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const windowed =
    fromUs !== undefined && toUs !== undefined && fromUs >= profile.startTime && toUs <= profile.endTime + 1e6;
  let total = 0;
  let idle = 0;
  let gc = 0;
  const self = new Map<number, number>();
  const components = new Map<string, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (windowed && (at < fromUs || at > toUs)) continue;
    const id = profile.samples[i]!;
    const node = byId.get(id);
    if (!node) continue;
    total += delta;
    const name = node.callFrame.functionName;
    if (name === "(idle)") idle += delta;
    if (name === "(garbage collector)") gc += delta;
    self.set(id, (self.get(id) ?? 0) + delta);
    const seen = new Set<string>();
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const frame = byId.get(current)!.callFrame;
      if (frame.functionName === "(root)") continue;
      seen.add(componentOf(frame.url, frame.functionName));
    }
    for (const component of seen) components.set(component, (components.get(component) ?? 0) + delta);
  }
  const functions = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const key = `${functionName}@${url}:${lineNumber}`;
    const entry = functions.get(key) ?? {
      name: functionName || "(anonymous)",
      where: url === "" ? "" : shortLocation(url, lineNumber),
      us: 0,
    };
    entry.us += us;
    functions.set(key, entry);
  }
  return {
    totalUs: total,
    idleUs: idle,
    gcUs: gc,
    functions: [...functions.values()].sort((a, b) => b.us - a.us),
    components: [...components.entries()].map(([name, us]) => ({ name, us })).sort((a, b) => b.us - a.us),
    windowed,
  };
}
