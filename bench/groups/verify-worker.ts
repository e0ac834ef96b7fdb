// Child process of the verify group, pinned to one core by its parent: verifies the same token
// in a loop with each verifier, alternating verifiers round by round, and prints one JSON line
// { wall|cpu: { [alg]: { [verifier]: opsPerSecondOfEachRound[] } } }: verifications per second
// of wall-clock time and per CPU-second of this process. BENCH_VERIFY (JSON) configures it.
import { performance } from "node:perf_hooks";
import { type BenchAlgorithm, tamperedSignature, type TokenMaterial } from "../lib/access-tokens.js";
import {
  fastJwtVerifier,
  floorVerifier,
  joseVerifier,
  jsonwebtokenVerifier,
  tesseraVerifier,
  type VerifyWorkerConfig,
} from "../lib/verifiers.js";

type Verify = (token: string) => unknown;
interface Candidate {
  readonly name: string;
  readonly verify: Verify;
  readonly isAsync: boolean;
}

async function candidatesFor(material: TokenMaterial): Promise<Candidate[]> {
  const jsonwebtoken = jsonwebtokenVerifier(material);
  const tesseraOff = await tesseraVerifier(material, false);
  const tesseraOn = await tesseraVerifier(material, true);
  const all: (Candidate | null)[] = [
    { name: "Tessera, cache off", verify: (token) => tesseraOff.verify(token), isAsync: true },
    { name: "Tessera, cache on", verify: (token) => tesseraOn.verify(token), isAsync: true },
    { name: "fast-jwt, cache off", verify: fastJwtVerifier(material, false), isAsync: false },
    { name: "fast-jwt, cache on", verify: fastJwtVerifier(material, true), isAsync: false },
    jsonwebtoken ? { name: "jsonwebtoken", verify: jsonwebtoken, isAsync: false } : null,
    { name: "jose", verify: await joseVerifier(material), isAsync: true },
    { name: "node:crypto floor", verify: floorVerifier(material), isAsync: false },
  ];
  return all.filter((candidate): candidate is Candidate => candidate !== null);
}

/** Each verifier must accept the token and refuse it with a changed signature. */
async function check(candidate: Candidate, material: TokenMaterial): Promise<void> {
  const claims = (await candidate.verify(material.token)) as { sub?: unknown };
  if (typeof claims?.sub !== "string") throw new Error(`${candidate.name} ${material.alg}: no sub in the claims`);
  let refused = false;
  try {
    await candidate.verify(tamperedSignature(material.token));
  } catch {
    refused = true;
  }
  if (!refused) throw new Error(`${candidate.name} ${material.alg}: accepted a token with a changed signature`);
}

const BATCH = 64;

/** Verifications per second (wall clock) and per CPU-second of `candidate` over about `ms` milliseconds. */
async function measure(candidate: Candidate, token: string, ms: number): Promise<{ wall: number; cpu: number }> {
  const { verify } = candidate;
  let count = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + ms;
  if (candidate.isAsync) {
    do {
      for (let i = 0; i < BATCH; i += 1) await verify(token);
      count += BATCH;
    } while (performance.now() < end);
  } else {
    do {
      for (let i = 0; i < BATCH; i += 1) verify(token);
      count += BATCH;
    } while (performance.now() < end);
  }
  const wall = count / ((performance.now() - start) / 1000);
  const cpu = process.cpuUsage(cpuStart);
  return { wall, cpu: count / ((cpu.user + cpu.system) / 1e6) };
}

const config = JSON.parse(process.env.BENCH_VERIFY ?? "{}") as VerifyWorkerConfig;
const results: { wall: Record<string, Record<string, number[]>>; cpu: Record<string, Record<string, number[]>> } = {
  wall: {},
  cpu: {},
};
const fromUs = process.hrtime.bigint() / 1000n;
for (const material of config.materials) {
  const candidates = (await candidatesFor(material)).filter(
    (candidate) => !config.only || config.only.includes(candidate.name),
  );
  for (const candidate of candidates) {
    await check(candidate, material);
    await measure(candidate, material.token, config.warmMs);
  }
  const wall: Record<string, number[]> = Object.fromEntries(candidates.map((candidate) => [candidate.name, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(candidates.map((candidate) => [candidate.name, []]));
  for (let round = 0; round < config.rounds; round += 1) {
    // Peers and Tessera alternate, and the order turns every round: no one always goes first.
    const order = candidates.map((_, i) => candidates[(i + round) % candidates.length]!);
    if (round % 2 === 1) order.reverse();
    for (const candidate of order) {
      const measured = await measure(candidate, material.token, config.roundMs);
      wall[candidate.name]!.push(measured.wall);
      cpu[candidate.name]!.push(measured.cpu);
    }
  }
  results.wall[material.alg satisfies BenchAlgorithm] = wall;
  results.cpu[material.alg] = cpu;
}
// The measuring part, in V8's clock, for profiles (node --cpu-prof) of this process.
process.stdout.write(
  `BENCH_WINDOW ${JSON.stringify({ fromUs: Number(fromUs), toUs: Number(process.hrtime.bigint() / 1000n) })}\n`,
);
process.stdout.write(`BENCH_JSON ${JSON.stringify(results)}\n`);
