// `node --import tsx bench/login-storm.ts`: does a storm of wrong logins starve refreshes? A
// benchmark, not a test (not in CI). Against a real server process on SQLite, on loopback, with
// the default limits on, it measures POST /auth/refresh latency twice: idle, then while
// STORM_CONCURRENCY clients send wrong logins without pause, each from another client IP and
// for another username, so that only the bound on concurrent password hashes stands in their
// way (the test plays the proxy at 127.0.0.1 that forwards X-Forwarded-For). Reports p50/p99 of
// both and the p99 ratio (goal: at most 3×), and how the storm was answered.
//
// Environment: BENCH_SECONDS (default 10), BENCH_CONCURRENCY (refresh clients, default 8),
// STORM_CONCURRENCY (default 200); TESSERA_PASSWORD_HASH_CONCURRENCY and
// TESSERA_PASSWORD_HASH_QUEUE reach the server.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { Agent, request } from "node:http";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { createTestDatabase } from "../test/support/databases.js";
import { serverEnvironment, spawnServer } from "../test/support/server-process.js";

function setting(name: string, fallback: number, max: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new TypeError(`${name} must be a whole number from 1 to ${max}`);
  return value;
}

const SECONDS = setting("BENCH_SECONDS", 10, 120);
const CONCURRENCY = setting("BENCH_CONCURRENCY", 8, 64);
const STORM = setting("STORM_CONCURRENCY", 200, 2000);
const PASSWORD = "correct horse battery staple";

const refreshAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const stormAgent = new Agent({ keepAlive: true, maxSockets: STORM });

const randomIp = () => `10.${randomBytes(3).join(".")}`;

function call(url: string, body: unknown, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      url,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          // Another client IP per request: the per-IP limits stay out of the picture.
          "x-forwarded-for": randomIp(),
        },
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

interface Latencies {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly failures: number;
}

/** Refreshes from `CONCURRENCY` workers, each rotating its own session, for `SECONDS`; latencies in ms. */
async function measureRefreshes(url: string, tokens: string[]): Promise<Latencies> {
  const latencies: number[] = [];
  let failures = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    tokens.map(async (first, worker) => {
      let token = first;
      while (performance.now() < end) {
        const started = performance.now();
        const answer = await call(`${url}/auth/refresh`, { refresh_token: token }, refreshAgent);
        if (answer.status !== 200) {
          failures += 1;
          throw new Error(`refresh of worker ${worker} answered ${answer.status}: ${answer.body}`);
        }
        latencies.push(performance.now() - started);
        token = (JSON.parse(answer.body) as { refresh_token: string }).refresh_token;
      }
      tokens[worker] = token;
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { count: latencies.length, p50: at(0.5), p99: at(0.99), failures };
}

/** Wrong logins from `STORM` workers until stdin closes; prints the answers by status as JSON. */
async function storm(url: string): Promise<void> {
  const answers: Record<number, number> = {};
  let running = true;
  process.stdin.on("end", () => (running = false)).resume();
  await Promise.all(
    Array.from({ length: STORM }, async () => {
      while (running) {
        const username = `storm-${randomBytes(6).toString("hex")}`;
        const answer = await call(`${url}/auth/login`, { username, password: "not-the-password" }, stormAgent);
        answers[answer.status] = (answers[answer.status] ?? 0) + 1;
      }
    }),
  );
  stormAgent.destroy();
  process.stdout.write(JSON.stringify(answers));
}

// The storm runs in a process of its own, so that its answers do not delay the measuring loop.
function startStorm(url: string): { stop: () => Promise<Map<number, number>> } {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--storm", url], {
    env: process.env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  return {
    stop: async () => {
      const exited = once(child, "exit");
      child.stdin.end();
      await exited;
      return new Map(Object.entries(JSON.parse(output) as Record<string, number>).map(([k, v]) => [Number(k), v]));
    },
  };
}

if (process.argv[2] === "--storm") {
  await storm(process.argv[3]!);
  process.exit(0);
}

const database = await createTestDatabase("sqlite");
const server = await spawnServer(
  serverEnvironment(database.url, {
    TESSERA_RATE_LIMIT: "30",
    TESSERA_TRUST_PROXY: "127.0.0.1",
    ...Object.fromEntries(
      ["TESSERA_PASSWORD_HASH_CONCURRENCY", "TESSERA_PASSWORD_HASH_QUEUE"].flatMap((name) =>
        process.env[name] ? [[name, process.env[name]]] : [],
      ),
    ),
  }),
);
try {
  const tokens: string[] = [];
  for (let i = 0; i < CONCURRENCY; i += 1) {
    const credentials = { username: `refresher-${i}`, password: PASSWORD };
    const registered = await call(`${server.url}/auth/register`, credentials, refreshAgent);
    if (registered.status !== 201) throw new Error(`register answered ${registered.status}`);
    const login = await call(`${server.url}/auth/login`, credentials, refreshAgent);
    if (login.status !== 200) throw new Error(`login answered ${login.status}`);
    tokens.push((JSON.parse(login.body) as { refresh_token: string }).refresh_token);
  }
  await measureRefreshes(server.url, tokens); // warm-up
  const idle = await measureRefreshes(server.url, tokens);
  const stormed = startStorm(server.url);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // let the storm build up
  const during = await measureRefreshes(server.url, tokens);
  const answers = await stormed.stop();

  const ms = (value: number) => `${value.toFixed(1)} ms`.padStart(9);
  const perSecond = (count: number) => `${Math.round(count / SECONDS)}/s`.padStart(7);
  const byStatus = [...answers.entries()].sort(([a], [b]) => a - b);
  const total = byStatus.reduce((sum, [, count]) => sum + count, 0);
  process.stdout.write(
    `POST /auth/refresh, ${CONCURRENCY} clients, ${SECONDS} s each; storm: ${STORM} clients of wrong logins; ` +
      `SQLite, loopback, ${availableParallelism()} CPUs, Node ${process.version}\n` +
      `  idle        refresh ${perSecond(idle.count)}  p50 ${ms(idle.p50)}  p99 ${ms(idle.p99)}\n` +
      `  storm       refresh ${perSecond(during.count)}  p50 ${ms(during.p50)}  p99 ${ms(during.p99)}\n` +
      `  p99 ratio   ${(during.p99 / idle.p99).toFixed(2)}× (goal ≤ 3×)\n` +
      `  storm logins answered ${perSecond(total)}: ` +
      `${byStatus.map(([status, count]) => `${status} × ${count}`).join(", ")}\n`,
  );
} finally {
  refreshAgent.destroy();
  stormAgent.destroy();
  await server.stop();
  await database.drop();
}
