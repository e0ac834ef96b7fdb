// Protected route req/s and p99: each framework + verifier in its own process pinned to the
// server core, wrk on the load core, the same GET /protected with the same bearer token.
import { fileURLToPath } from "node:url";
import type { BenchAlgorithm, TokenMaterial } from "../lib/access-tokens.js";
import type { BenchContext, GoalRow, GroupResult } from "../lib/bench-context.js";
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
import { ROOT } from "../lib/tessera-process.js";
import { runWrk } from "../lib/wrk-runner.js";

const SERVER = fileURLToPath(new URL("../servers/route-server.ts", import.meta.url));
const ROUTE_ALGORITHMS = ["HS256", "ES256"] as const satisfies readonly BenchAlgorithm[];

/** One server of the group: framework, verifier, algorithm, Tessera's cache. */
export interface Variant {
  readonly id: string;
  readonly label: string;
  readonly framework: "fastify" | "express" | "hono";
  readonly auth: string;
  readonly alg: BenchAlgorithm | null;
  readonly cache: boolean;
}

/** The variants of one algorithm, peers and Tessera interleaved. */
export function variantsOf(alg: BenchAlgorithm): Variant[] {
  const v = (framework: Variant["framework"], auth: string, label: string, cache = false): Variant => ({
    id: `${framework}/${auth}${auth === "tessera" ? (cache ? "-on" : "-off") : ""}/${alg}`,
    label,
    framework,
    auth,
    alg,
    cache,
  });
  return [
    v("fastify", "floor", "Fastify + node:crypto floor"),
    v("fastify", "tessera", "Fastify + tessera/verify/fastify, cache off"),
    v("fastify", "fastify-jwt", "Fastify + @fastify/jwt"),
    v("fastify", "tessera", "Fastify + tessera/verify/fastify, cache on", true),
    v("fastify", "fast-jwt-cached", "Fastify + fast-jwt, cache on"),
    v("express", "jsonwebtoken", "Express + jsonwebtoken"),
    v("express", "tessera", "Express + tessera/verify/express, cache off"),
    v("hono", "hono-jwt", "Hono + hono/jwt"),
    v("hono", "tessera", "Hono + tessera/verify/hono, cache off"),
    v("express", "tessera", "Express + tessera/verify/express, cache on", true),
    v("hono", "tessera", "Hono + tessera/verify/hono, cache on", true),
  ];
}

const HELLO: readonly Variant[] = (["fastify", "express", "hono"] as const).map((framework) => ({
  id: `${framework}/hello`,
  label: `${framework[0]!.toUpperCase()}${framework.slice(1)} hello world (no auth)`,
  framework,
  auth: "none",
  alg: null,
  cache: false,
}));

interface Running {
  readonly variant: Variant;
  readonly child: Child;
  readonly url: string;
  readonly headers: Record<string, string>;
}

/**
 * Starts one variant's server (with `nodeFlags`, e.g. `--cpu-prof`) on any core, checks that it
 * answers as it should, then pins it to the server core.
 */
export async function startRouteServer(
  variant: Variant,
  material: TokenMaterial | null,
  nodeFlags: readonly string[] = [],
): Promise<Running> {
  const child = spawnPinned(
    null,
    process.execPath,
    [
      ...nodeFlags,
      "--import",
      "tsx",
      SERVER,
      variant.framework,
      variant.auth,
      variant.cache ? "cache-on" : "cache-off",
    ],
    {
      cwd: ROOT,
      env: { NODE_ENV: "production", BENCH_TOKEN_MATERIAL: JSON.stringify(material) },
    },
  );
  const url = `http://127.0.0.1:${await waitForPortLine(child)}/protected`;
  // The variant must do what it claims: answer the token's sub, and refuse a request without a token.
  try {
    await check(variant, url, material);
    child.pin(SERVER_CORE);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { variant, child, url, headers: material === null ? {} : { Authorization: `Bearer ${material.token}` } };
}

async function check(variant: Variant, url: string, material: TokenMaterial | null): Promise<void> {
  const headers: Record<string, string> = material === null ? {} : { Authorization: `Bearer ${material.token}` };
  const ok = await fetch(url, { headers });
  const body = (await ok.json()) as Record<string, unknown>;
  if (ok.status !== 200 || (material !== null && typeof body.sub !== "string"))
    throw new Error(`${variant.id}: answered ${ok.status} ${JSON.stringify(body)}`);
  if (material !== null) {
    const refused = await fetch(url);
    await refused.arrayBuffer();
    if (refused.status !== 401) throw new Error(`${variant.id}: answered ${refused.status} without a token`);
  }
}

export async function runRouteGroup(context: BenchContext): Promise<GroupResult> {
  const { routes } = context.settings;
  const tokens = await context.tokens();
  const variants = [...HELLO, ...ROUTE_ALGORITHMS.flatMap(variantsOf)];
  context.log(`routes: starting ${variants.length} servers`);
  const running: Running[] = [];
  try {
    // Started four at a time on both cores (start-up is not measured), each pinned once it answers.
    for (let i = 0; i < variants.length; i += 4) {
      const batch = variants.slice(i, i + 4);
      const started = await Promise.allSettled(
        batch.map((variant) => startRouteServer(variant, variant.alg === null ? null : tokens.get(variant.alg)!)),
      );
      for (const result of started) if (result.status === "fulfilled") running.push(result.value);
      const failed = started.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    }
    running.sort((a, b) => variants.indexOf(a.variant) - variants.indexOf(b.variant));
    const rates = new Map<string, number[]>(variants.map((variant) => [variant.id, []]));
    const cpuRates = new Map<string, number[]>(variants.map((variant) => [variant.id, []]));
    const p99s = new Map<string, number[]>(variants.map((variant) => [variant.id, []]));
    const failures: string[] = [];
    for (let round = 0; round < routes.rounds; round += 1) {
      const order = running.map((_, i) => running[(i + round * 5) % running.length]!);
      if (round % 2 === 1) order.reverse();
      context.log(`routes: round ${round + 1} of ${routes.rounds}`);
      for (const server of order) {
        const load = {
          url: server.url,
          connections: routes.connections,
          headers: server.headers,
          serverPid: server.child.pid,
        };
        if (round === 0) await runWrk({ ...load, seconds: routes.warmSeconds });
        const result = await runWrk({ ...load, seconds: routes.seconds });
        if (result.statusErrors > 0 || result.socketErrors > 0)
          failures.push(`${server.variant.id}: ${result.statusErrors} non-2xx, ${result.socketErrors} socket errors`);
        rates.get(server.variant.id)!.push(result.okPerSecond);
        cpuRates.get(server.variant.id)!.push(result.okPerCpuSecond);
        p99s.get(server.variant.id)!.push(result.p99Ms);
      }
    }
    if (failures.length > 0) throw new Error(`routes: failed requests\n${failures.join("\n")}`);
    return report(context, variants, rates, cpuRates, p99s);
  } finally {
    await Promise.all(running.map((server) => server.child.stop()));
  }
}

function report(
  context: BenchContext,
  variants: readonly Variant[],
  rates: Map<string, number[]>,
  cpuRates: Map<string, number[]>,
  p99s: Map<string, number[]>,
): GroupResult {
  const { routes } = context.settings;
  const of = (id: string) => rates.get(id) ?? [];
  const cpuOf = (id: string) => cpuRates.get(id) ?? [];
  const ratio = (a: string, b: string) => pairedRatio(of(a), of(b));
  const cpuRatio = (a: string, b: string) => pairedRatio(cpuOf(a), cpuOf(b));
  const row = (variant: Variant) => [
    variant.label,
    `${formatRate(median(of(variant.id)))} ${formatSpread(of(variant.id))}`,
    formatMs(median(p99s.get(variant.id) ?? [])),
    formatRatio(ratio(variant.id, `${variant.framework}/hello`)),
    `${formatRate(median(cpuOf(variant.id)))} ${formatSpread(cpuOf(variant.id))}`,
    formatRatio(cpuRatio(variant.id, `${variant.framework}/hello`)),
  ];
  const header = ["server", "req/s", "p99", "× its framework's hello world", "req per CPU-second", "× hello, CPU"];
  const tables = [
    "Ceilings:",
    "",
    markdownTable(header, HELLO.map(row)),
    ...ROUTE_ALGORITHMS.flatMap((alg) => [
      "",
      `${alg}:`,
      "",
      markdownTable(header, variants.filter((variant) => variant.alg === alg).map(row)),
    ]),
  ];
  const id = (framework: string, auth: string, alg: string, cache?: boolean) =>
    `${framework}/${auth}${cache === undefined ? "" : cache ? "-on" : "-off"}/${alg}`;
  const compare = (
    label: string,
    tessera: string,
    reference: string,
    referenceLabel: string,
    bound: number | null,
  ): GoalRow => {
    const measured = ratio(tessera, reference);
    const perCpu = cpuRatio(tessera, reference);
    return {
      path: label,
      tessera: `${formatRate(median(of(tessera)))} req/s, p99 ${formatMs(median(p99s.get(tessera) ?? []))}`,
      reference: `${referenceLabel} ${formatRate(median(of(reference)))}`,
      ratio: measured,
      ratioPerCpu: perCpu,
      goal: bound === null ? "—" : `≥ ${bound}×`,
      verdict: bound === null ? "(no goal)" : goalVerdict(measured, bound),
      verdictPerCpu: bound === null ? "" : goalVerdict(perCpu, bound),
    };
  };
  const goals = [
    compare(
      "Fastify + tessera/verify/fastify, HS256, cache off",
      id("fastify", "tessera", "HS256", false),
      id("fastify", "floor", "HS256"),
      "Fastify + floor",
      1.0,
    ),
    compare(
      "Fastify + tessera/verify/fastify, HS256, cache off",
      id("fastify", "tessera", "HS256", false),
      id("fastify", "fastify-jwt", "HS256"),
      "Fastify + @fastify/jwt",
      1.5,
    ),
    compare(
      "Fastify + tessera/verify/fastify, ES256, cache off",
      id("fastify", "tessera", "ES256", false),
      id("fastify", "floor", "ES256"),
      "Fastify + floor",
      0.9,
    ),
    compare(
      "Fastify + tessera/verify/fastify, ES256, cache on",
      id("fastify", "tessera", "ES256", true),
      id("fastify", "fast-jwt-cached", "ES256"),
      "Fastify + fast-jwt cached",
      1.0,
    ),
    compare(
      "Express + tessera/verify/express, HS256, cache off",
      id("express", "tessera", "HS256", false),
      id("express", "jsonwebtoken", "HS256"),
      "Express + jsonwebtoken",
      1.0,
    ),
    compare(
      "Hono + tessera/verify/hono, HS256, cache off",
      id("hono", "tessera", "HS256", false),
      id("hono", "hono-jwt", "HS256"),
      "Hono + hono/jwt",
      1.2,
    ),
  ];
  const others = [
    compare(
      "Fastify + tessera, HS256, cache on",
      id("fastify", "tessera", "HS256", true),
      id("fastify", "fast-jwt-cached", "HS256"),
      "Fastify + fast-jwt cached",
      null,
    ),
    compare(
      "Fastify + tessera, ES256, cache off",
      id("fastify", "tessera", "ES256", false),
      id("fastify", "fastify-jwt", "ES256"),
      "Fastify + @fastify/jwt",
      null,
    ),
    compare(
      "Express + tessera, HS256, cache on",
      id("express", "tessera", "HS256", true),
      id("express", "jsonwebtoken", "HS256"),
      "Express + jsonwebtoken",
      null,
    ),
    compare(
      "Express + tessera, ES256, cache off",
      id("express", "tessera", "ES256", false),
      id("express", "jsonwebtoken", "ES256"),
      "Express + jsonwebtoken",
      null,
    ),
    compare(
      "Express + tessera, ES256, cache on",
      id("express", "tessera", "ES256", true),
      id("express", "jsonwebtoken", "ES256"),
      "Express + jsonwebtoken",
      null,
    ),
    compare(
      "Hono + tessera, HS256, cache on",
      id("hono", "tessera", "HS256", true),
      id("hono", "hono-jwt", "HS256"),
      "Hono + hono/jwt",
      null,
    ),
    compare(
      "Hono + tessera, ES256, cache off",
      id("hono", "tessera", "ES256", false),
      id("hono", "hono-jwt", "ES256"),
      "Hono + hono/jwt",
      null,
    ),
    compare(
      "Hono + tessera, ES256, cache on",
      id("hono", "tessera", "ES256", true),
      id("hono", "hono-jwt", "ES256"),
      "Hono + hono/jwt",
      null,
    ),
  ];
  const markdown = [
    `Every server is its own process (\`node --import tsx bench/servers/route-server.ts\`, \`NODE_ENV=production\`, no logger) pinned to`,
    `core ${SERVER_CORE} with \`taskset\`; \`wrk -t1 -c${routes.connections}\` runs pinned to core ${LOAD_CORE}, over loopback, with the same \`Authorization: Bearer\``,
    'header (a token issued by `tessera serve`) on `GET /protected`, which answers `{"sub": …}` from the verified claims. Before it is',
    "measured, each server must answer 200 with the sub, and 401 without a token. Tessera is loaded from its package entry points",
    "(`tessera/verify`, `tessera/verify/fastify|express|hono`, i.e. dist/), with a fixed JWK Set (ES256) or the secret (HS256).",
    "@fastify/jwt and Fastify + fast-jwt check typ with `checkTyp`; hono/jwt with `verification.typ`; Express + jsonwebtoken is",
    "given a KeyObject and checks typ on the decoded header. All servers stay up for the whole group; each round runs every",
    `server once, for ${routes.seconds} s, the order turning each round (${routes.warmSeconds} s of warm-up before the first). Medians of ${routes.rounds} rounds; ratios are`,
    "medians of the per-round ratios. wrk is a closed-loop generator: p99 at a fixed concurrency, not at a fixed rate.",
    '"Per CPU-second" divides the answers by the CPU time the server process used during the run (all its threads, from',
    "`/proc/<pid>/task/*/schedstat`): the rate it would reach with core 0 to itself.",
    "",
    ...tables,
    "",
    "Other pairs (no goal in the issue):",
    "",
    markdownTable(
      ["Tessera", "measured", "reference", "ratio", "ratio per CPU-second"],
      others.map((goal) => [
        goal.path,
        goal.tessera,
        goal.reference,
        formatRatio(goal.ratio),
        formatRatio(goal.ratioPerCpu ?? NaN),
      ]),
    ),
  ].join("\n");
  return { name: "routes", title: "Protected route req/s and p99", markdown, goals };
}
