// `npm run bench [-- <group>…] [--full] [--quick] [--stores=sqlite,postgres,mysql] [--no-write]`
// Runs the benchmark groups (default: all but `profile`) and writes docs/benchmarks.md.
// Bounded: every load runs for a fixed time, every wait has a timeout, every child process and
// database is stopped or dropped at the end, also on failure or Ctrl-C. Loopback only.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runLoginGroup } from "./groups/login-group.js";
import { runMemoryGroup } from "./groups/memory-group.js";
import { runProfileGroup } from "./groups/profile-group.js";
import { runRefreshGroup } from "./groups/refresh-group.js";
import { runRouteGroup } from "./groups/route-group.js";
import { runVerifyGroup } from "./groups/verify-group.js";
import { issueAccessTokens, type BenchAlgorithm, type TokenMaterial } from "./lib/access-tokens.js";
import {
  BENCH_STORES,
  type BenchContext,
  type BenchSettings,
  type BenchStore,
  GROUP_NAMES,
  type GroupName,
  type GroupResult,
} from "./lib/bench-context.js";
import { dropAllDatabases } from "./lib/bench-databases.js";
import { writeBenchmarksDoc, type SectionUpdate } from "./lib/benchmarks-doc.js";
import { stopAllChildren } from "./lib/child-processes.js";
import { loadAverages, machineRows } from "./lib/machine-info.js";
import { buildTessera, ROOT } from "./lib/tessera-process.js";
import { ensureWrk } from "./lib/wrk-runner.js";

const RUNNERS: Record<GroupName, (context: BenchContext) => Promise<GroupResult>> = {
  verify: runVerifyGroup,
  routes: runRouteGroup,
  refresh: runRefreshGroup,
  login: runLoginGroup,
  memory: runMemoryGroup,
  profile: runProfileGroup,
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    full: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    stores: { type: "string", default: BENCH_STORES.join(",") },
    "no-write": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  process.stdout.write(
    `Usage: npm run bench [-- <group>…] [--full] [--quick] [--stores=${BENCH_STORES.join(",")}] [--no-write]\nGroups: ${GROUP_NAMES.join(", ")} (default: all but profile)\n`,
  );
  process.exit(0);
}
for (const name of positionals)
  if (!(GROUP_NAMES as readonly string[]).includes(name) && name !== "all")
    throw new TypeError(`unknown group "${name}"; groups: ${GROUP_NAMES.join(", ")}, all`);
const groups: GroupName[] =
  positionals.length === 0 || positionals.includes("all")
    ? GROUP_NAMES.filter((name) => name !== "profile")
    : GROUP_NAMES.filter((name) => positionals.includes(name));
const stores = values.stores.split(",").map((store) => store.trim());
for (const store of stores)
  if (!(BENCH_STORES as readonly string[]).includes(store)) throw new TypeError(`--stores: unknown store "${store}"`);

const workDir = mkdtempSync(join(tmpdir(), "tessera-bench-"));
const quick = values.quick;
const settings: BenchSettings = {
  full: values.full,
  quick,
  verify: quick ? { warmMs: 100, roundMs: 100, rounds: 2 } : { warmMs: 300, roundMs: 150, rounds: 9 },
  routes: quick
    ? { warmSeconds: 1, seconds: 1, rounds: 1, connections: 32 }
    : { warmSeconds: 1, seconds: 2, rounds: 3, connections: 32 },
  refresh: quick
    ? { warmSeconds: 1, seconds: 1, rounds: 1, graceSeconds: 1, connections: 32, stores: stores as BenchStore[] }
    : { warmSeconds: 2, seconds: 4, rounds: 3, graceSeconds: 3, connections: 32, stores: stores as BenchStore[] },
  login: quick ? { seconds: 1, rounds: 1 } : { seconds: 4, rounds: 3 },
  memory: { seconds: quick ? 10 : values.full ? 180 : 120 },
  workDir,
};

let tokens: Promise<ReadonlyMap<BenchAlgorithm, TokenMaterial>> | null = null;
const started = Date.now();
const context: BenchContext = {
  settings,
  tokens: () => (tokens ??= issueAccessTokens()),
  log: (message) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`),
};

let cleaning: Promise<void> | null = null;
const cleanUp = () =>
  (cleaning ??= (async () => {
    await stopAllChildren();
    await dropAllDatabases();
    rmSync(workDir, { recursive: true, force: true });
  })());
process.once("SIGINT", () => {
  process.stderr.write("interrupted: stopping servers and dropping databases\n");
  void cleanUp().finally(() => process.exit(130));
});

const updates: SectionUpdate[] = [];
try {
  ensureWrk();
  buildTessera();
  for (const name of groups) {
    const loadBefore = loadAverages();
    const groupStart = Date.now();
    context.log(`${name}: start (load average ${loadBefore})`);
    const result = await RUNNERS[name](context);
    const seconds = (Date.now() - groupStart) / 1000;
    context.log(`${name}: done in ${seconds.toFixed(0)} s`);
    updates.push({
      name,
      markdown: result.markdown,
      goals: result.goals,
      measuredAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      seconds,
      loadBefore,
      loadAfter: loadAverages(),
    });
    if (values["no-write"] || quick) process.stdout.write(`\n## ${result.title}\n\n${result.markdown}\n`);
  }
  if (!values["no-write"] && !quick) {
    writeBenchmarksDoc(join(ROOT, "docs", "benchmarks.md"), await machineRows(), updates);
    context.log(`wrote docs/benchmarks.md (${updates.map((update) => update.name).join(", ")})`);
  }
} finally {
  await cleanUp();
}
context.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
