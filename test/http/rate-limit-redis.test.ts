import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TEST_REDIS_URL, redisSkipReason } from "../support/redis.js";
import { type RunningServer, startServer, temporaryDirectory } from "../support/server.js";

const skip = await redisSkipReason();

describe("rate limits with TESSERA_REDIS_URL", { skip }, () => {
  const servers: RunningServer[] = [];
  let dir: ReturnType<typeof temporaryDirectory>;

  before(async () => {
    dir = temporaryDirectory();
    // Two instances on one database and one Redis; a fresh port pair per run keeps keys apart.
    const shared = {
      databaseUrl: `sqlite:${dir.path}/shared.db`,
      redisUrl: TEST_REDIS_URL,
      rateLimitPerMinute: 4,
      trustProxy: "127.0.0.1",
    };
    servers.push(await startServer(shared), await startServer(shared));
  });
  after(async () => {
    for (const server of servers) await server.close();
    dir.remove();
  });

  it("are shared by every instance", async () => {
    // A client address and a username of our own keep this run's counters apart from any other run's.
    const octet = () => Math.floor(Math.random() * 250) + 1;
    const client = `10.${octet()}.${octet()}.${octet()}`;
    const username = `nobody-${Math.random().toString(36).slice(2)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const server = servers[i % 2]!;
      const response = await fetch(`${server.url}/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": client },
        body: JSON.stringify({ username, password: "nothing-here" }),
      });
      statuses.push(response.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429]);
  });

  it("slow an account down on every instance, whichever instance saw its failures", async () => {
    // A username of our own keeps this run's account apart from any other run's.
    const username = `shared-${Math.random().toString(36).slice(2)}`;
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 8; i += 1) {
      const server = servers[i % 2]!;
      const response = await fetch(`${server.url}/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": `192.0.2.${i + 1}` },
        body: JSON.stringify({ username, password: "nothing-here" }),
      });
      statuses.push(response.status);
      retryAfter = response.headers.get("retry-after") ?? retryAfter;
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401, 429, 429]);
    assert.equal(retryAfter, "1");
  });
});
