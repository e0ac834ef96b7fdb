// Verify ops/s in one thread, in process: Tessera (cache off and on) against fast-jwt (off and
// on), jsonwebtoken, jose and the node:crypto floor, for HS256, ES256 and EdDSA.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BENCH_ALGORITHMS } from "../lib/access-tokens.js";
import type { BenchContext, GoalRow, GroupResult } from "../lib/bench-context.js";
import { SERVER_CORE } from "../lib/child-processes.js";
import {
  formatRate,
  formatRatio,
  formatSpread,
  goalVerdict,
  markdownTable,
  median,
  pairedRatio,
} from "../lib/stats.js";
import { ROOT } from "../lib/tessera-process.js";
import { VERIFIER_NAMES, type VerifyWorkerConfig } from "../lib/verifiers.js";

const WORKER = fileURLToPath(new URL("./verify-worker.ts", import.meta.url));

/** Wall-clock ops/s and ops per CPU-second: per algorithm, per verifier, each round's figure. */
export interface VerifyRounds {
  readonly wall: Record<string, Record<string, number[]>>;
  readonly cpu: Record<string, Record<string, number[]>>;
}

/** What the worker measured, and when (V8's clock, in µs). */
export interface VerifyWorkerResult {
  readonly rounds: VerifyRounds;
  readonly window: { readonly fromUs: number; readonly toUs: number };
}

/** Runs the worker pinned to the server core (one thread, like a resource server's event loop). */
export function runVerifyWorker(
  config: VerifyWorkerConfig,
  nodeFlags: readonly string[] = [],
): Promise<VerifyWorkerResult> {
  return new Promise((resolve, reject) => {
    execFile(
      "taskset",
      ["-c", String(SERVER_CORE), process.execPath, ...nodeFlags, "--import", "tsx", WORKER],
      {
        cwd: ROOT,
        env: { ...process.env, BENCH_VERIFY: JSON.stringify(config) },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 600_000,
      },
      (error, stdout, stderr) => {
        const line = /^BENCH_JSON (.*)$/m.exec(stdout)?.[1];
        const window = /^BENCH_WINDOW (.*)$/m.exec(stdout)?.[1];
        if (error || line === undefined || window === undefined)
          reject(new Error(`verify worker failed: ${error?.message ?? "no result"}\n${stderr}`));
        else
          resolve({
            rounds: JSON.parse(line) as VerifyRounds,
            window: JSON.parse(window) as VerifyWorkerResult["window"],
          });
      },
    );
  });
}

export async function runVerifyGroup(context: BenchContext): Promise<GroupResult> {
  const { verify } = context.settings;
  const tokens = await context.tokens();
  context.log(
    `verify: ${VERIFIER_NAMES.length} verifiers × ${BENCH_ALGORITHMS.length} algorithms, ${verify.rounds} rounds of ${verify.roundMs} ms`,
  );
  const { rounds } = await runVerifyWorker({
    materials: [...tokens.values()],
    warmMs: verify.warmMs,
    roundMs: verify.roundMs,
    rounds: verify.rounds,
  });
  const rate = (alg: string, name: string) => median(rounds.wall[alg]?.[name] ?? []);
  const ratio = (alg: string, a: string, b: string) =>
    pairedRatio(rounds.wall[alg]?.[a] ?? [], rounds.wall[alg]?.[b] ?? []);
  const cpuRatio = (alg: string, a: string, b: string) =>
    pairedRatio(rounds.cpu[alg]?.[a] ?? [], rounds.cpu[alg]?.[b] ?? []);

  const header = ["verifier", ...BENCH_ALGORITHMS.flatMap((alg) => [`${alg} ops/s`, "× floor", "× floor, CPU"])];
  const rows = VERIFIER_NAMES.map((name) => [
    name,
    ...BENCH_ALGORITHMS.flatMap((alg) => {
      const values = rounds.wall[alg]?.[name];
      if (!values) return ["n/a", "–", "–"];
      return [
        `${formatRate(median(values))} ${formatSpread(values)}`,
        formatRatio(ratio(alg, name, "node:crypto floor")),
        formatRatio(cpuRatio(alg, name, "node:crypto floor")),
      ];
    }),
  ]);
  const versus = (alg: string, cache: "off" | "on", of: typeof ratio) =>
    of(alg, `Tessera, cache ${cache}`, `fast-jwt, cache ${cache}`);
  const peerRows = BENCH_ALGORITHMS.map((alg) => [
    alg,
    `${formatRatio(versus(alg, "off", ratio))} (${formatRatio(versus(alg, "off", cpuRatio))})`,
    `${formatRatio(versus(alg, "on", ratio))} (${formatRatio(versus(alg, "on", cpuRatio))})`,
    `${formatRatio(ratio(alg, "Tessera, cache off", "jose"))} (${formatRatio(cpuRatio(alg, "Tessera, cache off", "jose"))})`,
  ]);

  const goal = (alg: string, bound: number): GoalRow => {
    const measured = ratio(alg, "Tessera, cache off", "node:crypto floor");
    const perCpu = cpuRatio(alg, "Tessera, cache off", "node:crypto floor");
    return {
      path: `verify ${alg}, uncached, ops/s in one thread`,
      tessera: formatRate(rate(alg, "Tessera, cache off")),
      reference: `floor ${formatRate(rate(alg, "node:crypto floor"))}, fast-jwt ${formatRate(rate(alg, "fast-jwt, cache off"))}`,
      ratio: measured,
      ratioPerCpu: perCpu,
      goal: `≥ ${bound}× floor`,
      verdict: goalVerdict(measured, bound),
      verdictPerCpu: goalVerdict(perCpu, bound),
    };
  };
  const goals = [goal("HS256", 0.8), goal("EdDSA", 0.9)];
  const markdown = [
    `One token per algorithm, issued by \`tessera serve\` (RFC 9068 header \`typ: at+jwt\`, ${tokens.get("ES256")?.token.length ?? "?"} characters for ES256), verified`,
    `over and over in one process pinned to core ${SERVER_CORE}. Every verifier pins the algorithm and checks signature, iss, aud, exp and`,
    "(all but jsonwebtoken, which is given the decoded header to check) typ; each must accept the token and refuse it with one",
    'signature character changed before it is timed. Tessera goes through `tessera/verify` (the built package); "cache on" is its',
    "default verified-token cache and fast-jwt's LRU, hit by the same token every time. The floor is `bench/floor/jwt-floor.ts`:",
    "split, base64url-decode the header, check alg and typ, HMAC + timingSafeEqual or crypto.verify, JSON.parse the claims, check",
    `exp, iss, aud. Medians of ${verify.rounds} rounds of ${verify.roundMs} ms (± half the range), after ${verify.warmMs} ms of warm-up each; the order turns every round;`,
    'ratios are medians of the per-round ratios. "× floor, CPU" compares verifications per CPU-second of the process instead of',
    "per second: what each would do with the core to itself, barely moved by other processes competing for it.",
    "jsonwebtoken does not implement EdDSA.",
    "",
    markdownTable(header, rows),
    "",
    "Tessera against its peers (same cache setting; per CPU-second in parentheses):",
    "",
    markdownTable(
      ["alg", "Tessera ÷ fast-jwt, cache off", "Tessera ÷ fast-jwt, cache on", "Tessera ÷ jose, cache off"],
      peerRows,
    ),
  ].join("\n");
  return { name: "verify", title: "Verify ops/s (one thread, in process)", markdown, goals };
}
