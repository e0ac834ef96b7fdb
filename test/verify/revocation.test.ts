import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { FrozenClock } from "../support/clock.js";
import { redisSkipReason, TEST_REDIS_URL } from "../support/redis.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { eventually, rejectionCode } from "./support.js";

const silent = { warn: () => undefined };

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

  void it("keeps verifying when the feed cannot be reached", async () => {
    const erin = await registerAndLogin(server.url, "poll-erin");
    const verifier = verifierFor(server, verifiers, {
      url: "http://127.0.0.1:9/auth/revocations",
      intervalSeconds: 0.1,
    });
    assert.equal((await verifier.verify(erin.access_token)).iss, server.issuer);
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
