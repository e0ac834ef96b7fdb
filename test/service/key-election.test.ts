import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { type ServerProcess, serverEnvironment, spawnServers } from "../support/server-process.js";
import { registerAndLogin } from "../support/server.js";

const kidOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;

for (const { kind, skip } of await storesUnderTest()) {
  describe(`Two server processes starting together on an empty ${kind} database`, { skip }, () => {
    let database: TestDatabase;
    let servers: ServerProcess[] = [];

    before(async () => {
      database = await createTestDatabase(kind);
      // PS256: generating a 3072-bit key takes long enough that both processes are at it at once.
      servers = await spawnServers([
        serverEnvironment(database.url, { TESSERA_SIGNING_ALG: "PS256" }),
        serverEnvironment(database.url, { TESSERA_SIGNING_ALG: "PS256" }),
      ]);
    });

    after(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      await database?.drop();
    });

    it("elect one signing key: both publish exactly that key and sign with it", async () => {
      const [a, b] = servers as [ServerProcess, ServerProcess];
      const jwks = await Promise.all(
        servers.map(async (server) => {
          const response = await fetch(`${server.url}/.well-known/jwks.json`);
          return ((await response.json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
        }),
      );
      assert.equal(jwks[0]!.length, 1, `one key published, not ${jwks[0]!.join(", ")}`);
      assert.deepEqual(jwks[1], jwks[0]);
      const stored = await queryRows(database, "select kid from signing_keys");
      assert.deepEqual(
        stored.map((row) => row.kid),
        jwks[0],
      );
      const fromA = await registerAndLogin(a.url, "elector-a");
      const fromB = await registerAndLogin(b.url, "elector-b");
      assert.deepEqual([kidOf(fromA.access_token), kidOf(fromB.access_token)], [jwks[0]![0], jwks[0]![0]]);
    });
  });
}
