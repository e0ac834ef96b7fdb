// `node --import tsx bench/refresh-load.ts`: a short, bounded load run of POST /auth/refresh
// against a real server process on each store, on loopback only. Every request presents a
// refresh token never used before, spread over many sessions (no grace-window repeats). The
// baseline is GET /healthz on the same server with the same client and concurrency, measured
// in the same run; the ratio is refreshes/s ÷ healthz/s.
//
// Environment: TESSERA_TEST_STORES (default sqlite,postgres,mysql), TESSERA_TEST_POSTGRES_URL,
// TESSERA_TEST_MYSQL_URL (see docs/databases.md), BENCH_SECONDS (default 5),
// BENCH_SESSIONS (default 2000), BENCH_CONCURRENCY (default 32).
import { Agent, request } from "node:http";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { createTestDatabase, storesUnderTest } from "../test/support/databases.js";
import { serverEnvironment, spawnServer } from "../test/support/server-process.js";

function setting(name: string, fallback: number, max: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new TypeError(`${name} must be a whole number from 1 to ${max}`);
  return value;
}

const SECONDS = setting("BENCH_SECONDS", 5, 60);
const SESSIONS = setting("BENCH_SESSIONS", 2000, 20_000);
const CONCURRENCY = setting("BENCH_CONCURRENCY", 32, 256);
const LOGIN_CONCURRENCY = 4;
const PASSWORD = "correct horse battery staple";

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function call(url: string, method: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      url,
      {
        method,
        agent,
        headers:
          payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Runs `task` at most `concurrency` at a time for `count` items. */
async function bounded(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

interface Measurement {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly failures: number;
}

/** Calls `once` from `CONCURRENCY` workers for `SECONDS` seconds; latencies in ms. */
async function measure(once: (worker: number) => Promise<boolean>): Promise<Measurement> {
  const latencies: number[] = [];
  let failures = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      while (performance.now() < end) {
        const t = performance.now();
        if (await once(worker)) latencies.push(performance.now() - t);
        else failures += 1;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99), failures };
}

async function benchStore(kind: string) {
  const database = await createTestDatabase(kind as "sqlite" | "postgres" | "mysql");
  const server = await spawnServer(serverEnvironment(database.url));
  try {
    const registered = await call(`${server.url}/auth/register`, "POST", { username: "bench", password: PASSWORD });
    if (registered.status !== 201) throw new Error(`register answered ${registered.status}`);
    const tokens: string[] = [];
    const loginStart = performance.now();
    await bounded(SESSIONS, LOGIN_CONCURRENCY, async () => {
      const login = await call(`${server.url}/auth/login`, "POST", { username: "bench", password: PASSWORD });
      if (login.status !== 200) throw new Error(`login answered ${login.status}`);
      tokens.push((JSON.parse(login.body) as { refresh_token: string }).refresh_token);
    });
    const loginSeconds = (performance.now() - loginStart) / 1000;

    await measure(async () => (await call(`${server.url}/healthz`, "GET")).status === 200); // warm-up
    const baseline = await measure(async () => (await call(`${server.url}/healthz`, "GET")).status === 200);

    // Sessions rotate through a queue: a worker takes one, refreshes it with its current
    // (never used) token and puts it back with the successor, so no two requests race.
    const queue = [...tokens];
    const refresh = await measure(async () => {
      const token = queue.shift();
      if (token === undefined) return false;
      const answer = await call(`${server.url}/auth/refresh`, "POST", { refresh_token: token });
      if (answer.status !== 200) return false;
      queue.push((JSON.parse(answer.body) as { refresh_token: string }).refresh_token);
      return true;
    });
    return { kind, loginsPerSecond: SESSIONS / loginSeconds, baseline, refresh };
  } finally {
    await server.stop();
    await database.drop();
  }
}

const ms = (value: number) => `${value.toFixed(1)} ms`.padStart(9);
const rate = (value: number) => Math.round(value).toLocaleString("en-US").padStart(7);

process.stdout.write(
  `POST /auth/refresh, ${SECONDS} s per store, ${CONCURRENCY} concurrent, ${SESSIONS} sessions, loopback; ${cpus().length} CPUs, Node ${process.version}\n`,
);
for (const { kind, skip } of await storesUnderTest()) {
  if (skip) {
    process.stdout.write(`  ${kind.padEnd(8)} skipped: ${skip}\n`);
    continue;
  }
  const { loginsPerSecond, baseline, refresh } = await benchStore(kind);
  process.stdout.write(
    `  ${kind.padEnd(8)} refresh ${rate(refresh.perSecond)}/s  p50 ${ms(refresh.p50)}  p99 ${ms(refresh.p99)}  failed ${refresh.failures}` +
      ` | baseline GET /healthz ${rate(baseline.perSecond)}/s  p50 ${ms(baseline.p50)}  p99 ${ms(baseline.p99)}` +
      ` | ratio ${((refresh.perSecond / baseline.perSecond) * 100).toFixed(1)}%  (logins ${rate(loginsPerSecond)}/s)\n`,
  );
}
agent.destroy();
