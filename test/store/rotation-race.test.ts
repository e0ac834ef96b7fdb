import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { registerAndLogin } from "../support/server.js";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { type ServerProcess, serverEnvironment, spawnServers } from "../support/server-process.js";

const RACERS = 64;

for (const { kind, skip } of await storesUnderTest()) {
  describe(`Refresh rotation raced across two server processes on ${kind}`, { skip }, () => {
    let database: TestDatabase;
    let servers: ServerProcess[] = [];

    before(async () => {
      database = await createTestDatabase(kind);
      // Both processes start (and migrate) at once on the fresh database, in different time zones.
      servers = await spawnServers([
        serverEnvironment(database.url, { TZ: "Pacific/Chatham" }),
        serverEnvironment(database.url, { TZ: "America/St_Johns" }),
      ]);
    });

    after(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      await database?.drop();
    });

    it(`answers ${RACERS} concurrent refreshes of one token with 200 and one and the same successor, stored once`, async () => {
      const [a, b] = servers as [ServerProcess, ServerProcess];
      const tokens = await registerAndLogin(a.url, "racer");
      const answers = await Promise.all(
        Array.from({ length: RACERS }, async (_, i) => {
          const response = await fetch(`${(i % 2 ? b : a).url}/auth/refresh`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ refresh_token: tokens.refresh_token }),
          });
          return {
            status: response.status,
            body: (await response.json()) as { refresh_token?: string; error?: string },
          };
        }),
      );
      assert.deepEqual(
        answers.filter((answer) => answer.status !== 200),
        [],
      );
      const successors = new Set(answers.map((answer) => answer.body.refresh_token));
      assert.equal(successors.size, 1);
      assert.notEqual([...successors][0], tokens.refresh_token);

      const [counts] = await queryRows(
        database,
        "select count(*) as tokens, count(parent_id) as successors, count(used_at) as used from refresh_tokens",
      );
      assert.deepEqual(
        { tokens: Number(counts?.tokens), successors: Number(counts?.successors), used: Number(counts?.used) },
        { tokens: 2, successors: 1, used: 1 },
      );
      const [sessions] = await queryRows(database, "select count(*) as open from sessions where revoked_at is null");
      assert.equal(Number(sessions?.open), 1, "the session stays open");

      // The successor is a working token: it rotates once more.
      const next = await fetch(`${b.url}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: [...successors][0] }),
      });
      assert.equal(next.status, 200);
    });
  });
}
