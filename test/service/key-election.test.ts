import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { resolveConfig } from "../../src/http/server-config.js";
import { KEY_PUBLICATION_LEAD_SECONDS } from "../../src/service/signing-keys.js";
import { createServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import { FrozenClock } from "../support/clock.js";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { type ServerProcess, serverEnvironment, spawnServers } from "../support/server-process.js";
import { registerAndLogin } from "../support/server.js";
import { silentLogger } from "../support/service.js";

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

for (const { kind, skip } of await storesUnderTest()) {
  describe(`Three instances advancing the key schedule together on one ${kind} database`, { skip }, () => {
    let database: TestDatabase;
    const instances: TesseraServices[] = [];
    const clock = new FrozenClock();

    before(async () => {
      database = await createTestDatabase(kind);
      const config = resolveConfig({
        databaseUrl: database.url,
        secret: "election-test-secret-0123456789-abcdefghij",
        issuer: "https://issuer.test",
        keyRotation: "1h",
      });
      // Started together: one election of the first key, whoever wins.
      const started = await Promise.all(
        [0, 1, 2].map(async () => {
          const store = openStore({ url: database.url });
          await store.migrate();
          return createServices({ store, config, clock, logger: silentLogger });
        }),
      );
      instances.push(...started);
    });

    after(async () => {
      await Promise.all(instances.map((services) => services.close()));
      await database?.drop();
    });

    const tickAll = () => Promise.all(instances.map((services) => services.keys.reload()));
    const keyRows = async () =>
      (await queryRows(database, "select kid, slot from signing_keys")).map((row) => ({
        kid: String(row.kid),
        slot: typeof row.slot === "string" ? row.slot : null,
      }));
    const keyEventCount = async (type: string) => {
      await Promise.all(instances.map((services) => services.audit.flush()));
      return Number((await queryRows(database, `select count(*) as n from audit_events where type = '${type}'`))[0]?.n);
    };

    it("publish one next key and promote it once, however often they tick at the same instant", async () => {
      const [first] = await keyRows();
      assert.equal((await keyRows()).length, 1, "one key elected");
      clock.advance(3600 - KEY_PUBLICATION_LEAD_SECONDS);
      await tickAll();
      await tickAll();
      const published = await keyRows();
      assert.deepEqual(published.map((row) => row.slot).sort(), ["current", "next"]);
      const next = published.find((row) => row.slot === "next")!;
      for (const services of instances)
        assert.deepEqual(services.jwks.keys.map((key) => key.kid).sort(), [first!.kid, next.kid].sort());

      clock.advance(KEY_PUBLICATION_LEAD_SECONDS);
      await tickAll();
      await tickAll();
      const promoted = await keyRows();
      assert.deepEqual(
        promoted.map((row) => [row.kid, row.slot]).sort(),
        [
          [first!.kid, null],
          [next.kid, "current"],
        ].sort(),
      );
      // Created: the first key, elected at start by one instance, and the next one.
      assert.deepEqual(
        [await keyEventCount("key_created"), await keyEventCount("key_rotated"), await keyEventCount("key_retired")],
        [2, 1, 1],
      );
      for (const services of instances) {
        const { token } = services.keys.signAccessToken({ userId: "u", sessionId: "s", roles: [] });
        assert.equal(kidOf(token), next.kid);
      }
    });
  });
}
