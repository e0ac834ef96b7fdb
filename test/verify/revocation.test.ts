import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import express from "express";
import { Redis } from "ioredis";
import { encodeRevocationMessage } from "../../src/core/revocation.js";
import { tesseraAuth } from "../../src/verify/express-adapter.js";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { FrozenClock } from "../support/clock.js";
import { redisSkipReason, TEST_REDIS_URL } from "../support/redis.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { eventually, rejectionCode } from "./support.js";

const silent = { warn: () => undefined };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A TCP proxy in front of `server`, which a test cuts to make the feed unreachable and restores. */
function proxyTo(server: RunningServer): Promise<TcpProxy> {
  return TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(server.url).port) });
}

const feedVia = (proxy: TcpProxy) => `http://127.0.0.1:${proxy.port}/auth/revocations`;

function freshness(verifier: Verifier): { stale: boolean; ageSeconds: number | null } {
  const { revocationStale, revocationAgeSeconds } = verifier.stats();
  return { stale: revocationStale, ageSeconds: revocationAgeSeconds };
}

async function logout(server: RunningServer, refreshToken: string): Promise<void> {
  const response = await fetch(`${server.url}/auth/logout`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  assert.equal(response.status, 204);
}

function verifierFor(
  server: RunningServer,
  verifiers: Verifier[],
  revocation: NonNullable<VerifierOptions["revocation"]>,
  overrides: Partial<VerifierOptions> = {},
): Verifier {
  const verifier = createVerifier({
    issuer: server.issuer,
    audience: server.audience,
    algorithms: ["ES256"],
    jwksUri: `${server.url}/.well-known/jwks.json`,
    logger: silent,
    revocation,
    ...overrides,
  });
  verifiers.push(verifier);
  return verifier;
}

void describe("GET /auth/revocations", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ accessTokenTtl: "10m" });
  });
  after(() => server.close());

  void it("lists sessions revoked within the access-token lifetime", async () => {
    const tokens = await registerAndLogin(server.url, "feed-user");
    const sid = (JSON.parse(Buffer.from(tokens.access_token.split(".")[1]!, "base64url").toString()) as { sid: string })
      .sid;
    const before = (await (await fetch(`${server.url}/auth/revocations`)).json()) as { revoked: { sid: string }[] };
    assert.ok(!before.revoked.some((entry) => entry.sid === sid));
    await logout(server, tokens.refresh_token);
    const response = await fetch(`${server.url}/auth/revocations?since=0`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "no-store");
    const body = (await response.json()) as {
      revoked: { sid: string; revoked_at: number }[];
      window_seconds: number;
      generated_at: number;
    };
    assert.equal(body.window_seconds, 600);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(body.generated_at - now) <= 2);
    const entry = body.revoked.find((item) => item.sid === sid);
    assert.ok(entry, "the logged-out session is listed");
    assert.ok(entry.revoked_at <= body.generated_at && entry.revoked_at >= now - 5);
  });

  void it("lists nothing revoked before since", async () => {
    const tokens = await registerAndLogin(server.url, "feed-future");
    await logout(server, tokens.refresh_token);
    // Past year 9999 too, where text timestamps would sort before this year's.
    for (const future of [Math.floor(Date.now() / 1000) + 3600, 253402300800, 999999999999]) {
      const body = (await (await fetch(`${server.url}/auth/revocations?since=${future}`)).json()) as {
        revoked: unknown[];
      };
      assert.deepEqual(body.revoked, [], `since=${future}`);
    }
  });

  for (const query of [
    "since=abc",
    "since=-1",
    "since=1.5",
    "since=",
    "since=1&since=2",
    "since=99999999999999",
    "other=1",
  ]) {
    void it(`answers 400 invalid_request for ?${query}`, async () => {
      const response = await fetch(`${server.url}/auth/revocations?${query}`);
      assert.equal(response.status, 400);
      assert.equal(((await response.json()) as { error: string }).error, "invalid_request");
    });
  }
});

void describe("createVerifier() revocation by polling", () => {
  let server: RunningServer;
  const verifiers: Verifier[] = [];
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    await server.close();
  });

  void it("refuses a logged-out session's token within one poll interval, even when it is cached", async () => {
    const verifier = verifierFor(server, verifiers, { url: `${server.url}/auth/revocations`, intervalSeconds: 0.1 });
    const [alice, bob] = [
      await registerAndLogin(server.url, "poll-alice"),
      await registerAndLogin(server.url, "poll-bob"),
    ];
    await verifier.verify(alice.access_token);
    await verifier.verify(alice.access_token);
    assert.equal(verifier.stats().tokenCacheHits, 1);
    await logout(server, alice.refresh_token);
    await eventually(
      async () => (await rejectionCode(verifier.verify(alice.access_token))) === "access_token_revoked",
      2000,
    );
    assert.ok(verifier.stats().tokenCacheHits >= 2, "the refusal came from a cache hit");
    assert.equal((await verifier.verify(bob.access_token)).sub.length > 0, true);
  });

  void it("refuses tokens of sessions revoked before the verifier started", async () => {
    const carol = await registerAndLogin(server.url, "poll-carol");
    await logout(server, carol.refresh_token);
    const verifier = verifierFor(server, verifiers, { url: `${server.url}/auth/revocations`, intervalSeconds: 60 });
    assert.equal(await rejectionCode(verifier.verify(carol.access_token)), "access_token_revoked");
  });

  void it("forgets revoked sessions once the access-token lifetime has passed", async () => {
    const dave = await registerAndLogin(server.url, "poll-dave");
    await logout(server, dave.refresh_token);
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor(
      server,
      verifiers,
      { url: `${server.url}/auth/revocations`, intervalSeconds: 0.05 },
      { clock },
    );
    assert.equal(await rejectionCode(verifier.verify(dave.access_token)), "access_token_revoked");
    assert.ok(verifier.stats().revokedSessions >= 1);
    clock.advance(dave.expires_in + 1);
    await eventually(() => verifier.stats().revokedSessions === 0, 2000);
  });

  void it("stops polling on close()", async () => {
    let polls = 0;
    const verifier = verifierFor(
      server,
      verifiers,
      { url: `${server.url}/auth/revocations`, intervalSeconds: 0.05 },
      {
        fetch: (input, init) => {
          if (String(input instanceof Request ? input.url : input.toString()).includes("/auth/revocations")) polls += 1;
          return fetch(input, init);
        },
      },
    );
    await eventually(() => polls >= 2);
    await verifier.close();
    const afterClose = polls;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(polls, afterClose);
  });
});

void describe("createVerifier() while the revocation feed is unreachable", () => {
  let server: RunningServer;
  const verifiers: Verifier[] = [];
  const proxies: TcpProxy[] = [];
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await server.close();
  });
  const cutProxy = async () => {
    const proxy = await proxyTo(server);
    proxies.push(proxy);
    return proxy;
  };

  void it("refuses every valid token, a logged-out session's too, until the feed first answers", async () => {
    const proxy = await cutProxy();
    await proxy.cut();
    const live = await registerAndLogin(server.url, "dark-live");
    const gone = await registerAndLogin(server.url, "dark-gone");
    await logout(server, gone.refresh_token);
    const verifier = verifierFor(server, verifiers, { url: feedVia(proxy), intervalSeconds: 0.1 });
    assert.equal(await rejectionCode(verifier.verify(gone.access_token)), "revocation_feed_unavailable");
    assert.equal(
      await rejectionCode(verifier.authenticate(`Bearer ${live.access_token}`)),
      "revocation_feed_unavailable",
    );
    assert.equal(await rejectionCode(verifier.verify("not.a.token")), "access_token_malformed");
    assert.deepEqual(freshness(verifier), { stale: true, ageSeconds: null });

    await proxy.restore();
    await eventually(async () => (await rejectionCode(verifier.verify(live.access_token))) === "resolved", 3000);
    assert.equal(await rejectionCode(verifier.verify(gone.access_token)), "access_token_revoked");
    const { stale, ageSeconds } = freshness(verifier);
    assert.equal(stale, false);
    assert.ok(ageSeconds !== null && ageSeconds < 1, `age ${ageSeconds}`);
  });

  void it("refuses tokens once the feed has been silent for maxStalenessSeconds, and recovers by itself", async () => {
    const proxy = await cutProxy();
    const revocation = { url: feedVia(proxy), intervalSeconds: 0.1, maxStalenessSeconds: 1 };
    const verifier = verifierFor(server, verifiers, revocation);
    const [ivan, judy] = [
      await registerAndLogin(server.url, "stale-ivan"),
      await registerAndLogin(server.url, "stale-judy"),
    ];
    await verifier.verify(ivan.access_token);
    await verifier.verify(judy.access_token);
    await proxy.cut();
    const cutAt = Date.now();
    await logout(server, judy.refresh_token); // unseen while the feed is cut
    await eventually(
      async () => (await rejectionCode(verifier.verify(judy.access_token))) === "revocation_feed_unavailable",
      3000,
    );
    assert.ok(Date.now() - cutAt >= 800, "not before maxStalenessSeconds has passed");
    assert.equal(await rejectionCode(verifier.verify(ivan.access_token)), "revocation_feed_unavailable", "cached too");
    const stale = freshness(verifier);
    assert.equal(stale.stale, true);
    assert.ok(stale.ageSeconds !== null && stale.ageSeconds > 1, `age ${stale.ageSeconds}`);

    await proxy.restore();
    await eventually(async () => (await rejectionCode(verifier.verify(ivan.access_token))) === "resolved", 3000);
    assert.equal(await rejectionCode(verifier.verify(judy.access_token)), "access_token_revoked");
    assert.equal(freshness(verifier).stale, false);
  });

  void it("allows by default the feed's window_seconds of staleness, the issuer's access-token lifetime", async () => {
    const tenMinutes = await startServer({ accessTokenTtl: "10m" });
    const proxy = await proxyTo(tenMinutes);
    proxies.push(proxy);
    try {
      const clock = FrozenClock.onSystemTime();
      const verifier = verifierFor(tenMinutes, verifiers, { url: feedVia(proxy), intervalSeconds: 0.1 }, { clock });
      const tokens = await registerAndLogin(tenMinutes.url, "window-walt");
      await verifier.verify(tokens.access_token);
      await proxy.cut();
      clock.advance(598);
      assert.equal(freshness(verifier).stale, false);
      clock.advance(3);
      const { stale, ageSeconds } = freshness(verifier);
      assert.equal(stale, true);
      assert.ok(ageSeconds !== null && ageSeconds > 600 && ageSeconds < 603, `age ${ageSeconds}`);
      await proxy.restore();
      await eventually(() => !freshness(verifier).stale, 3000);
    } finally {
      await tenMinutes.close();
    }
  });

  void it("answers 503 temporarily_unavailable with Retry-After through an adapter", async () => {
    const tokens = await registerAndLogin(server.url, "dark-adapter");
    const verifier = verifierFor(server, verifiers, { url: "http://127.0.0.1:9/auth/revocations", intervalSeconds: 1 });
    const app = express();
    app.get("/hello", tesseraAuth({ verifier }), (req, res) => void res.json(req.auth));
    const api = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
    });
    try {
      const response = await fetch(`http://127.0.0.1:${(api.address() as AddressInfo).port}/hello`, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("retry-after"), "5");
      assert.equal(response.headers.get("cache-control"), "no-store");
      assert.equal(((await response.json()) as { error: string }).error, "temporarily_unavailable");
    } finally {
      api.closeAllConnections();
      await new Promise((resolve) => api.close(resolve));
    }
  });

  void it("refuses maxStalenessSeconds that is not a number of seconds, or shorter than two poll intervals", () => {
    const base = { url: `${server.url}/auth/revocations`, intervalSeconds: 1 };
    for (const maxStalenessSeconds of [null, 0, 1.5, 86_401, "60"]) {
      assert.throws(
        () => verifierFor(server, verifiers, { ...base, maxStalenessSeconds: maxStalenessSeconds as number }),
        (error: unknown) => error instanceof TypeError && /revocation\.maxStalenessSeconds/.test(error.message),
        String(maxStalenessSeconds),
      );
    }
    assert.equal(
      verifierFor(server, verifiers, { ...base, maxStalenessSeconds: 2 }).config.revocation?.maxStalenessSeconds,
      2,
    );
  });
});

void describe("createVerifier() revocation pushed through Redis", { skip: await redisSkipReason() }, () => {
  const verifiers: Verifier[] = [];
  let server: RunningServer | undefined;
  after(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    await server?.close();
  });

  void it("refuses a logged-out session's token within milliseconds, long before the next poll", async () => {
    server = await startServer({ redisUrl: TEST_REDIS_URL });
    const revocation = { url: `${server.url}/auth/revocations`, intervalSeconds: 3600, redisUrl: TEST_REDIS_URL };
    const verifier = verifierFor(server, verifiers, revocation);
    const frank = await registerAndLogin(server.url, "redis-frank");
    await verifier.verify(frank.access_token);
    await eventually(() => verifier.stats().revocationChannelSubscribed);
    const started = Date.now();
    await logout(server, frank.refresh_token);
    await eventually(
      async () => (await rejectionCode(verifier.verify(frank.access_token))) === "access_token_revoked",
      2000,
    );
    assert.ok(Date.now() - started < 2000);
  });

  void it("counts messages on the Redis channel as updates while the feed is down", async () => {
    if (server === undefined) return;
    const proxy = await proxyTo(server);
    const channel = `tessera:revocations:test-${randomUUID()}`;
    const publisher = new Redis(TEST_REDIS_URL);
    try {
      const revocation = {
        url: feedVia(proxy),
        intervalSeconds: 0.2,
        maxStalenessSeconds: 1,
        redisUrl: TEST_REDIS_URL,
        channel,
      };
      const verifier = verifierFor(server, verifiers, revocation);
      const kim = await registerAndLogin(server.url, "redis-kim");
      await verifier.verify(kim.access_token);
      await eventually(() => verifier.stats().revocationChannelSubscribed);
      await sleep(500); // a good poll after subscribing: from then on nothing published can be missed
      await proxy.cut();
      for (let published = 0; published < 8; published += 1) {
        await publisher.publish(channel, encodeRevocationMessage([randomUUID()], Math.floor(Date.now() / 1000)));
        await sleep(250);
        assert.equal(freshness(verifier).stale, false, `after ${published + 1} messages`);
      }
      assert.equal((await verifier.verify(kim.access_token)).sub.length > 0, true);
      await eventually(() => freshness(verifier).stale, 3000);
      assert.equal(await rejectionCode(verifier.verify(kim.access_token)), "revocation_feed_unavailable");
    } finally {
      publisher.disconnect();
      await proxy.close();
    }
  });

  void it("publishes {sids, revoked_at} on tessera:revocations", async () => {
    if (server === undefined) return;
    const subscriber = new Redis(TEST_REDIS_URL);
    const messages: string[] = [];
    subscriber.on("message", (_channel: string, message: string) => messages.push(message));
    await subscriber.subscribe("tessera:revocations");
    try {
      const grace = await registerAndLogin(server.url, "redis-grace");
      await logout(server, grace.refresh_token);
      await eventually(() => messages.length > 0);
      const message = JSON.parse(messages.at(-1)!) as { sids: string[]; revoked_at: number };
      assert.equal(message.sids.length, 1);
      assert.ok(Math.abs(message.revoked_at - Math.floor(Date.now() / 1000)) <= 2);
    } finally {
      subscriber.disconnect();
    }
  });
});

void describe("revocation when Redis is down", () => {
  void it("still serves logout and verification, and the feed still delivers", async () => {
    const down = "redis://127.0.0.1:9";
    const server = await startServer({ redisUrl: down });
    const verifier = verifierFor(server, [], {
      url: `${server.url}/auth/revocations`,
      intervalSeconds: 0.1,
      redisUrl: down,
    });
    try {
      const heidi = await registerAndLogin(server.url, "redis-down-heidi");
      await verifier.verify(heidi.access_token);
      await logout(server, heidi.refresh_token);
      await eventually(
        async () => (await rejectionCode(verifier.verify(heidi.access_token))) === "access_token_revoked",
        2000,
      );
      assert.equal(verifier.stats().revocationChannelSubscribed, false);
    } finally {
      await verifier.close();
      await server.close();
    }
  });
});
