import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { Logger } from "../../src/core/logger.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { createArgon2Hasher } from "../../src/service/password-hasher.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { openServices } from "../../src/service/tessera-services.js";
import { upgradeUsernameKeys } from "../../src/service/username-keys.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store, UserRecord } from "../../src/store/store.js";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { silentLogger } from "../support/service.js";

const context: RequestContext = { ip: "203.0.113.7", userAgent: "test-agent/1.0" };
const hasher = createArgon2Hasher();

/** A logger that keeps its warnings. */
function recordingLogger(): Logger & { warnings: { object: object; message: string }[] } {
  const warnings: { object: object; message: string }[] = [];
  return { ...silentLogger, warn: (object, message) => warnings.push({ object, message }), warnings };
}

/** A user row as Tessera wrote it before NFKC_Casefold: the key was NFKC, then `toLowerCase()`. */
async function previousUser(username: string, password: string, createdAt: string): Promise<UserRecord> {
  return {
    id: randomUUID(),
    username,
    usernameKey: username.normalize("NFKC").toLowerCase(),
    passwordHash: await hasher.hash(password),
    roles: ["user"],
    createdAt: new Date(createdAt),
  };
}

/**
 * Takes a migrated database back to where the first migration left it: on MySQL/MariaDB the
 * key column gets the database's default collation again, as `0001_initial` created it.
 */
async function backToFirstMigration(database: TestDatabase): Promise<void> {
  await queryRows(database, "delete from kysely_migration where name <> '0001_initial'");
  // Later migrations are undone too, so that the next migrate() runs them all again in order.
  const dropIndex = (name: string, table: string) =>
    queryRows(database, database.kind === "mysql" ? `drop index ${name} on ${table}` : `drop index ${name}`);
  await queryRows(database, "drop table recovery_codes");
  await queryRows(database, "drop table totp_credentials");
  await queryRows(database, "alter table sessions drop column amr");
  await queryRows(database, "drop table one_time_tokens");
  await dropIndex("users_email_key_idx", "users");
  for (const column of ["email_verified_at", "email_key", "email"])
    await queryRows(database, `alter table users drop column ${column}`);
  await queryRows(database, "alter table signing_keys drop column activates_at");
  for (const name of ["audit_events_user_time_idx", "audit_events_session_time_idx", "audit_events_time_idx"])
    await dropIndex(name, "audit_events");
  await queryRows(database, "create index audit_events_user_id_idx on audit_events (user_id)");
  await queryRows(database, "create index audit_events_created_at_idx on audit_events (created_at)");
  await dropIndex("signing_keys_slot_idx", "signing_keys");
  await queryRows(database, "alter table signing_keys drop column slot");
  await queryRows(database, "drop table deleted_sessions");
  await queryRows(database, "alter table users drop column disabled_at");
  if (database.kind === "mysql")
    await queryRows(database, "alter table users modify username_key varchar(64) not null");
}

for (const { kind, skip } of await storesUnderTest()) {
  describe(`upgrading username keys on ${kind}`, { skip }, () => {
    let database: TestDatabase;
    let store: Store;
    const strasse = previousUser("STRASSE", "password of STRASSE", "2025-01-01T00:00:00Z");
    const strasseLater = previousUser("Straße", "password of Straße", "2025-02-01T00:00:00Z");
    const odos = previousUser("ΟΔΟΣ", "password of ΟΔΟΣ", "2025-03-01T00:00:00Z");

    before(async () => {
      database = await createTestDatabase(kind);
      store = openStore({ url: database.url });
      await store.migrate();
      await backToFirstMigration(database);
      for (const user of await Promise.all([strasse, strasseLater, odos]))
        assert.equal(await store.createUser(user), true);
    });

    after(async () => {
      await store?.close();
      await database?.drop();
    });

    it("rekeys at start-up, reports a collision, and both colliding accounts still log in", async () => {
      const config = resolveConfig({
        databaseUrl: database.url,
        secret: "service-test-secret-0123456789-abcdefgh",
        issuer: "https://issuer.test",
      });
      const logger = recordingLogger();
      const services = await openServices(config, logger);
      const [first, later, greek] = await Promise.all([strasse, strasseLater, odos]);
      try {
        assert.deepEqual(
          logger.warnings.map((warning) => warning.object),
          [{ userIds: [first.id, later.id] }],
        );
        assert.equal((await store.findUserById(first.id))?.usernameKey, "strasse");
        assert.equal((await store.findUserById(later.id))?.usernameKey, "straße", "the later one keeps its old key");
        assert.equal((await store.findUserById(greek.id))?.usernameKey, "οδοσ");

        const login = async (username: string, password: string) =>
          (await services.auth.login(username, password, context)).userId;
        assert.equal(await login("STRASSE", "password of STRASSE"), first.id);
        assert.equal(await login("strasse", "password of STRASSE"), first.id);
        assert.equal(await login("Straße", "password of Straße"), later.id, "the old-key account logs in");
        assert.equal(await login("STRAẞE", "password of Straße"), later.id);
        await assert.rejects(services.auth.login("Straße", "password of STRASSE", context), {
          code: "invalid_credentials",
        });
        for (const name of ["ΟΔΟΣ", "οδοσ", "οδος"]) assert.equal(await login(name, "password of ΟΔΟΣ"), greek.id);
        await assert.rejects(services.auth.register("Οδοσ", "another password", context), { code: "username_taken" });
        await assert.rejects(services.auth.register("strasse", "another password", context), {
          code: "username_taken",
        });
      } finally {
        await services.close();
      }

      const again = recordingLogger();
      await (await openServices(config, again)).close();
      assert.deepEqual(again.warnings, [], "done once per database");
    });

    it("compares keys exactly afterwards: bob and böb are two users, on MySQL/MariaDB too", async () => {
      const registered = await Promise.all(
        ["bob", "böb"].map((name) => previousUser(name, "x", "2025-04-01T00:00:00Z")),
      );
      for (const user of registered) assert.equal(await store.createUser(user), true, user.username);
    });
  });
}

describe("upgradeUsernameKeys()", () => {
  let database: TestDatabase;
  let store: Store;

  before(async () => {
    database = await createTestDatabase("sqlite");
    store = openStore({ url: database.url });
    await store.migrate();
  });
  after(async () => {
    await store.close();
    await database.drop();
  });

  it("gives the key to the oldest when no account has it yet, and keeps a key too long to change", async () => {
    // ßs and sß both fold to sss; neither had it before.
    const newer = await previousUser("ßs-name", "x", "2025-02-01T00:00:00Z");
    const older = await previousUser("sß-name", "x", "2025-01-01T00:00:00Z");
    const long = await previousUser("ß".repeat(40), "x", "2025-01-01T00:00:00Z");
    for (const user of [newer, older, long]) await store.createUser(user);
    const logger = recordingLogger();
    const result = await upgradeUsernameKeys(store, logger);
    assert.deepEqual(result, { rekeyed: 1, collisions: [[older.id, newer.id]], tooLong: [long.id] });
    assert.equal((await store.findUserById(older.id))?.usernameKey, "sss-name");
    assert.equal((await store.findUserById(newer.id))?.usernameKey, "ßs-name");
    assert.equal(logger.warnings.length, 2);
    assert.deepEqual(await upgradeUsernameKeys(store, logger), { rekeyed: 0, collisions: [], tooLong: [] });
  });
});
