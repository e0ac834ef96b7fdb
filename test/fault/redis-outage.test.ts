import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { isTesseraError } from "../../src/core/errors.js";
import { createVerifier, type Verifier } from "../../src/verify/index.js";
import {
  type Cluster,
  delay,
  get,
  ms,
  postJson,
  registerAndLogin,
  report,
  startTestCluster,
  TEST_ISSUER,
  type TokenResponse,
  waitFor,
} from "./cluster.js";
import { PrivateRedis, privateRedisUnavailable } from "./private-redis.js";

const DOWN_MS = 3000;
const skip = privateRedisUnavailable() ?? false;

/** Clients of the private Redis other than `self`: each instance's rate limiter and publisher, and the verifier's subscriber. */
async function redisClients(self: Redis): Promise<number> {
  const list = String(await self.call("client", "list"));
  return list.split("\n").filter((line) => line.includes("id=") && !line.includes("name=fault-test")).length;
}

describe("Redis killed and started again", { skip }, () => {
  let redis: PrivateRedis;
  let cluster: Cluster | undefined;
  let verifier: Verifier | undefined;
  const dir = mkdtempSync(join(tmpdir(), "tessera-redis-outage-"));

  before(async () => {
    redis = await PrivateRedis.create();
    // Rate limits on (far above this test's traffic), so they go through Redis.
    cluster = await startTestCluster(`sqlite:${join(dir, "tessera.db")}`, {
      instances: 2,
      redisUrl: redis.url,
      env: { TESSERA_RATE_LIMIT: "1000" },
    });
  });

  after(async () => {
    await verifier?.close();
    await cluster?.stop();
    redis?.destroySync();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps logins, refreshes and verification working while down; the verifier catches up through the feed and the push resumes", async (t) => {
    const [a, b] = cluster!.instances as [Cluster["instances"][0], Cluster["instances"][0]];
    verifier = createVerifier({
      issuer: TEST_ISSUER,
      audience: "tessera",
      algorithms: ["ES256"],
      jwksUri: `${a.url}/.well-known/jwks.json`,
      // Polls rarely: within this test a revocation reaches it by push, or by the catch-up
      // poll it makes when its Redis connection comes back.
      revocation: { url: `${b.url}/auth/revocations`, intervalSeconds: 600, redisUrl: redis.url },
      logger: { warn: () => undefined },
    });
    const refused = async (token: string) => {
      try {
        await verifier!.verify(token);
        return false;
      } catch (error) {
        if (isTesseraError(error, "access_token_revoked")) return true;
        throw error;
      }
    };
    const [pushed, whileDown, revokedWhileDown, afterwards] = (await registerAndLogin(a.url, "redis-user", 4)) as [
      TokenResponse,
      TokenResponse,
      TokenResponse,
      TokenResponse,
    ];
    const admin = new Redis(redis.url, {
      connectionName: "fault-test",
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    admin.on("error", () => undefined);
    await admin.connect();
    await waitFor(() => verifier!.stats().revocationChannelSubscribed, 5000, "verifier subscribed");
    await verifier.verify(pushed.access_token);
    const connected = await redisClients(admin);
    admin.disconnect();

    // Up: a logout reaches the verifier by push.
    let started = performance.now();
    assert.equal((await postJson(`${a.url}/auth/logout`, { refresh_token: pushed.refresh_token })).status, 204);
    const pushMs = await waitFor(() => refused(pushed.access_token), 2000, "pushed revocation", 5);

    // Down: everything but the push keeps working.
    await redis.kill();
    const downAt = performance.now();
    const answers = await Promise.all([
      postJson(`${a.url}/auth/register`, { username: "redis-down-a", password: "correct horse battery staple" }),
      postJson(`${b.url}/auth/register`, { username: "redis-down-b", password: "correct horse battery staple" }),
    ]);
    answers.push(
      ...(await Promise.all([
        postJson(`${a.url}/auth/login`, { username: "redis-down-a", password: "correct horse battery staple" }),
        postJson(`${b.url}/auth/login`, { username: "redis-down-b", password: "correct horse battery staple" }),
        postJson(`${b.url}/auth/refresh`, { refresh_token: whileDown.refresh_token }),
      ])),
    );
    const refreshed = answers.at(-1)!.body as unknown as TokenResponse;
    const newToken = refreshed.access_token;
    answers.push(await postJson(`${a.url}/auth/refresh`, { refresh_token: refreshed.refresh_token }));
    answers.push(await get(`${a.url}/auth/me`, { headers: { authorization: `Bearer ${newToken}` } }));
    answers.push(await get(`${b.url}/auth/revocations`));
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [201, 201, 200, 200, 200, 200, 200, 200],
    );
    await verifier.verify(newToken);
    assert.equal(
      (await postJson(`${b.url}/auth/logout`, { refresh_token: revokedWhileDown.refresh_token })).status,
      204,
    );
    await delay(300);
    assert.equal(
      await refused(revokedWhileDown.access_token),
      false,
      "no push while Redis is down, and no poll due yet",
    );
    const slowestWhileDownMs = Math.max(...answers.map((answer) => answer.ms));
    await delay(Math.max(0, DOWN_MS - (performance.now() - downAt)));

    // Back: the verifier reconnects, polls the feed once and so learns what it missed; then the
    // servers' publishers reconnect and pushes arrive again.
    await redis.start();
    started = performance.now();
    const since = () => performance.now() - started;
    await waitFor(() => refused(revokedWhileDown.access_token), 15_000, "catch-up through the feed", 20);
    const catchUpMs = since();
    await waitFor(() => verifier!.stats().revocationChannelSubscribed, 15_000, "verifier subscribed again", 20);
    const resubscribedMs = since();
    const check = new Redis(redis.url, { connectionName: "fault-test", maxRetriesPerRequest: 0 });
    check.on("error", () => undefined);
    await waitFor(async () => (await redisClients(check)) >= connected, 15_000, "all Redis clients reconnected", 50);
    const reconnectedMs = since();
    check.disconnect();
    const afterUp = performance.now() - started;
    started = performance.now();
    assert.equal((await postJson(`${a.url}/auth/logout`, { refresh_token: afterwards.refresh_token })).status, 204);
    const pushAfterMs = await waitFor(
      () => refused(afterwards.access_token),
      2000,
      "pushed revocation after the outage",
      5,
    );

    report(t, "redis", {
      pushMs: ms(pushMs),
      slowestRequestWhileDownMs: ms(slowestWhileDownMs),
      requestsWhileDown: answers.length,
      feedCatchUpAfterRestartMs: ms(catchUpMs),
      resubscribedAfterRestartMs: ms(resubscribedMs),
      allClientsReconnectedAfterRestartMs: ms(reconnectedMs),
      redisClients: connected,
      pushAfterOutageMs: ms(pushAfterMs),
      waitedMs: ms(afterUp),
    });
  });
});
