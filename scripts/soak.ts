// `npm run soak [-- --duration 10m --instances 3 --database postgres://…]`: mixed traffic over
// a cluster of Tessera instances for a bounded time, reporting per interval (a minute by
// default) the throughput, error counts, p50/p99 latency and each instance's RSS. For manual
// runs; a short run of it is part of the fault tests.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type Cluster, redactUrl, startCluster } from "./cluster.js";

/** Options of {@link runSoak}. */
export interface SoakOptions {
  readonly durationMs: number;
  /** Length of one report line's interval. Default 60 000 ms. */
  readonly intervalMs?: number;
  readonly instances?: number;
  /** Default: a new SQLite file in the cluster's log directory. */
  readonly databaseUrl?: string;
  readonly redisUrl?: string;
  /** Concurrent clients. Default 24. */
  readonly clients?: number;
  /** Called with each report line as it is made. */
  readonly onReport?: (line: SoakInterval) => void;
  /** Stops early when it returns true (Ctrl-C). */
  readonly stop?: () => boolean;
}

/** What one interval saw. */
export interface SoakInterval {
  /** Seconds since the start, at the interval's end. */
  readonly atSeconds: number;
  readonly requests: number;
  readonly perSecond: number;
  /** Answers other than the expected ones, by status (0: no answer). */
  readonly errors: Record<string, number>;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Resident set size of each instance, in MiB. */
  readonly rssMb: number[];
}

const PASSWORD = "correct horse battery staple";

function rssMb(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? Number.NaN : Math.round(Number(kb) / 1024);
  } catch {
    return Number.NaN;
  }
}

function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function call(url: string, init: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    return { status: response.status, body: text.startsWith("{") ? (JSON.parse(text) as Record<string, unknown>) : {} };
  } catch {
    return { status: 0, body: {} };
  }
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/**
 * Starts a cluster, runs mixed traffic (refresh 55 %, /auth/me 20 %, session list 8 %,
 * revocation feed 7 %, logout and log in again 5 %, failed login 5 %) from `clients` workers
 * until `durationMs` has passed, and returns one line per interval. Stops the cluster.
 */
export async function runSoak(options: SoakOptions): Promise<SoakInterval[]> {
  const intervalMs = options.intervalMs ?? 60_000;
  const ownDirectory = options.databaseUrl === undefined ? mkdtempSync(join(tmpdir(), "tessera-soak-")) : null;
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster({
      instances: options.instances ?? 3,
      databaseUrl: options.databaseUrl ?? `sqlite:${join(ownDirectory!, "soak.db")}`,
      ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
      env: { TESSERA_RATE_LIMIT: "0", TESSERA_LOG_LEVEL: "warn" },
    });
    const urls = cluster.instances.map((instance) => instance.url);
    const workers = options.clients ?? 24;
    // One user per three workers; each worker its own session.
    const sessions: { username: string; access: string; refresh: string }[] = [];
    for (let i = 0; i < workers; i += 1) {
      const username = `soak-${Math.floor(i / 3)}`;
      const url = urls[i % urls.length]!;
      if (i % 3 === 0) await call(`${url}/auth/register`, json({ username, password: PASSWORD }));
      const login = await call(`${url}/auth/login`, json({ username, password: PASSWORD }));
      if (login.status !== 200) throw new Error(`login for the soak answered ${login.status}`);
      sessions.push({ username, access: String(login.body.access_token), refresh: String(login.body.refresh_token) });
    }

    const started = performance.now();
    const end = started + options.durationMs;
    const lines: SoakInterval[] = [];
    let latencies: number[] = [];
    let errors: Record<string, number> = {};
    let intervalStart = started;
    const going = () => performance.now() < end && !(options.stop?.() ?? false);
    const record = (status: number, expected: readonly number[], ms: number) => {
      latencies.push(ms);
      if (!expected.includes(status)) errors[status] = (errors[status] ?? 0) + 1;
    };
    const flush = () => {
      const now = performance.now();
      const sorted = latencies.sort((a, b) => a - b);
      const line: SoakInterval = {
        atSeconds: Math.round((now - started) / 1000),
        requests: sorted.length,
        perSecond: Math.round((sorted.length * 1000) / Math.max(1, now - intervalStart)),
        errors,
        p50Ms: Math.round(nearestRank(sorted, 50) * 10) / 10,
        p99Ms: Math.round(nearestRank(sorted, 99) * 10) / 10,
        rssMb: cluster!.instances.map((instance) => rssMb(instance.pid)),
      };
      lines.push(line);
      options.onReport?.(line);
      latencies = [];
      errors = {};
      intervalStart = now;
    };
    const ticker = setInterval(flush, intervalMs);

    const work = async (worker: number) => {
      const session = sessions[worker]!;
      let turn = worker;
      while (going()) {
        const url = urls[turn++ % urls.length]!;
        const roll = Math.random();
        const t0 = performance.now();
        if (roll < 0.55) {
          const answer = await call(`${url}/auth/refresh`, json({ refresh_token: session.refresh }));
          record(answer.status, [200], performance.now() - t0);
          if (answer.status === 200) {
            session.refresh = String(answer.body.refresh_token);
            session.access = String(answer.body.access_token);
          }
        } else if (roll < 0.75) {
          const answer = await call(`${url}/auth/me`, { headers: { authorization: `Bearer ${session.access}` } });
          record(answer.status, [200], performance.now() - t0);
        } else if (roll < 0.83) {
          const answer = await call(`${url}/auth/sessions`, { headers: { authorization: `Bearer ${session.access}` } });
          record(answer.status, [200], performance.now() - t0);
        } else if (roll < 0.9) {
          const answer = await call(`${url}/auth/revocations`, {});
          record(answer.status, [200], performance.now() - t0);
        } else if (roll < 0.95) {
          const out = await call(`${url}/auth/logout`, json({ refresh_token: session.refresh }));
          record(out.status, [204], performance.now() - t0);
          const t1 = performance.now();
          const login = await call(`${url}/auth/login`, json({ username: session.username, password: PASSWORD }));
          record(login.status, [200], performance.now() - t1);
          if (login.status === 200) {
            session.refresh = String(login.body.refresh_token);
            session.access = String(login.body.access_token);
          }
        } else {
          const answer = await call(
            `${url}/auth/login`,
            json({ username: session.username, password: "wrong horse battery staple" }),
          );
          record(answer.status, [401], performance.now() - t0);
        }
      }
    };
    await Promise.all(sessions.map((_, worker) => work(worker)));
    clearInterval(ticker);
    if (latencies.length > 0) flush();
    return lines;
  } finally {
    await cluster?.stop();
    if (cluster) rmSync(cluster.logDir, { recursive: true, force: true });
    if (ownDirectory !== null) rmSync(ownDirectory, { recursive: true, force: true });
  }
}

/** `"10m"`, `"90s"`, `"2h"` or milliseconds, in milliseconds. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new TypeError(`--duration must look like 10m, 90s or 1h, not ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "ms"]!;
  return Number(match[1]) * unit;
}

const USAGE = `Usage: npm run soak -- [options]

Mixed traffic over a cluster of Tessera instances; one report line per interval.

  --duration <d>     how long (default 10m; e.g. 30s, 2m, 1h)
  --interval <d>     report interval (default 1m)
  --instances <n>    how many instances (default 3)
  --database <url>   TESSERA_DATABASE_URL (default a new SQLite file, deleted afterwards)
  --redis <url>      TESSERA_REDIS_URL (default none)
  --clients <n>      concurrent clients (default 24)`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "10m" },
      interval: { type: "string", default: "1m" },
      instances: { type: "string", default: "3" },
      database: { type: "string" },
      redis: { type: "string" },
      clients: { type: "string", default: "24" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let interrupted = false;
  process.on("SIGINT", () => (interrupted = true));
  process.on("SIGTERM", () => (interrupted = true));
  const databaseUrl = values.database ?? process.env.TESSERA_DATABASE_URL;
  const redisUrl = values.redis ?? process.env.TESSERA_REDIS_URL;
  const durationMs = parseDurationMs(values.duration);
  process.stdout.write(
    `soak: ${values.duration} over ${values.instances} instances, ${values.clients} clients, database ${databaseUrl ? redactUrl(databaseUrl) : "a new SQLite file"}, Redis ${redisUrl ? redactUrl(redisUrl) : "none"}\n`,
  );
  process.stdout.write("   t(s)  requests   req/s   p50(ms)  p99(ms)  errors            RSS per instance (MiB)\n");
  const lines = await runSoak({
    durationMs,
    intervalMs: parseDurationMs(values.interval),
    instances: Number(values.instances),
    clients: Number(values.clients),
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(redisUrl ? { redisUrl } : {}),
    stop: () => interrupted,
    onReport: (line) =>
      process.stdout.write(
        `${String(line.atSeconds).padStart(7)} ${String(line.requests).padStart(9)} ${String(line.perSecond).padStart(7)} ${String(line.p50Ms).padStart(9)} ${String(line.p99Ms).padStart(8)}  ${JSON.stringify(line.errors).padEnd(16)}  ${line.rssMb.join(" / ")}\n`,
      ),
  });
  const requests = lines.reduce((sum, line) => sum + line.requests, 0);
  const errors = lines.reduce((sum, line) => sum + Object.values(line.errors).reduce((a, b) => a + b, 0), 0);
  const seconds = lines.at(-1)?.atSeconds ?? 0;
  process.stdout.write(
    `total: ${requests} requests in ${seconds} s (${Math.round(requests / Math.max(1, seconds))}/s), ${errors} errors\n`,
  );
  if (errors > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
