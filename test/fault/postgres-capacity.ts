// `node --import tsx test/fault/postgres-capacity.ts [instances] [clients]` (after `npm run
// build`, as root or the postgres user): what one refresh costs PostgreSQL, for the capacity
// arithmetic in docs/deployment.md. Starts a private PostgreSQL (fsync on), a cluster on it and
// closed-loop refresh clients for 15 s; then pgbench (TPC-B-like) for 15 s on the same server,
// so the ratio of the two costs carries over to other machines. Prints two JSON lines.
// Not part of the test suite (no `.test.ts`): a measurement, for manual runs.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { postJson, registerAndLogin, startTestCluster } from "./cluster.js";
import { PrivatePostgres } from "./private-postgres.js";

const SECONDS = 15;
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU milliseconds of `pids` so far, with the CPU of their children already reaped (ended backends). */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // ended meanwhile: its time is in its parent's children's time
    }
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** The postmaster and its children. */
function postgresPids(postmaster: number): number[] {
  const pids = [postmaster];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (Number(readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]!.split(" ")[1]) === postmaster)
        pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

const instances = Number(process.argv[2] ?? 3);
const clients = Number(process.argv[3] ?? 48);
const server = await PrivatePostgres.create({ fsync: true });
const cluster = await startTestCluster(server.url, {
  instances,
  env: { TESSERA_LOG_LEVEL: "warn", TESSERA_DATABASE_POOL_SIZE: "10" },
});
try {
  const urls = cluster.instances.map((instance) => instance.url);
  const tokens: string[] = [];
  for (let user = 0; tokens.length < clients; user += 1) {
    for (const login of await registerAndLogin(urls[user % urls.length]!, `capacity-${user}`, 6))
      tokens.push(login.refresh_token);
  }
  const postmaster = Number(readFileSync(join(server.dataDirectory, "postmaster.pid"), "utf8").split("\n")[0]);
  const counters = async () => {
    const [row] = await server.query(
      "select pg_current_wal_lsn() - '0/0'::pg_lsn as wal, (select xact_commit from pg_stat_database where datname = 'tessera') as commits",
    );
    return { wal: Number(row!.wal), commits: Number(row!.commits) };
  };
  const load = async (ms: number) => {
    const end = performance.now() + ms;
    let refreshes = 0;
    let errors = 0;
    await Promise.all(
      tokens.map(async (_, i) => {
        for (let turn = i; performance.now() < end; turn += 1) {
          const answer = await postJson(
            `${urls[turn % urls.length]!}/auth/refresh`,
            { refresh_token: tokens[i] },
            { timeoutMs: 10_000 },
          );
          if (answer.status !== 200) errors += 1;
          else {
            tokens[i] = String(answer.body.refresh_token);
            refreshes += 1;
          }
        }
      }),
    );
    return { refreshes, errors };
  };
  await load(3000);
  const before = {
    ...(await counters()),
    pg: cpuMs(postgresPids(postmaster)),
    node: cpuMs(cluster.instances.map((instance) => instance.pid)),
    at: performance.now(),
  };
  const { refreshes, errors } = await load(SECONDS * 1000);
  const seconds = (performance.now() - before.at) / 1000;
  const afterwards = {
    ...(await counters()),
    pg: cpuMs(postgresPids(postmaster)),
    node: cpuMs(cluster.instances.map((instance) => instance.pid)),
  };
  const [size] = await server.query(
    "select pg_total_relation_size('refresh_tokens') as bytes, (select count(*) from refresh_tokens) as rows",
  );
  process.stdout.write(
    `${JSON.stringify({
      instances,
      clients: tokens.length,
      refreshes,
      errors,
      refreshesPerSecond: Math.round(refreshes / seconds),
      postgresCpuMsPerRefresh: Number(((afterwards.pg - before.pg) / refreshes).toFixed(3)),
      tesseraCpuMsPerRefresh: Number(((afterwards.node - before.node) / refreshes).toFixed(3)),
      walBytesPerRefresh: Math.round((afterwards.wal - before.wal) / refreshes),
      commitsPerRefresh: Number(((afterwards.commits - before.commits) / refreshes).toFixed(2)),
      refreshTokenBytesPerRow: Math.round(Number(size!.bytes) / Number(size!.rows)),
      loadAverage: loadavg().map((value) => Number(value.toFixed(1))),
    })}\n`,
  );
  await cluster.stop();

  const pgbench = join(
    readdirSync("/usr/lib/postgresql")
      .sort()
      .reverse()
      .map((version) => join("/usr/lib/postgresql", version, "bin"))[0]!,
    "pgbench",
  );
  const env = { ...process.env, PGHOST: "127.0.0.1", PGPORT: String(server.port), PGUSER: "postgres" };
  execFileSync(pgbench, ["-i", "-s", "10", "-q", "tessera"], { env, stdio: "ignore" });
  const benchBefore = { ...(await counters()), pg: cpuMs(postgresPids(postmaster)) };
  const output = execFileSync(pgbench, ["-c", "16", "-j", "2", "-T", String(SECONDS), "tessera"], {
    env,
    encoding: "utf8",
  });
  const benchAfter = { ...(await counters()), pg: cpuMs(postgresPids(postmaster)) };
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1]);
  process.stdout.write(
    `${JSON.stringify({
      pgbenchTps: Math.round(Number(/tps = ([\d.]+)/.exec(output)?.[1])),
      postgresCpuMsPerPgbenchTransaction: Number(((benchAfter.pg - benchBefore.pg) / transactions).toFixed(3)),
      walBytesPerPgbenchTransaction: Math.round((benchAfter.wal - benchBefore.wal) / transactions),
      loadAverage: loadavg().map((value) => Number(value.toFixed(1))),
    })}\n`,
  );
} finally {
  await cluster.stop();
  server.destroySync();
}
