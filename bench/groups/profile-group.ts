// `npm run bench -- profile`: CPU profiles (node --cpu-prof) of the refresh path under load
// (SQLite and PostgreSQL, Tessera and its store floor), of a Fastify route with
// tessera/verify/fastify and with the floor verifier, and of the verifier alone, each reduced to
// idle/GC share, CPU per request, time by component and the hottest functions. The raw
// .cpuprofile files stay in .tmp/bench-profiles/ (open them in Chrome DevTools or speedscope).
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchAlgorithm } from "../lib/access-tokens.js";
import type { BenchContext, BenchStore, GroupResult } from "../lib/bench-context.js";
import { createBenchDatabase, unreachable } from "../lib/bench-databases.js";
import { type Child, LOAD_CORE, SERVER_CORE } from "../lib/child-processes.js";
import { type ProfileSummary, summarizeProfile } from "../lib/cpu-profile.js";
import { formatRate, markdownTable } from "../lib/stats.js";
import { openSessions, registerUser, ROOT, startTessera } from "../lib/tessera-process.js";
import { runWrk, type WrkResult } from "../lib/wrk-runner.js";
import { runChains, seedFloor, startFloor } from "./refresh-group.js";
import { startRouteServer, variantsOf } from "./route-group.js";
import { runVerifyWorker } from "./verify-group.js";

/** Sampling interval of the profiles, in µs (V8's default is 1000). */
const INTERVAL_US = 250;
const CHAINS = 32;

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

function profileIn(dir: string): string {
  const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  return join(dir, file);
}

const flags = (dir: string) => ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${INTERVAL_US}`];
const percent = (part: number, whole: number) => `${((part / whole) * 100).toFixed(1)} %`;

/** A profile and how much work was done while it was taken. */
interface Profiled {
  readonly title: string;
  readonly summary: ProfileSummary;
  readonly file: string;
  readonly operations: number;
  readonly rate: string;
}

function describe({ title, summary, file, operations, rate }: Profiled): string {
  const { totalUs } = summary;
  const busyUs = totalUs - summary.idleUs;
  const perOperation = (us: number) => `${(us / operations).toFixed(0)} µs`;
  return [
    `### ${title}`,
    "",
    `${rate}; ${(totalUs / 1e6).toFixed(1)} s sampled${summary.windowed ? " while the load ran" : " (whole process: the window did not match the profile's clock)"}: ` +
      `**idle ${percent(summary.idleUs, totalUs)}**, GC ${percent(summary.gcUs, totalUs)}, **CPU per operation ${perOperation(busyUs)}**. ` +
      `Profile: \`${file.slice(ROOT.length)}\`.`,
    "",
    markdownTable(
      ["component (inclusive)", "share", "per operation"],
      summary.components
        .filter((entry) => entry.name !== "(program)" && entry.us / totalUs >= 0.005)
        .map((entry) => [entry.name, percent(entry.us, totalUs), perOperation(entry.us)]),
    ),
    "",
    markdownTable(
      ["function (self time)", "where", "share"],
      summary.functions
        .slice(0, 20)
        .map((entry) => [
          `\`${entry.name}\``,
          entry.where === "" ? "" : `\`${entry.where}\``,
          percent(entry.us, totalUs),
        ]),
    ),
  ].join("\n");
}

/** Profiles `child` (started with {@link flags} of `dir`) while `load` runs; stops it. */
async function profileWhile(
  child: Child,
  dir: string,
  load: () => Promise<WrkResult>,
): Promise<{ summary: ProfileSummary; file: string; result: WrkResult }> {
  const from = nowUs();
  const result = await load();
  const to = nowUs();
  await child.stop();
  const file = profileIn(dir);
  writeFileSync(join(dir, "window.json"), JSON.stringify({ fromUs: from, toUs: to, requests: result.requests }));
  return { summary: summarizeProfile(file, from, to), file, result };
}

async function profileRefresh(
  context: BenchContext,
  store: BenchStore,
  server: "Tessera" | "floor",
  dir: string,
  seconds: number,
): Promise<Profiled> {
  const database = await createBenchDatabase(store, `profile_${server}`, context.settings.workDir);
  const profileDir = join(dir, `refresh-${store}-${server.toLowerCase()}`);
  const tokens = join(context.settings.workDir, `profile-${store}-${server}.tokens`);
  let child: Child | undefined;
  try {
    let url: string;
    if (server === "Tessera") {
      const tessera = await startTessera({ databaseUrl: database.url, nodeFlags: flags(profileDir), pinned: false });
      child = tessera;
      url = tessera.url;
      await registerUser(url);
      writeFileSync(tokens, `${(await openSessions(url, CHAINS * 3)).join("\n")}\n`);
    } else {
      const floor = await startFloor(store, database.location, flags(profileDir));
      child = floor.child;
      url = floor.url;
      writeFileSync(tokens, `${(await seedFloor(url, CHAINS * 3)).join("\n")}\n`);
    }
    child.pin(SERVER_CORE);
    const target = { name: server, child, url, tokens };
    await runChains(target, 2, CHAINS);
    const { summary, file, result } = await profileWhile(child, profileDir, () => runChains(target, seconds, CHAINS));
    const label = store === "sqlite" ? "SQLite" : "PostgreSQL";
    return {
      title: `POST /auth/refresh on ${label}, ${server === "Tessera" ? "Tessera" : "store floor"}, ${CHAINS} chains`,
      summary,
      file,
      operations: result.requests,
      rate: `${formatRate(result.okPerSecond)} rotations/s`,
    };
  } finally {
    await child?.stop();
    await database.drop();
  }
}

async function profileRoute(
  context: BenchContext,
  auth: "tessera" | "floor",
  dir: string,
  seconds: number,
): Promise<Profiled> {
  const tokens = await context.tokens();
  const variant = variantsOf("HS256").find(
    (candidate) => candidate.framework === "fastify" && candidate.auth === auth && !candidate.cache,
  )!;
  const profileDir = join(dir, `route-fastify-${auth}-hs256`);
  const server = await startRouteServer(variant, tokens.get("HS256")!, flags(profileDir));
  try {
    await runWrk({ url: server.url, seconds: 2, connections: 32, headers: server.headers });
    const { summary, file, result } = await profileWhile(server.child, profileDir, () =>
      runWrk({ url: server.url, seconds, connections: 32, headers: server.headers }),
    );
    return {
      title: `GET /protected, ${variant.label}, HS256`,
      summary,
      file,
      operations: result.requests,
      rate: `${formatRate(result.okPerSecond)} req/s`,
    };
  } finally {
    await server.child.stop();
  }
}

async function profileVerifier(
  context: BenchContext,
  dir: string,
  alg: BenchAlgorithm,
  name: string,
): Promise<Profiled> {
  const tokens = await context.tokens();
  const profileDir = join(dir, `verify-${alg}-${name.replace(/\W+/g, "-").toLowerCase()}`);
  const roundMs = context.settings.quick ? 1000 : 4000;
  const { rounds, window } = await runVerifyWorker(
    { materials: [tokens.get(alg)!], warmMs: 500, roundMs, rounds: 1, only: [name] },
    flags(profileDir),
  );
  const file = profileIn(profileDir);
  writeFileSync(join(profileDir, "window.json"), JSON.stringify(window));
  const opsPerSecond = rounds.wall[alg]?.[name]?.[0] ?? NaN;
  return {
    title: `${name === "node:crypto floor" ? "The node:crypto floor" : "tessera/verify, cache off"}, ${alg}, in process`,
    summary: summarizeProfile(file, window.fromUs, window.toUs),
    file,
    operations: (opsPerSecond * roundMs) / 1000,
    rate: `${formatRate(opsPerSecond)} verifications/s`,
  };
}

export async function runProfileGroup(context: BenchContext): Promise<GroupResult> {
  const seconds = context.settings.quick ? 2 : 12;
  const dir = join(ROOT, ".tmp", "bench-profiles", new Date().toISOString().replace(/[:.]/g, "-"));
  mkdirSync(dir, { recursive: true });
  const profiles: Profiled[] = [];
  for (const store of (["sqlite", "postgres"] as const).filter((candidate) =>
    context.settings.refresh.stores.includes(candidate),
  )) {
    if ((await unreachable(store)) !== null) continue;
    for (const server of ["Tessera", "floor"] as const) {
      context.log(`profile: refresh on ${store}, ${server}`);
      profiles.push(await profileRefresh(context, store, server, dir, seconds));
    }
  }
  for (const auth of ["tessera", "floor"] as const) {
    context.log(`profile: Fastify route, ${auth} verifier`);
    profiles.push(await profileRoute(context, auth, dir, seconds));
  }
  for (const [alg, name] of [
    ["HS256", "Tessera, cache off"],
    ["HS256", "node:crypto floor"],
    ["EdDSA", "Tessera, cache off"],
  ] as const) {
    context.log(`profile: verifier ${alg}, ${name}`);
    profiles.push(await profileVerifier(context, dir, alg, name));
  }
  const markdown = [
    `\`node --cpu-prof --cpu-prof-interval=${INTERVAL_US}\` on the process under test, pinned to core ${SERVER_CORE} (load from wrk on core ${LOAD_CORE}, ${CHAINS}`,
    'connections); only the samples taken while the measured load ran are counted. "Idle" is time the event loop had nothing to',
    `run: with ${CHAINS} requests always outstanding, idle means the process waited (for the database, a pool connection, a timer).`,
    "Components are inclusive: a sample counts for every package on its stack, so the shares add up to more than 100 %; only",
    "the synchronous stack is seen, so work resumed after an `await` is charged to `node:process` (the microtask queue), not to",
    "the caller that awaited. Components under 0.5 % are left out.",
    '"native" is time in C++ called from JavaScript that V8 does not attribute to a JS function (crypto, better-sqlite3, writev).',
    "",
    ...profiles.flatMap((profile) => [describe(profile), ""]),
  ].join("\n");
  return { name: "profile", title: "Where the time goes (CPU profiles)", markdown: markdown.trim(), goals: [] };
}
