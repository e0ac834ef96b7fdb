// Refresh rotations/s and p99 on each store, against the store floor (the same rotation done
// directly with the driver, bench/servers/refresh-floor-server.ts) in the same run; chains that
// never repeat a token, then the grace-window repeat path.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchContext, BenchStore, GoalRow, GroupResult } from "../lib/bench-context.js";
import { createBenchDatabase, unreachable } from "../lib/bench-databases.js";
import { type Child, LOAD_CORE, SERVER_CORE, spawnPinned, waitForPortLine } from "../lib/child-processes.js";
import {
  formatMs,
  formatRate,
  formatRatio,
  formatSpread,
  goalVerdict,
  markdownTable,
  median,
  pairedRatio,
} from "../lib/stats.js";
import { openSessions, postJson, registerUser, ROOT, startTessera, useOnce } from "../lib/tessera-process.js";
import { runWrk, type WrkResult } from "../lib/wrk-runner.js";

const FLOOR = fileURLToPath(new URL("../servers/refresh-floor-server.ts", import.meta.url));
const STORE_LABELS: Record<BenchStore, string> = { sqlite: "SQLite", postgres: "PostgreSQL", mysql: "MariaDB" };

/** A server under refresh load and the file holding its unused refresh tokens. */
interface Target {
  readonly name: "Tessera" | "floor";
  readonly child: Child;
  readonly url: string;
  readonly tokens: string;
}

/**
 * Starts the floor server on `location` (with `nodeFlags`, e.g. `--cpu-prof`), unpinned (pin it
 * to the server core once seeded), and waits for it.
 */
export async function startFloor(
  store: BenchStore,
  location: string,
  nodeFlags: readonly string[] = [],
): Promise<{ child: Child; url: string }> {
  const child = spawnPinned(null, process.execPath, [...nodeFlags, "--import", "tsx", FLOOR, store, location], {
    cwd: ROOT,
    env: { NODE_ENV: "production", BENCH_GRACE_SECONDS: "300" },
  });
  try {
    return { child, url: `http://127.0.0.1:${await waitForPortLine(child)}` };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** Seeds `count` sessions on the floor server; their first refresh tokens. */
export async function seedFloor(url: string, count: number): Promise<string[]> {
  const answer = await postJson(`${url}/seed`, { count });
  if (answer.status !== 200) throw new Error(`floor seed answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body.tokens as string[];
}

/**
 * One wrk run of never-repeated chains: takes the target's unused tokens, leaves the rest
 * (successors included) for the next run. Throws when the pool ran dry.
 */
export async function runChains(target: Target, seconds: number, connections: number): Promise<WrkResult> {
  const next = `${target.tokens}.next`;
  const result = await runWrk({
    url: `${target.url}/auth/refresh`,
    seconds,
    connections,
    script: "refresh-chain.lua",
    env: { TOKENS_IN: target.tokens, TOKENS_OUT: next },
    serverPid: target.child.pid,
  });
  renameSync(next, target.tokens);
  if (result.exhausted > 0)
    throw new Error(
      `${target.name} ${target.url}: the refresh-token pool ran dry (${result.exhausted} requests without a token)`,
    );
  return result;
}

/** Takes `count` tokens out of the target's pool. */
function takeTokens(target: Target, count: number): string[] {
  const all = readFileSync(target.tokens, "utf8").split("\n").filter(Boolean);
  if (all.length < count) throw new Error(`${target.name}: only ${all.length} unused refresh tokens left`);
  writeFileSync(target.tokens, `${all.slice(count).join("\n")}\n`);
  return all.slice(0, count);
}

interface StoreResult {
  readonly store: BenchStore;
  readonly chain: Record<Target["name"], WrkResult[]>;
  readonly repeat: Record<Target["name"], WrkResult[]>;
  readonly refused: number;
}

async function benchStore(context: BenchContext, store: BenchStore): Promise<StoreResult> {
  const { refresh, workDir } = context.settings;
  const chains = refresh.connections * (refresh.rounds + 4);
  const tesseraDatabase = await createBenchDatabase(store, "tessera", workDir);
  const floorDatabase = await createBenchDatabase(store, "floor", workDir);
  const children: Child[] = [];
  try {
    const tessera = await startTessera({ databaseUrl: tesseraDatabase.url, pinned: false });
    children.push(tessera);
    const floor = await startFloor(store, floorDatabase.location);
    children.push(floor.child);
    context.log(
      `refresh ${store}: opening ${chains} sessions on each server (Tessera: logins at the configured argon2id cost)`,
    );
    await registerUser(tessera.url);
    const targets: Target[] = [
      { name: "Tessera", child: tessera, url: tessera.url, tokens: join(workDir, `${store}-tessera.tokens`) },
      { name: "floor", child: floor.child, url: floor.url, tokens: join(workDir, `${store}-floor.tokens`) },
    ];
    writeFileSync(targets[0]!.tokens, `${(await openSessions(tessera.url, chains)).join("\n")}\n`);
    writeFileSync(targets[1]!.tokens, `${(await seedFloor(floor.url, chains)).join("\n")}\n`);
    // Seeded on both cores; measured on one.
    for (const target of targets) target.child.pin(SERVER_CORE);

    const chain: StoreResult["chain"] = { Tessera: [], floor: [] };
    const repeat: StoreResult["repeat"] = { Tessera: [], floor: [] };
    let refused = 0;
    for (const target of targets) await runChains(target, refresh.warmSeconds, refresh.connections);
    for (let round = 0; round < refresh.rounds; round += 1) {
      context.log(`refresh ${store}: chains, round ${round + 1} of ${refresh.rounds}`);
      for (const target of round % 2 === 0 ? targets : [...targets].reverse()) {
        const result = await runChains(target, refresh.seconds, refresh.connections);
        refused += result.refused + result.socketErrors;
        chain[target.name].push(result);
      }
    }
    // The grace-window path: tokens used once a moment ago, presented again and again.
    const repeatFiles = await Promise.all(
      targets.map(async (target) => {
        const file = `${target.tokens}.repeat`;
        writeFileSync(file, `${(await useOnce(target.url, takeTokens(target, refresh.connections))).join("\n")}\n`);
        return file;
      }),
    );
    for (let round = 0; round < refresh.rounds; round += 1) {
      context.log(`refresh ${store}: grace-window repeats, round ${round + 1} of ${refresh.rounds}`);
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const target = targets[i]!;
        const result = await runWrk({
          url: `${target.url}/auth/refresh`,
          seconds: refresh.graceSeconds,
          connections: refresh.connections,
          script: "refresh-repeat.lua",
          env: { TOKENS_IN: repeatFiles[i]! },
          serverPid: target.child.pid,
        });
        refused += result.refused + result.socketErrors;
        repeat[target.name].push(result);
      }
    }
    return { store, chain, repeat, refused };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await tesseraDatabase.drop();
    await floorDatabase.drop();
  }
}

export async function runRefreshGroup(context: BenchContext): Promise<GroupResult> {
  const { refresh } = context.settings;
  const results: StoreResult[] = [];
  const skipped: string[] = [];
  for (const store of refresh.stores) {
    const reason = await unreachable(store);
    if (reason !== null) {
      skipped.push(`${STORE_LABELS[store]} skipped: ${reason}`);
      context.log(`refresh ${store}: skipped (${reason})`);
      continue;
    }
    results.push(await benchStore(context, store));
  }
  const rates = (runs: WrkResult[]) => runs.map((run) => run.okPerSecond);
  const cpuRates = (runs: WrkResult[]) => runs.map((run) => run.okPerCpuSecond);
  const p99 = (runs: WrkResult[]) => median(runs.map((run) => run.p99Ms));
  const rows: string[][] = [];
  const goals: GoalRow[] = [];
  for (const result of results) {
    for (const [path, runs] of [
      ["chains, never repeated", result.chain],
      ["grace-window repeat", result.repeat],
    ] as const) {
      const ratio = pairedRatio(rates(runs.Tessera), rates(runs.floor));
      const perCpu = pairedRatio(cpuRates(runs.Tessera), cpuRates(runs.floor));
      rows.push([
        STORE_LABELS[result.store],
        path,
        `${formatRate(median(rates(runs.Tessera)))} ${formatSpread(rates(runs.Tessera))}`,
        formatMs(p99(runs.Tessera)),
        `${formatRate(median(rates(runs.floor)))} ${formatSpread(rates(runs.floor))}`,
        formatMs(p99(runs.floor)),
        formatRatio(ratio),
        `${formatRate(median(cpuRates(runs.Tessera)))} / ${formatRate(median(cpuRates(runs.floor)))}`,
        formatRatio(perCpu),
      ]);
      if (path === "chains, never repeated") {
        const bound = result.store === "sqlite" ? 0.5 : null;
        goals.push({
          path: `/auth/refresh on ${STORE_LABELS[result.store]}, ${refresh.connections} clients, chains never repeated`,
          tessera: `${formatRate(median(rates(runs.Tessera)))}/s, p99 ${formatMs(p99(runs.Tessera))}`,
          reference: `store floor ${formatRate(median(rates(runs.floor)))}/s, p99 ${formatMs(p99(runs.floor))}`,
          ratio,
          ratioPerCpu: perCpu,
          goal: bound === null ? "— (0.5× for SQLite)" : `≥ ${bound}×`,
          verdict: bound === null ? (ratio >= 0.5 ? "(would meet 0.5×)" : "(below 0.5×)") : goalVerdict(ratio, bound),
          verdictPerCpu: bound === null ? "" : goalVerdict(perCpu, bound),
        });
      }
    }
  }
  const failed = results.reduce((sum, result) => sum + result.refused, 0);
  const markdown = [
    `\`tessera serve\` (the built package, \`NODE_ENV=production\`, log level \`warn\`, rate limits off, \`TESSERA_REFRESH_GRACE=5m\`) and`,
    `the store floor (\`bench/servers/refresh-floor-server.ts\`) each run pinned to core ${SERVER_CORE}, on a database of their own created for`,
    "this run (SQLite file in WAL mode with synchronous=NORMAL as Tessera sets it; `CREATE DATABASE` on the PostgreSQL and MariaDB",
    "servers, dropped afterwards; the database servers themselves are not pinned). The floor does the same rotation with the",
    "driver (better-sqlite3 prepared statements; pg named statements; mysql2 `execute`), pool of 10 like Tessera's default: select the",
    "token joined with its session by SHA-256, then mark it used `where used_at is null` and insert the successor HMAC(key, token) in",
    "one transaction, and answer a token response without an access token (Tessera also signs an ES256 access token, updates the",
    "session row and joins the user). Sessions are opened before the clock starts (Tessera: logins; floor: inserts).",
    "",
    `**Chains**: \`wrk -t1 -c${refresh.connections}\` on core ${LOAD_CORE} with \`bench/wrk/refresh-chain.lua\`, which keeps a FIFO pool of unused refresh tokens`,
    "(one per session): each request takes one out, each 200 answer puts its successor back. wrk can chain this way because its",
    "Lua `response()` sees every body; a token is sent exactly once, no two requests race on a session, and the pool carries over",
    "from run to run through a file. (A Node load generator was not needed, and would have cost more CPU per request than wrk.)",
    `${refresh.warmSeconds} s of warm-up each, then ${refresh.rounds} rounds of ${refresh.seconds} s, Tessera and floor alternating (order swapped every round).`,
    `**Grace window**: ${refresh.connections} tokens refreshed once, then presented again round robin for ${refresh.graceSeconds} s per round (\`refresh-repeat.lua\`):`,
    'each answer is the same successor again; nothing is written. Ratios are medians of per-round ratios. "Per CPU-second" counts',
    "only the server process's CPU (not the database server's), so for PostgreSQL and MariaDB it leaves out the time spent waiting.",
    `Failed requests: ${failed}.`,
    ...(skipped.length > 0 ? ["", ...skipped] : []),
    "",
    markdownTable(
      [
        "store",
        "path",
        "Tessera /s",
        "Tessera p99",
        "floor /s",
        "floor p99",
        "Tessera ÷ floor",
        "per CPU-second, Tessera / floor",
        "ratio per CPU-second",
      ],
      rows,
    ),
  ].join("\n");
  return { name: "refresh", title: "Refresh rotations/s and p99", markdown, goals };
}
