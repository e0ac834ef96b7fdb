import assert from "node:assert/strict";
import { createServer as createNetServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { createServer } from "../../src/http/server.js";
import { TesseraError } from "../../src/core/errors.js";
import { accountDelaySeconds, RateLimits } from "../../src/http/rate-limits.js";
import { createArgon2Hasher, type PasswordHasher } from "../../src/service/password-hasher.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { serviceFixture, silentLogger } from "../support/service.js";

const PASSWORD = "correct horse battery staple";

interface Answer {
  readonly status: number;
  readonly error: string | undefined;
  readonly retryAfter: number | null;
}

async function login(url: string, username: string, password: string, forwardedFor?: string): Promise<Answer> {
  const response = await fetch(`${url}/auth/login`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor }),
    },
    body: JSON.stringify({ username, password }),
  });
  const body = (await response.json()) as { error?: string };
  const retryAfter = response.headers.get("retry-after");
  return { status: response.status, error: body.error, retryAfter: retryAfter === null ? null : Number(retryAfter) };
}

/** A closed TCP port on 127.0.0.1: bound once, then released. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

function assertRateLimited(answer: Answer, what: string): void {
  assert.equal(answer.status, 429, what);
  assert.equal(answer.error, "too_many_requests", what);
  assert.ok(answer.retryAfter !== null && answer.retryAfter >= 1, `${what}: Retry-After ${answer.retryAfter}`);
}

describe("accountDelaySeconds()", () => {
  it("waits 1 s after the threshold, doubling with each failure up to the cap, and never without one", () => {
    const delays = [0, 4, 5, 6, 7, 8, 20, 100].map((failures) => accountDelaySeconds(failures, 5, 900));
    assert.deepEqual(delays, [0, 0, 1, 2, 4, 8, 900, 900]);
    assert.equal(accountDelaySeconds(50, 0, 900), 0);
  });
});

describe("RateLimits.login() under concurrency", () => {
  it("counts each attempt against the account before it runs: 40 parallel ones from 40 IPs do not all get through", async () => {
    const limits = RateLimits.open(
      {
        rateLimitPerMinute: 30,
        ipLoginFailuresPerHour: 30,
        accountFailuresBeforeDelay: 5,
        accountMaxDelaySeconds: 900,
      },
      { redisUrl: null, logger: silentLogger },
    );
    let ran = 0;
    const wrong = async () => {
      ran += 1;
      await sleep(20);
      throw new TesseraError("mfa_login_invalid", "wrong");
    };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => limits.login(`203.0.113.${i}`, "mfa:someone", wrong)),
    );
    const codes = outcomes.map((outcome) =>
      outcome.status === "rejected" ? (outcome.reason as TesseraError).code : "ok",
    );
    assert.equal(ran, 6, "five free, then one per window");
    assert.equal(codes.filter((code) => code === "rate_limited").length, 34);
    // A success is refunded: one after another never slows an account down.
    for (let i = 0; i < 8; i += 1)
      assert.equal(await limits.login(`198.51.100.${i}`, "mfa:another", () => Promise.resolve("in")), "in");
    await limits.close();
  });
});

describe("login limits", () => {
  const servers: RunningServer[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });

  it("stop one client IP trying one password on many usernames (spraying)", async () => {
    const server = await startServer({ rateLimitPerMinute: 30 });
    servers.push(server);
    const answers: Answer[] = [];
    for (let i = 0; i < 35; i += 1) answers.push(await login(server.url, `sprayed-${i}`, "Winter2026!"));
    const statuses = answers.map((answer) => answer.status);
    assert.deepEqual(statuses.slice(0, 30), Array(30).fill(401));
    for (const answer of answers.slice(30)) assertRateLimited(answer, "after 30 failures from one IP");
  });

  describe("per account, across client IPs", () => {
    let server: RunningServer;
    before(async () => {
      // The test plays a proxy at 127.0.0.1 forwarding each attempt from another client IP.
      server = await startServer({ rateLimitPerMinute: 30, trustProxy: "127.0.0.1" });
      servers.push(server);
      await registerAndLogin(server.url, "target", PASSWORD);
    });
    let ip = 0;
    const nextIp = () => `198.51.100.${(ip += 1)}`;

    it("slow down wrong passwords for one account from 40 IPs, with Retry-After; a success resets", async () => {
      const answers: Answer[] = [];
      for (let i = 0; i < 40; i += 1) answers.push(await login(server.url, "target", `guess-${i}`, nextIp()));
      assert.deepEqual(
        answers.slice(0, 6).map((answer) => answer.status),
        Array(6).fill(401),
        "five failures free, the sixth waits 1 s",
      );
      for (const answer of answers.slice(6)) assertRateLimited(answer, "a slowed-down account");

      // One attempt per window, the window doubling with each failure.
      await sleep(answers[39]!.retryAfter! * 1000);
      assert.equal((await login(server.url, "target", "guess-again", nextIp())).status, 401);
      const doubled = await login(server.url, "target", "guess-again", nextIp());
      assertRateLimited(doubled, "after a seventh failure");
      assert.equal(doubled.retryAfter, 2);

      await sleep(2000);
      assert.equal((await login(server.url, "target", PASSWORD, nextIp())).status, 200, "the owner gets in");
      const afterSuccess: number[] = [];
      for (let i = 0; i < 5; i += 1) afterSuccess.push((await login(server.url, "target", "wrong", nextIp())).status);
      assert.deepEqual(afterSuccess, Array(5).fill(401), "a success starts the count again");
    });

    it("slow an unknown username down exactly as a known one", async () => {
      const known: number[] = [];
      const unknown: number[] = [];
      await registerAndLogin(server.url, "known-user", PASSWORD);
      for (let i = 0; i < 8; i += 1) known.push((await login(server.url, "known-user", "wrong", nextIp())).status);
      for (let i = 0; i < 8; i += 1) unknown.push((await login(server.url, "no-such-user", "wrong", nextIp())).status);
      assert.deepEqual(known, [401, 401, 401, 401, 401, 401, 429, 429]);
      assert.deepEqual(unknown, known);
    });
  });

  it("still hold, per process, with Redis configured but unreachable, and say so once", async () => {
    const lines: string[] = [];
    const server = await startServer({
      rateLimitPerMinute: 3,
      redisUrl: `redis://127.0.0.1:${await closedPort()}`,
      logger: { level: "warn", stream: { write: (line: string) => lines.push(line) } },
    });
    servers.push(server);
    // Long enough for several failed reconnects.
    await sleep(1000);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await login(server.url, "nobody", "wrong-password")).status);
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    const warnings = lines.filter((line) => line.includes("Redis unreachable"));
    assert.equal(warnings.length, 1, lines.join(""));
  });
});

describe("the bound on concurrent password hashes", () => {
  it("answers a login beyond it 503 with Retry-After at once, while refreshes go on", async () => {
    // A hasher whose checks wait until the test lets them finish.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding = false;
    const real = createArgon2Hasher();
    const hasher: PasswordHasher = {
      hash: (password) => real.hash(password),
      verify: async (stored, password) => {
        if (holding) await held;
        return real.verify(stored, password);
      },
    };
    const fixture = await serviceFixture({ passwordHashConcurrency: 1, passwordHashQueue: 1 }, hasher);
    const app = await createServer({ services: fixture.services, rateLimitPerMinute: 0, logger: false });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    try {
      const tokens = await registerAndLogin(url, "busy-user", PASSWORD);
      holding = true;
      const running = login(url, "busy-user", PASSWORD);
      const queued = login(url, "busy-user", "wrong-password");
      await sleep(100);
      const refused = await login(url, "busy-user", PASSWORD);
      assert.equal(refused.status, 503);
      assert.equal(refused.error, "temporarily_unavailable");
      assert.equal(refused.retryAfter, 1);
      const refreshed = await fetch(`${url}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh_token }),
      });
      assert.equal(refreshed.status, 200, "a refresh needs no hash and does not wait");
      release();
      assert.equal((await running).status, 200);
      assert.equal((await queued).status, 401);
    } finally {
      release();
      await app.close();
      await fixture.close();
    }
  });
});
