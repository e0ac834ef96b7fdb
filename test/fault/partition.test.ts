import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import {
  type Cluster,
  delay,
  ms,
  percentile,
  registerAndLogin,
  report,
  startTestCluster,
  statusOf,
  waitFor,
} from "./cluster.js";
import { checkConsistency } from "./consistency.js";
import { HoldingProxy } from "./holding-proxy.js";
import { NetworkNamespace, netnsUnavailable } from "./netns.js";
import { LoadClient, type LoadResult, runRefreshLoad, statusCounts } from "./refresh-load.js";

const WARM_MS = 1500;
const CUT_MS = 5000;
const AFTER_MS = 1500;
/** What a client waits for an answer before it retries elsewhere. */
const CLIENT_TIMEOUT_MS = 3000;
const RECOVERY_LIMIT_MS = 20_000;
const GRACE_MS = 10_000;

const postgres = (await storesUnderTest()).find(({ kind }) => kind === "postgres");
const skip =
  netnsUnavailable() ?? postgres?.skip ?? (postgres ? false : "PostgreSQL is not selected by TESSERA_TEST_STORES");

describe("An instance in its own network namespace that loses its route to PostgreSQL for 5 s", { skip }, () => {
  let database: TestDatabase | undefined;
  let namespace: NetworkNamespace | undefined;
  let forwarder: HoldingProxy | undefined;
  let cluster: Cluster | undefined;
  let load: LoadResult;
  let clients: LoadClient[];
  const readiness: { at: number; instance: number; status: number }[] = [];
  const marks = { cut: 0, restored: 0 };
  let urls: string[];

  before(async () => {
    database = await createTestDatabase("postgres");
    namespace = NetworkNamespace.create();
    // The namespace reaches the database through the host's serviceAddress, whose one route it loses.
    const target = new URL(database.url);
    forwarder = await HoldingProxy.start(
      { host: target.hostname, port: Number(target.port || 5432) },
      namespace.serviceAddress,
    );
    const insideUrl = new URL(database.url);
    insideUrl.hostname = namespace.serviceAddress;
    insideUrl.port = String(forwarder.port);
    const ns = namespace;
    cluster = await startTestCluster(database.url, {
      envOf: (index): Record<string, string> =>
        index === 2 ? { TESSERA_HOST: ns.address, TESSERA_DATABASE_URL: insideUrl.toString() } : {},
      wrapperOf: (index) => (index === 2 ? ns.wrapper : undefined),
    });
    const instances = cluster.instances;
    urls = instances.map((instance) => instance.url);
    clients = [];
    for (const [user, instance] of instances.slice(0, 2).entries()) {
      const sessions = await registerAndLogin(instance.url, `partition-${user}`, 4);
      sessions.forEach((tokens, index) =>
        clients.push(new LoadClient(`partition-${user}-${index}`, tokens.refresh_token)),
      );
    }

    const origin = performance.now();
    const now = () => performance.now() - origin;
    let done = false;
    const polling = Promise.all(
      instances.map(async (instance, index) => {
        while (!done) {
          const at = now();
          readiness.push({ at, instance: index, status: await statusOf(`${instance.url}/readyz`, 2000) });
          await delay(200);
        }
      }),
    );
    const faults = (async () => {
      try {
        await delay(WARM_MS);
        marks.cut = now();
        ns.cutRoute();
        await delay(CUT_MS);
        marks.restored = now();
        ns.restoreRoute();
        await waitFor(
          () => readiness.some((probe) => probe.instance === 2 && probe.at >= marks.restored && probe.status === 200),
          RECOVERY_LIMIT_MS,
          "the cut-off instance ready again",
        );
        await delay(AFTER_MS);
      } finally {
        ns.restoreRoute();
        done = true;
      }
    })();
    load = await runRefreshLoad({
      clients,
      urls: () => urls,
      durationMs: 60_000,
      maxRequests: 20_000,
      graceMs: GRACE_MS,
      timeoutMs: CLIENT_TIMEOUT_MS,
      pauseMs: 20,
      stop: () => done,
      origin,
    });
    await faults;
    await polling;
  });

  after(async () => {
    await cluster?.stop();
    await forwarder?.reset();
    namespace?.destroySync();
    await database?.drop();
  });

  const cutOff = (event: { url: string }) => event.url === urls[2];
  const during = (event: { at: number }) => event.at >= marks.cut && event.at < marks.restored;

  it("the other instances keep answering: never a 5xx, /readyz 200 throughout", (t) => {
    const others = load.events.filter((event) => !cutOff(event));
    // (A 401 here is a session revoked by the cut-off instance: see the last test.)
    assert.deepEqual(statusCounts(others.filter((event) => event.status >= 500)), {});
    assert.ok(readiness.filter((probe) => probe.instance !== 2).every((probe) => probe.status === 200));
    report(t, "partition-others", {
      requests: others.length,
      statuses: statusCounts(others),
      p99BeforeMs: ms(
        percentile(
          others.filter((event) => event.at < marks.cut).map((event) => event.ms),
          99,
        ),
      ),
      p99DuringMs: ms(
        percentile(
          others.filter(during).map((event) => event.ms),
          99,
        ),
      ),
    });
  });

  it("the other instances are not held up by the cut-off instance's open transactions", () => {
    const others = load.events.filter((event) => !cutOff(event));
    assert.deepEqual(statusCounts(others.filter((event) => event.status === 0)), {});
  });

  it("the cut-off instance recovers by itself once its route is back", (t) => {
    const probes = readiness.filter((probe) => probe.instance === 2);
    const readyAt = probes.find((probe) => probe.at >= marks.restored && probe.status === 200)?.at ?? Number.NaN;
    const refreshedAt =
      load.events.find((event) => cutOff(event) && event.at >= marks.restored && event.status === 200)?.at ??
      Number.NaN;
    assert.ok(readyAt - marks.restored < RECOVERY_LIMIT_MS && refreshedAt - marks.restored < RECOVERY_LIMIT_MS);
    const mine = load.events.filter((event) => cutOff(event) && during(event));
    const answeredAfterRestore = mine.filter((event) => event.status === 200 && event.at + event.ms >= marks.restored);
    report(t, "partition-cut-off", {
      requestsWhileCut: mine.length,
      statusesWhileCut: statusCounts(mine),
      slowestAnswerWhileCutMs: ms(Math.max(0, ...mine.map((event) => event.ms))),
      answered200OnlyAfterRestore: answeredAfterRestore.length,
      readyzWhileCut: statusCounts(probes.filter(during).map((probe) => ({ ...probe, url: "", ms: 0, error: null }))),
      readyz200AfterRestoreMs: ms(readyAt - marks.restored),
      refresh200AfterRestoreMs: ms(refreshedAt - marks.restored),
      lostAnswersRetriedElsewhere: load.lost.length,
    });
  });

  it("the cut-off instance answers 503 temporarily_unavailable within the client's timeout instead of hanging", () => {
    const mine = load.events.filter((event) => cutOff(event) && during(event));
    assert.ok(
      mine.length > 0 && mine.every((event) => event.status === 503 && event.ms < CLIENT_TIMEOUT_MS),
      `statuses while cut: ${JSON.stringify(statusCounts(mine))}`,
    );
  });

  it("leaves clean rotation chains", async (t) => {
    const { violations, figures } = await checkConsistency((sql) => queryRows(database!, sql), clients, {
      allowRevoked: true,
    });
    const revoked = await queryRows(database!, "select revoked_reason from sessions where revoked_at is not null");
    report(t, "partition-consistency", {
      ...figures,
      revokedReasons: revoked.map((row) => row.revoked_reason),
      clientsRefused: load.unexpected.length,
    });
    assert.deepEqual(violations, []);
  });

  it("revokes no legitimate client's session when it executes, after the partition, a refresh whose client had given up and moved on", async () => {
    assert.deepEqual(load.unexpected, []);
    const { violations } = await checkConsistency((sql) => queryRows(database!, sql), clients);
    assert.deepEqual(violations, []);
  });
});
