import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Cluster, delay, ms, registerAndLogin, report, startTestCluster, statusOf, waitFor } from "./cluster.js";
import { checkConsistency } from "./consistency.js";
import { PrivateMariadb, privateMariadbUnavailable } from "./private-mariadb.js";
import { PrivatePostgres, privatePostgresUnavailable } from "./private-postgres.js";
import { LoadClient, runRefreshLoad, statusCounts } from "./refresh-load.js";

/** Load before the database goes down. */
const WARM_MS = 1500;
/** How long the database stays down: well inside the 10 s grace window. */
const DOWN_MS = 3000;
/** Load after every instance is ready again. */
const AFTER_MS = 1000;
const RECOVERY_LIMIT_MS = 10_000;
const GRACE_MS = 10_000;

/** A database server the test owns and may stop. */
interface DatabaseServer {
  readonly url: string;
  /** How it goes down, for the report. */
  readonly how: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  query(sql: string): Promise<Record<string, unknown>[]>;
  destroy(): void;
}

const subjects: { name: string; skip: string | false; create: () => Promise<DatabaseServer> }[] = [
  {
    name: "PostgreSQL",
    skip: privatePostgresUnavailable() ?? false,
    create: async () => {
      const server = await PrivatePostgres.create();
      return {
        url: server.url,
        how: "pg_ctl stop -m immediate",
        stop: () => server.stop("immediate"),
        start: () => server.start(),
        query: (sql) => server.query(sql),
        destroy: () => server.destroySync(),
      };
    },
  },
  {
    name: "MariaDB",
    skip: privateMariadbUnavailable() ?? false,
    create: async () => {
      const server = await PrivateMariadb.create();
      return {
        url: server.url,
        how: "kill -9 mariadbd",
        stop: () => server.stop("SIGKILL"),
        start: () => server.start(),
        query: (sql) => server.query(sql),
        destroy: () => server.destroySync(),
      };
    },
  },
];

for (const { name, skip, create } of subjects) {
  describe(`A private ${name} server stopped and started again under refresh load`, { skip }, () => {
    let database: DatabaseServer | undefined;
    let cluster: Cluster | undefined;

    before(async () => {
      database = await create();
      cluster = await startTestCluster(database.url, { instances: 2 });
    });

    after(async () => {
      await cluster?.stop();
      database?.destroy();
    });

    it("answers 503 temporarily_unavailable with Retry-After while down, /readyz follows, and resumes by itself with clean chains", async (t) => {
      const db = database!;
      const { instances } = cluster!;
      const clients: LoadClient[] = [];
      for (const [user, instance] of instances.entries()) {
        const sessions = await registerAndLogin(instance.url, `restart-${user}`, 4);
        sessions.forEach((tokens, index) =>
          clients.push(new LoadClient(`restart-${user}-${index}`, tokens.refresh_token)),
        );
      }
      const origin = performance.now();
      const now = () => performance.now() - origin;
      const readiness: { at: number; instance: number; status: number }[] = [];
      let done = false;
      const pollReadiness = Promise.all(
        instances.map(async (instance, index) => {
          while (!done) {
            const at = now();
            readiness.push({ at, instance: index, status: await statusOf(`${instance.url}/readyz`, 2000) });
            await delay(100);
          }
        }),
      );
      const marks = { stop: 0, stopped: 0, start: 0, started: 0 };
      const faults = (async () => {
        try {
          await delay(WARM_MS);
          marks.stop = now();
          await db.stop();
          marks.stopped = now();
          await delay(DOWN_MS);
          marks.start = now();
          await db.start();
          marks.started = now();
          await waitFor(
            () =>
              instances.every((_, index) =>
                readiness.some(
                  (probe) => probe.instance === index && probe.at >= marks.started && probe.status === 200,
                ),
              ),
            RECOVERY_LIMIT_MS,
            "every instance ready again",
          );
          await delay(AFTER_MS);
        } finally {
          done = true;
        }
      })();
      const urls = instances.map((instance) => instance.url);
      const load = await runRefreshLoad({
        clients,
        urls: () => urls,
        durationMs: 40_000,
        maxRequests: 20_000,
        graceMs: GRACE_MS,
        pauseMs: 20,
        retryDelayMs: 100,
        stop: () => done,
        origin,
      });
      await faults;
      await pollReadiness;

      assert.deepEqual(load.unexpected, [], "only 200 and 503 temporarily_unavailable with Retry-After");
      assert.deepEqual(
        statusCounts(load.events.filter((event) => event.status !== 200 && event.status !== 503)),
        {},
        "never a 500 or a lost answer",
      );
      const down = load.events.filter((event) => event.at >= marks.stopped && event.at + event.ms <= marks.start);
      assert.ok(down.length > 0 && down.every((event) => event.status === 503), "every refresh while down answers 503");
      const readyWhileDown = readiness.filter((probe) => probe.at >= marks.stopped && probe.at < marks.start);
      assert.ok(
        readyWhileDown.length > 0 && readyWhileDown.every((probe) => probe.status === 503),
        "/readyz answers 503 while down",
      );

      const firstAfter = (list: readonly { at: number; status: number }[], from: number, status: number) =>
        list.find((item) => item.at >= from && item.status === status)?.at;
      const unready = instances.map(
        (_, index) =>
          (firstAfter(
            readiness.filter((probe) => probe.instance === index),
            marks.stop,
            503,
          ) ?? Number.NaN) - marks.stop,
      );
      const ready = instances.map(
        (_, index) =>
          (firstAfter(
            readiness.filter((probe) => probe.instance === index),
            marks.started,
            200,
          ) ?? Number.NaN) - marks.started,
      );
      const firstRefresh = instances.map(
        (instance) =>
          (firstAfter(
            load.events.filter((event) => event.url === instance.url),
            marks.started,
            200,
          ) ?? Number.NaN) - marks.started,
      );
      assert.ok(
        ready.every((value) => value < RECOVERY_LIMIT_MS) && firstRefresh.every((value) => value < RECOVERY_LIMIT_MS),
        "service resumes by itself",
      );

      const { violations, figures } = await checkConsistency((sql) => db.query(sql), clients);
      assert.deepEqual(violations, []);
      report(t, `restart-${name}`, {
        how: db.how,
        stopMs: ms(marks.stopped - marks.stop),
        downMs: ms(marks.start - marks.stopped),
        startMs: ms(marks.started - marks.start),
        readyz503AfterStopMs: unready.map(ms),
        readyz200AfterStartMs: ready.map(ms),
        firstRefresh200AfterStartMs: firstRefresh.map(ms),
        statuses: statusCounts(load.events),
        refreshesWhileDown: down.length,
        ...figures,
      });
    });
  });
}
