import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import {
  type Cluster,
  ms,
  percentile,
  postJson,
  registerAndLogin,
  report,
  sha256Hex,
  startTestCluster,
} from "./cluster.js";
import { checkConsistency } from "./consistency.js";
import { HoldingProxy } from "./holding-proxy.js";
import { LoadClient, runRefreshLoad, statusCounts } from "./refresh-load.js";

const USERS = 4;
const SESSIONS_PER_USER = 4;
const LOAD_MS = 5000;
const KILL_AT_MS = 1500;
/** For this long before the kill the victim's answers are lost on the way: it commits, nobody hears. */
const ANSWERS_LOST_MS = 500;
const REPLACE_AT_MS = 3000;
const MAX_REQUESTS = 20_000;
const GRACE_MS = 10_000;

/** Epoch milliseconds of a timestamp as any of the stores returns it. */
function epochMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  const text = String(value);
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text.replace(" ", "T")}Z`).getTime();
}

const stores = (await storesUnderTest()).filter(({ kind }) => kind === "postgres" || kind === "sqlite");

for (const { kind, skip } of stores) {
  describe(`kill -9 of one of three instances under refresh load on ${kind}`, { skip }, () => {
    let database: TestDatabase;
    let cluster: Cluster | undefined;
    let proxy: HoldingProxy | undefined;

    before(async () => {
      database = await createTestDatabase(kind);
      cluster = await startTestCluster(database.url);
    });

    after(async () => {
      await proxy?.reset();
      await cluster?.stop();
      await database?.drop();
    });

    it("keeps the others answering when one is killed -9, settles every unanswered refresh with one successor, and leaves clean chains", async (t) => {
      const { instances } = cluster!;
      const [victim, ...survivors] = instances as [(typeof instances)[0], ...typeof instances];
      const clients: LoadClient[] = [];
      await Promise.all(
        Array.from({ length: USERS }, async (_, user) => {
          const sessions = await registerAndLogin(
            instances[user % instances.length]!.url,
            `crash-${user}`,
            SESSIONS_PER_USER,
          );
          sessions.forEach((tokens, index) =>
            clients.push(new LoadClient(`crash-${user}-${index}`, tokens.refresh_token)),
          );
        }),
      );
      // Clients keep the victim in their list, as a load balancer does until its health check
      // notices: requests to it are refused and retried on the next instance.
      const victimUrl = new URL(victim.url);
      proxy = await HoldingProxy.start({ host: victimUrl.hostname, port: Number(victimUrl.port) });
      const victimProxy = proxy;
      const urls = [victimProxy.url, ...survivors.map((instance) => instance.url)];
      let killedAt = Number.NaN;
      let replacementStartMs = Number.NaN;
      const started = performance.now();
      const faults = (async () => {
        await new Promise((resolve) => setTimeout(resolve, KILL_AT_MS));
        // The refreshes it commits now are never answered: their retries, on the others, must
        // get the committed successor back.
        victimProxy.hold();
        await new Promise((resolve) => setTimeout(resolve, ANSWERS_LOST_MS));
        killedAt = performance.now() - started;
        await victim.kill();
        await victimProxy.reset();
        await new Promise((resolve) => setTimeout(resolve, REPLACE_AT_MS - KILL_AT_MS));
        const before = performance.now();
        const replacement = await cluster!.addInstance();
        replacementStartMs = performance.now() - before;
        urls.push(replacement.url);
      })();
      const load = await runRefreshLoad({
        clients,
        urls: () => urls,
        durationMs: LOAD_MS,
        maxRequests: MAX_REQUESTS,
        graceMs: GRACE_MS,
      });
      await faults;

      assert.deepEqual(load.unexpected, []);
      const survivorEvents = load.events.filter((event) => survivors.some((survivor) => survivor.url === event.url));
      assert.deepEqual(
        statusCounts(survivorEvents.filter((event) => event.status !== 200)),
        {},
        "the survivors answer every request with 200",
      );
      const victimAfterKill = load.events.filter((event) => event.url === victimProxy.url && event.at >= killedAt);
      assert.ok(
        victimAfterKill.every((event) => event.status === 0),
        "nothing answers from the killed instance",
      );
      const inFlight = load.events.filter(
        (event) => event.url === victimProxy.url && event.status === 0 && event.at < killedAt,
      );
      assert.ok(inFlight.length >= 1, "some refreshes were in flight on the killed instance");
      assert.ok(load.lost.every((lost) => lost.identical && lost.settledMs < GRACE_MS));

      // Which unanswered refreshes had the dying instance committed? Their successor row is
      // older than the first retry: the retries then got it back from the grace window.
      const rows = await queryRows(database, "select token_hash, parent_id, created_at from refresh_tokens");
      const idOf = new Map(
        (await queryRows(database, "select id, token_hash from refresh_tokens")).map((row) => [
          String(row.token_hash),
          String(row.id),
        ]),
      );
      const childOf = new Map(
        rows.filter((row) => row.parent_id !== null).map((row) => [String(row.parent_id), epochMs(row.created_at)]),
      );
      const committedUnanswered = load.lost.filter(
        (lost) => (childOf.get(idOf.get(sha256Hex(lost.presented)) ?? "") ?? Infinity) < lost.firstRetryAt,
      ).length;
      assert.ok(committedUnanswered >= 1, "some refreshes were committed by the victim but never answered");

      const { violations, figures } = await checkConsistency((sql) => queryRows(database, sql), clients);
      assert.deepEqual(violations, []);

      // Every client's token still works, on any instance.
      const live = cluster!.instances.filter((instance) => instance.alive());
      const finals = await Promise.all(
        clients.map((client, i) =>
          postJson(`${live[i % live.length]!.url}/auth/refresh`, { refresh_token: client.held }),
        ),
      );
      assert.deepEqual(
        finals.map((answer) => answer.status).filter((status) => status !== 200),
        [],
      );

      const ok = load.events.filter((event) => event.status === 200);
      const rate = (from: number, to: number) =>
        Math.round((ok.filter((event) => event.at >= from && event.at < to).length * 1000) / (to - from));
      report(t, `crash-${kind}`, {
        clients: clients.length,
        requests: load.events.length,
        statuses: statusCounts(load.events),
        refreshesPerSecondBeforeKill: rate(0, killedAt),
        refreshesPerSecondAfterKill: rate(killedAt, killedAt + 1000),
        inFlightAtKill: inFlight.length,
        refusedAfterKill: victimAfterKill.length,
        lostAnswersRetried: load.lost.length,
        committedButUnanswered: committedUnanswered,
        lostSettledMaxMs: ms(Math.max(...load.lost.map((lost) => lost.settledMs))),
        survivorP99Ms: ms(
          percentile(
            survivorEvents.map((event) => event.ms),
            99,
          ),
        ),
        replacementStartMs: ms(replacementStartMs),
        ...figures,
      });
    });
  });
}
