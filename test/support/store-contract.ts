import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { migrationProvider } from "../../src/store/migrations.js";
import { openStore } from "../../src/store/open-store.js";
import {
  AUDIT_INSERT_ROWS,
  type AuditEventCursor,
  type AuditEventRecord,
  type OneTimeTokenRecord,
  type RecoveryCodeRecord,
  type RefreshTokenRecord,
  type SessionRecord,
  type SigningKeyRecord,
  type Store,
  type UserQuery,
  type UserRecord,
} from "../../src/store/store.js";
import { holdLocks, lockWaits, queryRows, type TestDatabase } from "./databases.js";

const T0 = new Date("2026-07-15T23:59:58.987Z");
const HOUR = 3_600_000;
const at = (offsetMs: number) => new Date(T0.getTime() + offsetMs);

function aUser(overrides: Partial<UserRecord> = {}): UserRecord {
  const username = `User-${randomBytes(5).toString("hex")}`;
  return {
    id: randomUUID(),
    username,
    usernameKey: username.toLowerCase(),
    passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    roles: ["user"],
    createdAt: T0,
    disabledAt: null,
    email: null,
    emailKey: null,
    emailVerifiedAt: null,
    emailSetAt: null,
    ...overrides,
  };
}

function aSession(userId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: randomUUID(),
    userId,
    createdAt: T0,
    lastUsedAt: T0,
    expiresAt: at(30 * 24 * HOUR),
    idleExpiresAt: at(72 * HOUR),
    revokedAt: null,
    revokedReason: null,
    userAgent: "test-agent/1.0",
    ip: "192.0.2.1",
    amr: ["pwd"],
    ...overrides,
  };
}

function aToken(sessionId: string, overrides: Partial<RefreshTokenRecord> = {}): RefreshTokenRecord {
  return {
    id: randomUUID(),
    sessionId,
    tokenHash: randomBytes(32).toString("hex"),
    parentId: null,
    createdAt: T0,
    expiresAt: at(72 * HOUR),
    usedAt: null,
    ...overrides,
  };
}

/** A user with one open session and its first refresh token, stored. */
async function seedSession(
  store: Store,
  session: Partial<SessionRecord> = {},
  token: Partial<RefreshTokenRecord> = {},
) {
  const user = aUser();
  assert.equal(await store.createUser(user), true);
  const s = aSession(user.id, session);
  const t = aToken(s.id, token);
  await store.createSession(s, t);
  return { user, session: s, token: t };
}

/** A PostgreSQL URL whose sessions run in Asia/Kolkata (+05:30), to prove the zone never leaks in. */
function withSessionTimeZone(database: TestDatabase): string {
  if (database.kind !== "postgres") return database.url;
  const url = new URL(database.url);
  url.searchParams.set("options", "-c TimeZone=Asia/Kolkata");
  return url.toString();
}

/**
 * Registers the store contract as one suite, `Store contract on <name>`, over a database from
 * `createDatabase` (the migrate() and deleteExpired() tests create their own as well). Stores are
 * opened with `openStore()` and rows inspected with `queryRows()`. `skip`: why the suite skips.
 * Sets the process time zone to Pacific/Chatham, which the timestamp tests rely on.
 */
export function testStoreContract(
  name: string,
  createDatabase: () => Promise<TestDatabase>,
  options: { skip?: string | false } = {},
): void {
  // A zone 13h45 ahead of UTC with DST: any local-time slip in the store shows up as a wrong date.
  process.env.TZ = "Pacific/Chatham";

  describe(`Store contract on ${name}`, { skip: options.skip ?? false }, () => {
    let database: TestDatabase;
    let store: Store;
    let other: Store;

    before(async () => {
      database = await createDatabase();
      store = openStore({ url: withSessionTimeZone(database) });
      other = openStore({ url: withSessionTimeZone(database) });
      await store.migrate();
    });

    after(async () => {
      await store?.close();
      await other?.close();
      await database?.drop();
    });

    describe("migrate()", () => {
      it("creates the schema on a fresh database when two instances run it at once", async () => {
        const fresh = await createDatabase();
        const a = openStore({ url: fresh.url });
        const b = openStore({ url: fresh.url });
        try {
          await Promise.all([a.migrate(), b.migrate()]);
          const rows = await queryRows(fresh, "select name from kysely_migration order by name");
          const migrations = await migrationProvider(fresh.kind).getMigrations();
          assert.deepEqual(
            rows.map((row) => row.name),
            Object.keys(migrations).sort(),
          );
          assert.equal(await b.createUser(aUser()), true);
        } finally {
          await a.close();
          await b.close();
          await fresh.drop();
        }
      });

      it("is idempotent: running it again changes nothing and keeps the data", async () => {
        const user = aUser();
        await store.createUser(user);
        await store.migrate();
        await other.migrate();
        assert.equal((await store.findUserById(user.id))?.username, user.username);
      });

      it("creates an index for every lookup path", async () => {
        const indexed = await indexedColumns(database);
        for (const [table, column, unique] of [
          ["users", "username_key", true],
          ["refresh_tokens", "token_hash", true],
          ["refresh_tokens", "parent_id", true],
          ["refresh_tokens", "session_id", false],
          ["refresh_tokens", "expires_at", false],
          ["signing_keys", "slot", true],
          ["sessions", "user_id", false],
          ["sessions", "expires_at", false],
          ["sessions", "idle_expires_at", false],
          ["sessions", "revoked_at", false],
          ["audit_events", "user_id", false],
          ["audit_events", "session_id", false],
          ["audit_events", "created_at", false],
          ["deleted_sessions", "revoked_at", false],
          ["users", "email_key", true],
          ["one_time_tokens", "token_hash", true],
          ["one_time_tokens", "user_id", false],
          ["one_time_tokens", "expires_at", false],
          ["totp_credentials", "user_id", true],
          // Unique on (user_id, code_hash): a code's digest is unique per user only.
          ["recovery_codes", "user_id", true],
        ] as const) {
          const found = indexed.find(
            (index) => index.table === table && index.column === column && (!unique || index.unique),
          );
          assert.ok(found, `${unique ? "unique " : ""}index on ${table}(${column})`);
        }
      });
    });

    describe("ping() and close()", () => {
      it("succeeds while the database answers", async () => {
        await store.ping();
      });

      it("closes only its own store: others on the same database keep working", async () => {
        const third = openStore({ url: database.url });
        await third.ping();
        await third.close();
        await third.close();
        await other.ping();
        assert.equal(await other.createUser(aUser()), true);
      });
    });

    describe("createUser()", () => {
      it("stores a user that can be found by id and by username key, keeping the username as given", async () => {
        const user = aUser({ roles: ["user", "admin"] });
        assert.equal(await store.createUser(user), true);
        assert.deepEqual(await store.findUserById(user.id), user);
        assert.deepEqual(await store.findUserByUsername(user.usernameKey), user);
        assert.notEqual(user.username, user.usernameKey);
      });

      it("returns false for a taken username key and keeps the first user", async () => {
        const first = aUser();
        assert.equal(await store.createUser(first), true);
        assert.equal(
          await store.createUser(aUser({ username: first.username.toUpperCase(), usernameKey: first.usernameKey })),
          false,
        );
        assert.equal((await store.findUserByUsername(first.usernameKey))?.id, first.id);
      });

      it("compares username keys byte for byte: accents, case or final sigma make two users", async () => {
        const suffix = randomBytes(4).toString("hex");
        const keys = [`bob${suffix}`, `böb${suffix}`, `BOB${suffix}`, `οδος${suffix}`, `οδοσ${suffix}`];
        const users = keys.map((usernameKey) => aUser({ usernameKey }));
        for (const user of users) assert.equal(await store.createUser(user), true, user.usernameKey);
        for (const user of users) assert.equal((await store.findUserByUsername(user.usernameKey))?.id, user.id);
      });

      it("answers null for unknown users", async () => {
        assert.equal(await store.findUserById(randomUUID()), null);
        assert.equal(await store.findUserByUsername("nobody-here"), null);
      });
    });

    describe("setUserRoles()", () => {
      it("replaces the roles and returns true, even when they are unchanged", async () => {
        const user = aUser();
        await store.createUser(user);
        assert.equal(await store.setUserRoles(user.id, ["admin"]), true);
        assert.deepEqual((await store.findUserById(user.id))?.roles, ["admin"]);
        assert.equal(await store.setUserRoles(user.id, ["admin"]), true);
      });

      it("returns false for an unknown user", async () => {
        assert.equal(await store.setUserRoles(randomUUID(), ["admin"]), false);
      });
    });

    describe("updateUserKeepingRole()", () => {
      // A role of its own per case: users of other cases never count as its holders.
      const aRole = () => `keeper-${randomBytes(4).toString("hex")}`;

      it("sets roles or disables like setUserRoles() and disableUser(), and refuses to leave the role unheld", async () => {
        const role = aRole();
        const first = aUser({ roles: [role, "user"] });
        const second = aUser({ roles: [role] });
        await store.createUser(first);
        await store.createUser(second);
        assert.equal(await store.updateUserKeepingRole(second.id, { roles: ["user"] }, role), "updated");
        assert.equal(await store.updateUserKeepingRole(first.id, { roles: ["user"] }, role), "last_holder");
        assert.equal(await store.updateUserKeepingRole(first.id, { disabledAt: at(HOUR) }, role), "last_holder");
        assert.deepEqual(await store.findUserById(first.id), { ...first, disabledAt: null });
        assert.equal(await store.updateUserKeepingRole(first.id, { roles: [role, "ops"] }, role), "updated");
        assert.deepEqual((await store.findUserById(first.id))?.roles, [role, "ops"]);
        // A disabled holder does not count; users without the role are never held back.
        await store.setUserRoles(second.id, [role]);
        assert.equal(await store.disableUser(second.id, at(HOUR)), true);
        assert.equal(await store.updateUserKeepingRole(first.id, { disabledAt: at(HOUR) }, role), "last_holder");
        assert.equal(await store.updateUserKeepingRole(second.id, { roles: [] }, role), "updated");
        assert.equal(await store.updateUserKeepingRole(second.id, { disabledAt: at(2 * HOUR) }, role), "unchanged");
        assert.deepEqual((await store.findUserById(second.id))?.disabledAt, at(HOUR));
        assert.equal(await store.updateUserKeepingRole(randomUUID(), { roles: [] }, role), "unchanged");
        assert.equal(await store.updateUserKeepingRole(randomUUID(), { disabledAt: at(HOUR) }, role), "unchanged");
      });

      it("lets exactly one of two racing demotions of the last two holders through, from two instances", async () => {
        const changes = Array.from({ length: 5 }, () => [{ roles: ["user"] }, { disabledAt: at(HOUR) }]).flat();
        for (const [round, change] of changes.entries()) {
          const role = aRole();
          const a = aUser({ roles: [role] });
          const b = aUser({ roles: [role] });
          await store.createUser(a);
          await store.createUser(b);
          const outcomes = await Promise.all([
            store.updateUserKeepingRole(a.id, change, role),
            other.updateUserKeepingRole(b.id, change, role),
          ]);
          assert.deepEqual([...outcomes].sort(), ["last_holder", "updated"], `round ${round}`);
          const holders = await store.findUsers({ role, disabled: false, afterKey: null, limit: 10 });
          assert.equal(holders.length, 1, `round ${round}: one holder is left`);
        }
      });

      it("lets users be created and other users changed while a call waits inside its transaction", async () => {
        const fresh = await createDatabase();
        const [a, b] = [openStore({ url: fresh.url }), openStore({ url: fresh.url })];
        try {
          await a.migrate();
          const role = aRole();
          await a.createUser(aUser({ roles: [role] }));
          await a.createUser(aUser({ roles: [role] }));
          const plain = aUser();
          await a.createUser(plain);
          // The last user in id order, so a scan of the users in that order reaches it last.
          const target = aUser({ id: "ffffffff-ffff-4fff-bfff-ffffffffffff" });
          await a.createUser(target);
          assert.equal(await a.updateUserKeepingRole(plain.id, { roles: ["user"] }, role), "updated");
          const change = () => a.updateUserKeepingRole(target.id, { roles: ["user", "ops"] }, role);
          if (fresh.kind === "sqlite") {
            // One writer at a time: the three only have to take their turns.
            const outcomes = await Promise.all([change(), b.createUser(aUser()), b.setUserRoles(plain.id, ["ops"])]);
            assert.deepEqual(outcomes, ["updated", true, true]);
            return;
          }
          // Another transaction holds the target's row: the call stops at its write, mid-transaction.
          const holder = await holdLocks(fresh, `select id from users where id = '${target.id}' for update`);
          let settled = false;
          const changed = change().finally(() => {
            settled = true;
          });
          changed.catch(() => {});
          try {
            for (let waited = 0; (await lockWaits(fresh)) === 0; waited += 20) {
              assert.ok(waited < 1000, "the call waits for the target's row");
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            assert.equal(await b.createUser(aUser()), true);
            assert.equal(await b.setUserRoles(plain.id, ["ops"]), true);
            assert.equal(settled, false, "the call was still waiting meanwhile");
          } finally {
            await holder.release();
          }
          assert.equal(await changed, "updated");
          assert.deepEqual((await a.findUserById(plain.id))?.roles, ["ops"]);
        } finally {
          await a.close();
          await b.close();
          await fresh.drop();
        }
      });
    });

    describe("listUsers()", () => {
      it("pages through every user in id order", async () => {
        const fresh = await createDatabase();
        const listed = openStore({ url: fresh.url });
        try {
          await listed.migrate();
          const users = Array.from({ length: 7 }, () => aUser());
          for (const user of users) await listed.createUser(user);
          const pages: UserRecord[][] = [];
          for (let afterId: string | null = null; ; ) {
            const page = await listed.listUsers(afterId, 3);
            pages.push(page);
            if (page.length < 3) break;
            afterId = page.at(-1)?.id ?? null;
          }
          assert.deepEqual(
            pages.map((page) => page.length),
            [3, 3, 1],
          );
          const ids = users.map((user) => user.id).sort();
          assert.deepEqual(
            pages.flat().map((user) => user.id),
            ids,
          );
          assert.deepEqual(
            pages[0]?.[0],
            users.find((user) => user.id === ids[0]),
          );
        } finally {
          await listed.close();
          await fresh.drop();
        }
      });
    });

    describe("findUsers()", () => {
      it("filters by key substring (wildcards taken literally), role and disabled state, paging in key order", async () => {
        const fresh = await createDatabase();
        const listed = openStore({ url: fresh.url });
        try {
          await listed.migrate();
          const named = (key: string, overrides: Partial<UserRecord> = {}) =>
            aUser({ username: key, usernameKey: key, ...overrides });
          const users = [
            named("ann-01", { roles: ["user", "admin"] }),
            named("ann-02", { disabledAt: at(HOUR) }),
            named("ann_03", { roles: ["admin_x", "ADMIN"] }),
            named("bob-04", { roles: ["admin"], disabledAt: at(2 * HOUR) }),
            named("bnn-05"),
            named("carl%06"),
          ];
          for (const user of users) assert.equal(await listed.createUser(user), true);
          const keys = async (query: Partial<UserQuery>) =>
            (await listed.findUsers({ afterKey: null, limit: 100, ...query })).map((user) => user.usernameKey);

          assert.deepEqual(await keys({}), ["ann-01", "ann-02", "ann_03", "bnn-05", "bob-04", "carl%06"]);
          assert.deepEqual(await keys({ keyContains: "nn" }), ["ann-01", "ann-02", "ann_03", "bnn-05"]);
          assert.deepEqual(await keys({ keyContains: "n_" }), ["ann_03"], "_ is no wildcard");
          assert.deepEqual(await keys({ keyContains: "%" }), ["carl%06"], "% is no wildcard");
          assert.deepEqual(await keys({ keyContains: "ANN" }), [], "compared byte for byte");
          assert.deepEqual(await keys({ role: "admin" }), ["ann-01", "bob-04"], "admin_x and ADMIN are other roles");
          assert.deepEqual(await keys({ role: "admin_x" }), ["ann_03"]);
          assert.deepEqual(await keys({ disabled: true }), ["ann-02", "bob-04"]);
          assert.deepEqual(await keys({ disabled: false, keyContains: "ann" }), ["ann-01", "ann_03"]);
          assert.deepEqual(await keys({ role: "admin", disabled: true }), ["bob-04"]);

          const pages: string[][] = [];
          for (let afterKey: string | null = null; ; ) {
            const page = await listed.findUsers({ afterKey, limit: 2, keyContains: "n" });
            pages.push(page.map((user) => user.usernameKey));
            if (page.length < 2) break;
            afterKey = page.at(-1)!.usernameKey;
          }
          assert.deepEqual(pages, [["ann-01", "ann-02"], ["ann_03", "bnn-05"], []]);
          const [second] = await listed.findUsers({ afterKey: "ann-01", limit: 1 });
          assert.deepEqual(second, users[1], "whole records, disabledAt to the millisecond");
        } finally {
          await listed.close();
          await fresh.drop();
        }
      });
    });

    describe("disableUser() and enableUser()", () => {
      it("disables once and enables once; each answers false when there is nothing to change", async () => {
        const user = aUser();
        await store.createUser(user);
        assert.equal(await store.enableUser(user.id), false, "not disabled");
        assert.equal(await store.disableUser(user.id, at(HOUR)), true);
        assert.equal(await other.disableUser(user.id, at(2 * HOUR)), false, "already disabled");
        assert.deepEqual((await store.findUserById(user.id))?.disabledAt, at(HOUR));
        assert.equal(await store.enableUser(user.id), true);
        assert.equal(await other.enableUser(user.id), false);
        assert.equal((await store.findUserById(user.id))?.disabledAt, null);
        assert.equal(await store.disableUser(randomUUID(), at(HOUR)), false);
        assert.equal(await store.enableUser(randomUUID()), false);
      });

      it("shows the disabled mark on the user a refresh token finds", async () => {
        const { user, token } = await seedSession(store);
        await store.disableUser(user.id, at(HOUR));
        assert.deepEqual((await store.findRefreshToken(token.tokenHash))?.user.disabledAt, at(HOUR));
      });
    });

    describe("setPasswordHash()", () => {
      it("replaces the hash; false for an unknown user", async () => {
        const user = aUser();
        await store.createUser(user);
        const hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA";
        assert.equal(await store.setPasswordHash(user.id, hash), true);
        assert.equal((await store.findUserById(user.id))?.passwordHash, hash);
        assert.equal(await store.setPasswordHash(randomUUID(), hash), false);
      });

      it("given the expected hash, replaces only that one: of two changes from one hash, one wins", async () => {
        const user = aUser();
        await store.createUser(user);
        const [first, second] = ["Zmlyc3Q", "c2Vjb25k"].map((salt) => `$argon2id$v=19$m=19456,t=2,p=1$${salt}$aGFzaA`);
        const outcomes = await Promise.all([
          store.setPasswordHash(user.id, first!, user.passwordHash),
          store.setPasswordHash(user.id, second!, user.passwordHash),
        ]);
        assert.deepEqual(outcomes.filter(Boolean).length, 1);
        const stored = (await store.findUserById(user.id))?.passwordHash;
        assert.equal(stored, outcomes[0] ? first : second);
        assert.equal(await store.setPasswordHash(user.id, user.passwordHash, user.passwordHash), false);
        assert.equal((await store.findUserById(user.id))?.passwordHash, stored);
      });
    });

    describe("deleteUser()", () => {
      it("deletes the user, sessions and tokens, scrubs their audit events and keeps sessions in the feed", async () => {
        const { user, session: open, token } = await seedSession(store);
        const revoked = aSession(user.id, { revokedAt: at(HOUR), revokedReason: "logout" });
        const revokedToken = aToken(revoked.id);
        await store.createSession(revoked, revokedToken);
        const { user: bystander, session: theirs } = await seedSession(store);
        const event = (userId: string) => ({
          id: randomUUID(),
          type: "login_succeeded",
          userId,
          sessionId: null,
          ip: "198.51.100.7",
          userAgent: "agent/1",
          details: { reason: "user" },
          createdAt: at(HOUR),
        });
        const mine = event(user.id);
        const kept = event(bystander.id);
        await store.insertAuditEvent(mine);
        await store.insertAuditEvent(kept);

        assert.equal(await store.deleteUser(user.id, at(2 * HOUR)), true);
        assert.equal(await store.findUserById(user.id), null);
        assert.equal(await store.findUserByUsername(user.usernameKey), null);
        assert.equal(await store.findSession(open.id), null);
        assert.equal(await store.findSession(revoked.id), null);
        assert.equal(await store.findRefreshToken(token.tokenHash), null);
        assert.equal(await store.findRefreshToken(revokedToken.tokenHash), null);
        assert.deepEqual(await store.listAuditEvents({ userId: user.id }, null, 10), [
          { ...mine, ip: null, userAgent: null },
        ]);
        assert.deepEqual(await store.listAuditEvents({ userId: bystander.id }, null, 10), [kept]);
        assert.ok(await store.findSession(theirs.id));

        const feed = (await store.listRevokedSessions(at(HOUR))).filter((row) => row.id !== theirs.id);
        assert.deepEqual(
          feed.filter((row) => row.id === open.id || row.id === revoked.id),
          [
            { id: revoked.id, revokedAt: at(HOUR) },
            { id: open.id, revokedAt: at(2 * HOUR) },
          ],
        );
        assert.equal(await other.deleteUser(user.id, at(3 * HOUR)), false);
        assert.equal(await store.createUser({ ...user, id: randomUUID() }), true, "the name is free again");
      });

      it("lets deleteExpired() drop the feed's entries of deleted sessions once they are old", async () => {
        const fresh = await createDatabase();
        const purged = openStore({ url: fresh.url });
        try {
          await purged.migrate();
          const { user, session } = await seedSession(purged);
          await purged.deleteUser(user.id, at(HOUR));
          assert.deepEqual(await purged.deleteExpired(at(HOUR), 10), { refreshTokens: 0, sessions: 0 });
          assert.deepEqual(await purged.listRevokedSessions(at(HOUR)), [{ id: session.id, revokedAt: at(HOUR) }]);
          assert.deepEqual(await purged.deleteExpired(at(HOUR + 1), 10), { refreshTokens: 0, sessions: 1 });
          assert.deepEqual(await purged.listRevokedSessions(at(0)), []);
        } finally {
          await purged.close();
          await fresh.drop();
        }
      });
    });

    describe("changeUsernameKey()", () => {
      it("changes the key while it is still the expected one", async () => {
        const user = aUser({ usernameKey: `straße-${randomBytes(4).toString("hex")}` });
        await store.createUser(user);
        const key = user.usernameKey.replace("ß", "ss");
        assert.equal(await store.changeUsernameKey(user.id, user.usernameKey, key), true);
        assert.equal((await store.findUserByUsername(key))?.id, user.id);
        assert.equal(await store.findUserByUsername(user.usernameKey), null);
        assert.equal(await other.changeUsernameKey(user.id, user.usernameKey, `${key}-again`), false);
        assert.equal((await store.findUserById(user.id))?.usernameKey, key);
      });

      it("returns false and changes nothing when another user has the new key", async () => {
        const holder = aUser();
        const later = aUser();
        await store.createUser(holder);
        await store.createUser(later);
        assert.equal(await store.changeUsernameKey(later.id, later.usernameKey, holder.usernameKey), false);
        assert.equal((await store.findUserById(later.id))?.usernameKey, later.usernameKey);
        assert.equal((await store.findUserByUsername(holder.usernameKey))?.id, holder.id);
      });

      it("returns false for an unknown user", async () => {
        assert.equal(await store.changeUsernameKey(randomUUID(), "nobody", "nobody-else"), false);
      });
    });

    describe("createSession() and findRefreshToken()", () => {
      it("stores the session with its first token; the token hash finds token, session and user", async () => {
        const { user, session, token } = await seedSession(store);
        assert.deepEqual(await store.findSession(session.id), session);
        const { readAt, ...found } = (await store.findRefreshToken(token.tokenHash))!;
        // The refresh lookup reads the columns a token needs, not the user's email address.
        const { email: _email, emailKey: _emailKey, emailVerifiedAt: _verified, emailSetAt: _set, ...tokenUser } = user;
        assert.deepEqual(found, { token, session, user: tokenUser });
        assert.ok(Math.abs(readAt.getTime() - Date.now()) < 60_000, "readAt is the database's clock");
      });

      it("answers null for an unknown hash or session", async () => {
        assert.equal(await store.findRefreshToken(randomBytes(32).toString("hex")), null);
        assert.equal(await store.findSession(randomUUID()), null);
      });

      it("writes nothing when the first token cannot be stored", async () => {
        const { token } = await seedSession(store);
        const user = aUser();
        await store.createUser(user);
        const session = aSession(user.id);
        await assert.rejects(store.createSession(session, aToken(session.id, { tokenHash: token.tokenHash })));
        assert.equal(await store.findSession(session.id), null);
      });
    });

    describe("timestamps", () => {
      it("round-trip to the millisecond in UTC whatever the process and session time zones", async () => {
        assert.equal(new Date(2026, 0, 1).getTimezoneOffset(), -825, "the test runs in Pacific/Chatham");
        const user = aUser({ createdAt: new Date("2026-04-05T02:44:59.001Z") });
        await store.createUser(user);
        const session = aSession(user.id, {
          createdAt: new Date("2026-09-26T14:00:00.999Z"),
          lastUsedAt: new Date("2026-12-31T23:59:59.999Z"),
          expiresAt: new Date("2027-01-01T00:00:00.000Z"),
          idleExpiresAt: new Date("2026-03-29T01:30:00.123Z"),
          revokedAt: new Date("2026-06-30T12:00:00.500Z"),
          revokedReason: "test",
        });
        const token = aToken(session.id, {
          createdAt: new Date("2026-01-01T00:00:00.007Z"),
          usedAt: new Date("2026-02-28T23:59:59.990Z"),
        });
        await store.createSession(session, token);
        assert.deepEqual(await store.findUserById(user.id), user);
        assert.deepEqual(await store.findSession(session.id), session);
        assert.deepEqual((await other.findRefreshToken(token.tokenHash))?.token, token);
      });

      it("are stored as UTC, as a client in another zone reads them", async () => {
        const { session } = await seedSession(store, { createdAt: new Date("2026-05-06T07:08:09.012Z") });
        const id = `'${session.id}'`;
        switch (database.kind) {
          case "postgres": {
            const [row] = await queryRows(
              database,
              `select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') as utc, current_setting('TimeZone') as zone from sessions where id = ${id}`,
              "set time zone 'Asia/Kolkata'",
            );
            assert.deepEqual(row, { utc: "2026-05-06 07:08:09.012", zone: "Asia/Kolkata" });
            break;
          }
          case "mysql": {
            const [row] = await queryRows(
              database,
              `select created_at as stored, @@session.time_zone as zone from sessions where id = ${id}`,
              "set time_zone = '+05:30'",
            );
            assert.deepEqual(row, { stored: "2026-05-06 07:08:09.012", zone: "+05:30" });
            break;
          }
          case "sqlite": {
            const [row] = await queryRows(database, `select created_at as stored from sessions where id = ${id}`);
            assert.deepEqual(row, { stored: "2026-05-06T07:08:09.012Z" });
            break;
          }
        }
      });
    });

    describe("rotateRefreshToken()", () => {
      it("wins once: marks the token used, stores the successor and advances the session", async () => {
        const { session, token } = await seedSession(store);
        const now = at(HOUR);
        const successor = aToken(session.id, { parentId: token.id, createdAt: now, expiresAt: at(73 * HOUR) });
        const before = (await store.findRefreshToken(token.tokenHash))!.readAt;
        assert.equal(
          await store.rotateRefreshToken({ presentedId: token.id, sessionId: session.id, successor, now }),
          true,
        );
        const presented = await store.findRefreshToken(token.tokenHash);
        // usedAt is the database's clock, between two reads of it.
        const usedAt = presented?.token.usedAt?.getTime() ?? Number.NaN;
        assert.ok(
          before.getTime() <= usedAt && usedAt <= presented!.readAt.getTime(),
          "usedAt is the database's clock",
        );
        assert.deepEqual(presented?.session.lastUsedAt, now);
        assert.deepEqual(presented?.session.idleExpiresAt, successor.expiresAt);
        assert.deepEqual(await store.findSuccessor(token.id), successor);
        assert.deepEqual((await store.findRefreshToken(successor.tokenHash))?.token, successor);
      });

      it("loses on a second call for the same token and writes nothing", async () => {
        const { session, token } = await seedSession(store);
        const first = aToken(session.id, { parentId: token.id, createdAt: at(HOUR) });
        const second = aToken(session.id, { parentId: token.id, createdAt: at(2 * HOUR) });
        assert.equal(
          await store.rotateRefreshToken({
            presentedId: token.id,
            sessionId: session.id,
            successor: first,
            now: at(HOUR),
          }),
          true,
        );
        const usedAt = (await store.findRefreshToken(token.tokenHash))?.token.usedAt;
        assert.ok(usedAt);
        assert.equal(
          await other.rotateRefreshToken({
            presentedId: token.id,
            sessionId: session.id,
            successor: second,
            now: at(2 * HOUR),
          }),
          false,
        );
        assert.equal(await store.findRefreshToken(second.tokenHash), null);
        assert.deepEqual((await store.findRefreshToken(token.tokenHash))?.token.usedAt, usedAt);
        assert.deepEqual((await store.findSession(session.id))?.lastUsedAt, at(HOUR));
      });

      it("loses when the session is revoked, leaving token and session untouched", async () => {
        const { session, token } = await seedSession(store);
        assert.equal(await store.revokeSession(session.id, at(1000), "admin"), true);
        const successor = aToken(session.id, { parentId: token.id });
        assert.equal(
          await store.rotateRefreshToken({ presentedId: token.id, sessionId: session.id, successor, now: at(HOUR) }),
          false,
        );
        assert.equal((await store.findRefreshToken(token.tokenHash))?.token.usedAt, null);
        assert.equal(await store.findSuccessor(token.id), null);
        assert.deepEqual((await store.findSession(session.id))?.lastUsedAt, T0);
      });

      it("has exactly one winner among concurrent calls from two instances", async () => {
        const { session, token } = await seedSession(store);
        const successors = Array.from({ length: 12 }, () =>
          aToken(session.id, { parentId: token.id, createdAt: at(HOUR) }),
        );
        const results = await Promise.all(
          successors.map((successor, i) =>
            (i % 2 === 0 ? store : other).rotateRefreshToken({
              presentedId: token.id,
              sessionId: session.id,
              successor,
              now: at(HOUR),
            }),
          ),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = successors[results.indexOf(true)]!;
        assert.deepEqual(await store.findSuccessor(token.id), winner);
        const [row] = await queryRows(
          database,
          `select count(*) as n from refresh_tokens where parent_id = '${token.id}'`,
        );
        assert.equal(Number(row?.n), 1);
      });
    });

    describe("findSuccessor()", () => {
      it("answers null for a token that was never rotated", async () => {
        const { token } = await seedSession(store);
        assert.equal(await store.findSuccessor(token.id), null);
      });
    });

    describe("refresh_tokens.parent_id", () => {
      it("is unique: a token can have at most one successor", async () => {
        const { session, token } = await seedSession(store);
        const child = aSession(session.userId);
        await store.createSession(child, aToken(child.id, { parentId: token.id }));
        const again = aSession(session.userId);
        await assert.rejects(store.createSession(again, aToken(again.id, { parentId: token.id })));
        assert.equal(await store.findSession(again.id), null);
      });
    });

    describe("listActiveSessions()", () => {
      it("lists open sessions newest first, leaving out revoked, expired and idle-expired ones", async () => {
        const now = at(10 * HOUR);
        const user = aUser();
        await store.createUser(user);
        const make = async (overrides: Partial<SessionRecord>) => {
          const session = aSession(user.id, overrides);
          await store.createSession(session, aToken(session.id));
          return session;
        };
        const older = await make({ createdAt: at(HOUR) });
        const newer = await make({ createdAt: at(2 * HOUR) });
        await make({ revokedAt: at(3 * HOUR), revokedReason: "logout" });
        await make({ expiresAt: now });
        await make({ idleExpiresAt: at(9 * HOUR) });
        await seedSession(store);
        assert.deepEqual(
          (await store.listActiveSessions(user.id, now)).map((s) => s.id),
          [newer.id, older.id],
        );
      });
    });

    describe("revokeSession()", () => {
      it("revokes once with time and reason; a second call returns false and keeps the first", async () => {
        const { session } = await seedSession(store);
        assert.equal(await store.revokeSession(session.id, at(HOUR), "logout"), true);
        assert.equal(await store.revokeSession(session.id, at(2 * HOUR), "user"), false);
        const stored = await store.findSession(session.id);
        assert.deepEqual([stored?.revokedAt, stored?.revokedReason], [at(HOUR), "logout"]);
        assert.equal(await store.revokeSession(randomUUID(), at(HOUR), "logout"), false);
      });
    });

    describe("revokeUserSessions() and listRevokedSessions()", () => {
      it("revokes every open session of the user and returns exactly their ids", async () => {
        const { user, session: first } = await seedSession(store);
        const second = aSession(user.id);
        await store.createSession(second, aToken(second.id));
        const earlier = aSession(user.id);
        await store.createSession(earlier, aToken(earlier.id));
        await store.revokeSession(earlier.id, at(HOUR), "logout");
        const { session: stranger } = await seedSession(store);

        const revoked = await store.revokeUserSessions(user.id, at(5 * HOUR), "logout_all");
        assert.deepEqual([...revoked].sort(), [first.id, second.id].sort());
        assert.deepEqual(await store.revokeUserSessions(user.id, at(6 * HOUR), "logout_all"), []);
        assert.equal((await store.findSession(stranger.id))?.revokedAt, null);
        assert.equal((await store.findSession(earlier.id))?.revokedReason, "logout");

        const ours = new Set([first.id, second.id, earlier.id]);
        const since = (await store.listRevokedSessions(at(5 * HOUR))).filter((row) => ours.has(row.id));
        assert.deepEqual(since.map((row) => row.id).sort(), [first.id, second.id].sort());
        for (const row of since) assert.equal(row.revokedAt.getTime(), at(5 * HOUR).getTime());
        const all = await store.listRevokedSessions(at(HOUR));
        assert.deepEqual(
          all.find((row) => row.id === earlier.id),
          { id: earlier.id, revokedAt: at(HOUR) },
          "exact revocation time",
        );
        const times = all.map((row) => row.revokedAt.getTime());
        assert.deepEqual(
          times,
          [...times].sort((a, b) => a - b),
          "oldest revocation first",
        );
        assert.ok((await store.listRevokedSessions(at(5 * HOUR + 1))).every((row) => !ours.has(row.id)));
      });
    });

    describe("revokeUserSessions() with a session to keep", () => {
      it("revokes every other open session of the user and leaves the kept one open", async () => {
        const { user, session: kept } = await seedSession(store);
        const other = aSession(user.id);
        await store.createSession(other, aToken(other.id));
        const { session: stranger } = await seedSession(store);

        assert.deepEqual(await store.revokeUserSessions(user.id, at(HOUR), "password_changed", kept.id), [other.id]);
        assert.equal((await store.findSession(kept.id))?.revokedAt, null);
        assert.equal((await store.findSession(other.id))?.revokedReason, "password_changed");
        assert.equal((await store.findSession(stranger.id))?.revokedAt, null);
        assert.deepEqual(await store.revokeUserSessions(user.id, at(HOUR), "password_changed", kept.id), []);
      });
    });

    describe("revokeUserSessions() under concurrency", () => {
      it("reports each revoked session to exactly one of two racing calls", async () => {
        const { user, session } = await seedSession(store);
        const ids = [session.id];
        for (let i = 0; i < 5; i += 1) {
          const more = aSession(user.id);
          await store.createSession(more, aToken(more.id));
          ids.push(more.id);
        }
        const [one, two] = await Promise.all([
          store.revokeUserSessions(user.id, at(HOUR), "logout_all"),
          store.revokeUserSessions(user.id, at(HOUR), "logout_all"),
        ]);
        assert.deepEqual([...one, ...two].sort(), [...ids].sort());
      });
    });

    describe("ensureSetting()", () => {
      it("keeps the first value stored, even under concurrent calls from two instances", async () => {
        const name = `setting-${randomBytes(4).toString("hex")}`;
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 ? store : other).ensureSetting(name, `value-${i}`)),
        );
        assert.equal(new Set(results).size, 1);
        assert.match(results[0]!, /^value-\d$/);
        assert.equal(await store.ensureSetting(name, "later"), results[0]);
      });
    });

    describe("findSetting()", () => {
      it("answers the stored value, or null when there is none", async () => {
        const name = `setting-${randomBytes(4).toString("hex")}`;
        assert.equal(await store.findSetting(name), null);
        await store.ensureSetting(name, "stored");
        assert.equal(await other.findSetting(name), "stored");
      });
    });

    describe("signing keys", () => {
      // A database of its own: which key is current is state these tests share with no other.
      let keysDatabase: TestDatabase;
      let a: Store;
      let b: Store;
      before(async () => {
        keysDatabase = await createDatabase();
        a = openStore({ url: keysDatabase.url });
        b = openStore({ url: keysDatabase.url });
        await a.migrate();
      });
      after(async () => {
        await a?.close();
        await b?.close();
        await keysDatabase?.drop();
      });

      const aKey = (createdAt: Date): SigningKeyRecord => {
        const kid = `kid-${randomBytes(6).toString("hex")}`;
        return {
          kid,
          alg: "ES256",
          publicKey: `{"kty":"EC","kid":"${kid}"}`,
          privateKeySealed: `sealed-${kid}`,
          encryption: "secret",
          createdAt,
          retiredAt: null,
          current: true,
          state: "current",
          activatesAt: createdAt,
        };
      };
      const currentKids = async () => (await a.listSigningKeys()).filter((key) => key.current).map((key) => key.kid);

      it("elects one current key when instances store their first key at once; the others write nothing", async () => {
        const candidates = Array.from({ length: 6 }, () => aKey(T0));
        const won = await Promise.all(candidates.map((key, i) => (i % 2 ? a : b).replaceCurrentSigningKey(key, null)));
        assert.equal(won.filter(Boolean).length, 1);
        const winner = candidates[won.indexOf(true)]!;
        assert.deepEqual(await a.listSigningKeys(), [winner]);
        assert.equal(await b.replaceCurrentSigningKey(aKey(at(HOUR)), null), false, "a current key exists");
      });

      it("replaces the expected current key once, retiring it at the new key's creation", async () => {
        const [previous] = await currentKids();
        const candidates = [aKey(at(2 * HOUR)), aKey(at(2 * HOUR)), aKey(at(2 * HOUR))];
        const won = await Promise.all(
          candidates.map((key, i) => (i % 2 ? a : b).replaceCurrentSigningKey(key, previous!)),
        );
        assert.equal(won.filter(Boolean).length, 1);
        const winner = candidates[won.indexOf(true)]!;
        const keys = await a.listSigningKeys();
        assert.deepEqual(
          keys.map(({ kid, retiredAt, current }) => ({ kid, retiredAt, current })),
          [
            { kid: previous, retiredAt: at(2 * HOUR), current: false },
            { kid: winner.kid, retiredAt: null, current: true },
          ],
        );
        assert.equal(await a.replaceCurrentSigningKey(aKey(at(3 * HOUR)), previous!), false, "a stale expectation");
        assert.deepEqual(await currentKids(), [winner.kid]);
      });

      it("retires keys stored beside the current one (by earlier versions) when it is replaced", async () => {
        const [previous] = await currentKids();
        const legacy = aKey(at(3 * HOUR));
        const stamp = (date: Date) =>
          keysDatabase.kind === "mysql" ? date.toISOString().replace("T", " ").replace("Z", "") : date.toISOString();
        await queryRows(
          keysDatabase,
          `insert into signing_keys (kid, alg, public_key, private_key_sealed, encryption, created_at)
             values ('${legacy.kid}', 'ES256', '{}', 'sealed', 'secret', '${stamp(legacy.createdAt)}')`,
        );
        const next = aKey(at(4 * HOUR));
        assert.equal(await b.replaceCurrentSigningKey(next, previous!), true);
        const retired = (await a.listSigningKeys()).filter((key) => key.kid === legacy.kid || key.kid === previous);
        assert.deepEqual(
          retired.map((key) => key.retiredAt),
          [at(4 * HOUR), at(4 * HOUR)],
        );
        assert.deepEqual(await currentKids(), [next.kid]);
      });

      it("retires a key once; a retired key is no longer current and frees the slot", async () => {
        const [current] = await currentKids();
        await a.retireSigningKey(current!, at(5 * HOUR));
        await b.retireSigningKey(current!, at(6 * HOUR));
        const retired = (await a.listSigningKeys()).find((key) => key.kid === current);
        assert.deepEqual([retired?.retiredAt, retired?.current], [at(5 * HOUR), false]);
        assert.deepEqual(await currentKids(), []);
        const fresh = aKey(at(7 * HOUR));
        assert.equal(await a.replaceCurrentSigningKey(fresh, null), true);
        const keys = await b.listSigningKeys();
        assert.deepEqual(
          keys.map((key) => key.createdAt),
          [...keys.map((key) => key.createdAt)].sort((x, y) => x.getTime() - y.getTime()),
          "oldest first",
        );
        assert.deepEqual(keys.at(-1), fresh);
      });

      it("inserts one next key when instances prepare it at once; it is published, not current", async () => {
        const [current] = await currentKids();
        const candidates = Array.from({ length: 6 }, () => ({ ...aKey(at(8 * HOUR)), activatesAt: at(9 * HOUR) }));
        const won = await Promise.all(candidates.map((key, i) => (i % 2 ? a : b).insertNextSigningKey(key)));
        assert.equal(won.filter(Boolean).length, 1);
        const winner = candidates[won.indexOf(true)]!;
        const stored = (await b.listSigningKeys()).find((key) => key.kid === winner.kid);
        assert.deepEqual(stored, { ...winner, current: false, state: "next" });
        assert.deepEqual(await currentKids(), [current]);
        assert.equal(await a.insertNextSigningKey(aKey(at(8 * HOUR))), false, "a next key exists");
      });

      it("promotes the next key once, retiring the current one at that instant", async () => {
        const [current] = await currentKids();
        const next = (await a.listSigningKeys()).find((key) => key.state === "next")!;
        const won = await Promise.all(
          Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).promoteNextSigningKey(next.kid, current!, at(9 * HOUR))),
        );
        assert.equal(won.filter(Boolean).length, 1);
        const keys = await a.listSigningKeys();
        const byKid = new Map(keys.map((key) => [key.kid, key]));
        assert.deepEqual(
          [byKid.get(current!)?.state, byKid.get(current!)?.retiredAt, byKid.get(next.kid)?.state],
          ["retired", at(9 * HOUR), "current"],
        );
        assert.equal(byKid.get(next.kid)?.activatesAt.getTime(), at(9 * HOUR).getTime());
        assert.equal(await a.promoteNextSigningKey(next.kid, current!, at(10 * HOUR)), false, "already promoted");
      });

      it("retires a pending next key when the current one is replaced at once", async () => {
        const [current] = await currentKids();
        const next = { ...aKey(at(10 * HOUR)), activatesAt: at(11 * HOUR) };
        assert.equal(await a.insertNextSigningKey(next), true);
        const replacement = aKey(at(10 * HOUR));
        assert.equal(await b.replaceCurrentSigningKey(replacement, current!), true);
        const stored = (await a.listSigningKeys()).find((key) => key.kid === next.kid);
        assert.deepEqual([stored?.state, stored?.retiredAt], ["retired", at(10 * HOUR)]);
        assert.deepEqual(await currentKids(), [replacement.kid]);
      });

      it("deletes keys retired before a cutoff, never the current or next key", async () => {
        const deleted = await a.deleteRetiredSigningKeys(at(9 * HOUR + 1));
        assert.ok(deleted >= 1, `deleted ${deleted}`);
        const keys = await b.listSigningKeys();
        assert.ok(
          keys.every((key) => key.retiredAt === null || key.retiredAt >= at(9 * HOUR + 1)),
          "only keys retired since the cutoff are left",
        );
        assert.equal(keys.filter((key) => key.state === "current").length, 1);
        assert.equal(await a.deleteRetiredSigningKeys(at(9 * HOUR + 1)), 0);
      });
    });

    describe("audit events", () => {
      const auditEvent = (overrides: Partial<AuditEventRecord> = {}): AuditEventRecord => ({
        id: randomUUID(),
        type: "login_succeeded",
        userId: null,
        sessionId: null,
        ip: "198.51.100.7",
        userAgent: null,
        details: null,
        createdAt: T0,
        ...overrides,
      });
      const ids = (events: readonly AuditEventRecord[]) => events.map((event) => event.id);
      const newestFirst = (events: readonly AuditEventRecord[]) =>
        [...events].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1));

      it("stores events and lists them newest first by user, session, types and time, with a limit", async () => {
        const { user, session } = await seedSession(store);
        const event = (n: number, type: string, details: Record<string, unknown> | null, sessionId: string | null) =>
          auditEvent({ type, userId: user.id, sessionId, details, createdAt: at(n * 1000) });
        const events = [
          event(1, "login_succeeded", { reason: "logout", count: 2 }, session.id),
          event(2, "login_failed", null, null),
          event(3, "token_refreshed", { nested: { ok: true } }, session.id),
          event(4, "logout", null, session.id),
        ];
        await store.insertAuditEvent(events[0]!);
        await store.insertAuditEvents(events.slice(1));
        const [e1, e2, e3, e4] = events;
        assert.deepEqual(await store.listAuditEvents({ userId: user.id }, null, 10), [e4, e3, e2, e1]);
        assert.deepEqual(await store.listAuditEvents({ sessionId: session.id }, null, 10), [e4, e3, e1]);
        assert.deepEqual(await store.listAuditEvents({ userId: user.id }, null, 1), [e4]);
        assert.deepEqual(
          await store.listAuditEvents({ userId: user.id, types: ["login_failed", "logout"] }, null, 10),
          [e4, e2],
        );
        assert.deepEqual(
          await store.listAuditEvents({ userId: user.id, since: at(2000), until: at(4000) }, null, 10),
          [e3, e2],
          "since is inclusive, until exclusive",
        );
        assert.deepEqual(await store.listAuditEvents({ userId: randomUUID() }, null, 10), []);
      });

      it("writes a batch larger than one statement's rows", async () => {
        const userId = randomUUID();
        const events = Array.from({ length: AUDIT_INSERT_ROWS * 2 + 3 }, (_, n) =>
          auditEvent({ userId, createdAt: at(n), details: { n } }),
        );
        await store.insertAuditEvents(events);
        const listed = await store.listAuditEvents({ userId }, null, events.length + 1);
        assert.deepEqual(ids(listed), ids(newestFirst(events)));
        assert.deepEqual(listed.at(-1)?.details, { n: 0 });
      });

      it("pages by cursor through events sharing timestamps, each event once, whatever is written meanwhile", async () => {
        const userId = randomUUID();
        // Five events per millisecond: only the id tells them apart.
        const events = Array.from({ length: 23 }, (_, n) => auditEvent({ userId, createdAt: at(Math.floor(n / 5)) }));
        await store.insertAuditEvents(events);
        const seen: AuditEventRecord[] = [];
        let after: AuditEventCursor | null = null;
        for (let page = 0; page < 20; page += 1) {
          const rows: AuditEventRecord[] = await other.listAuditEvents({ userId }, after, 4);
          seen.push(...rows);
          if (rows.length < 4) break;
          const last: AuditEventRecord = rows.at(-1)!;
          after = { createdAt: last.createdAt, id: last.id };
          // A newer event written between pages never shows up in later pages.
          await store.insertAuditEvent(auditEvent({ userId, createdAt: at(HOUR + page) }));
        }
        assert.deepEqual(ids(seen), ids(newestFirst(events)));
      });

      it("deletes events created before a moment, a batch at a time", async () => {
        const old = new Date("2001-03-04T05:06:07.089Z");
        const kept = auditEvent({ createdAt: new Date(old.getTime() + 1000) });
        const expired = Array.from({ length: 5 }, (_, n) => auditEvent({ createdAt: new Date(old.getTime() - n) }));
        await store.insertAuditEvents([...expired, kept]);
        const cutoff = new Date(old.getTime() + 1);
        assert.equal(await store.deleteAuditEvents(cutoff, 2), 2);
        assert.equal(await store.deleteAuditEvents(cutoff, 2), 2);
        assert.equal(await store.deleteAuditEvents(cutoff, 2), 1);
        assert.equal(await store.deleteAuditEvents(cutoff, 2), 0);
        const left = await store.listAuditEvents({ until: new Date("2002-01-01T00:00:00Z") }, null, 10);
        assert.deepEqual(ids(left), [kept.id]);
      });
    });

    describe("deleteExpired()", () => {
      it("deletes expired tokens and ended sessions in batches of at most batchSize, keeping live rows", async () => {
        const fresh = await createDatabase();
        const purged = openStore({ url: fresh.url });
        try {
          await purged.migrate();
          const cutoff = at(60 * HOUR);
          const past = at(50 * HOUR);
          // A live session whose first token expired after it was rotated.
          const live = await seedSession(purged, {}, { expiresAt: past });
          const liveSuccessor = aToken(live.session.id, { parentId: live.token.id, expiresAt: at(1000 * HOUR) });
          assert.equal(
            await purged.rotateRefreshToken({
              presentedId: live.token.id,
              sessionId: live.session.id,
              successor: liveSuccessor,
              now: at(HOUR),
            }),
            true,
          );
          // Ended sessions: absolute expiry, idle expiry, revoked before the cutoff; one more revoked after it.
          const ended = [
            await seedSession(purged, { expiresAt: past }, { expiresAt: past }),
            await seedSession(purged, { idleExpiresAt: past }, { expiresAt: past }),
            await seedSession(purged, { revokedAt: past, revokedReason: "logout" }),
            await seedSession(purged, { revokedAt: past, revokedReason: "logout" }, { expiresAt: past }),
          ];
          const recentlyRevoked = await seedSession(purged, { revokedAt: at(61 * HOUR), revokedReason: "logout" });

          const batches = [];
          for (let i = 0; i < 10; i += 1) {
            const batch = await purged.deleteExpired(cutoff, 2);
            batches.push(batch);
            // At most 2 expired tokens, plus the one token of each of at most 2 ended sessions.
            assert.ok(batch.refreshTokens <= 4 && batch.sessions <= 2, `batch ${JSON.stringify(batch)} is too large`);
            if (batch.refreshTokens === 0 && batch.sessions === 0) break;
          }
          assert.deepEqual(batches.at(-1), { refreshTokens: 0, sessions: 0 });
          assert.equal(batches[0]?.sessions, 2);
          assert.ok(batches[0].refreshTokens >= 2);
          // 4 ended sessions with one token each, and the expired first token of the live session.
          assert.deepEqual(
            batches.reduce((sum, b) => ({
              refreshTokens: sum.refreshTokens + b.refreshTokens,
              sessions: sum.sessions + b.sessions,
            })),
            { refreshTokens: 5, sessions: 4 },
          );
          for (const { session, token } of ended) {
            assert.equal(await purged.findSession(session.id), null);
            assert.equal(await purged.findRefreshToken(token.tokenHash), null);
          }
          assert.equal(
            await purged.findRefreshToken(live.token.tokenHash),
            null,
            "the expired token of a live session goes",
          );
          assert.ok(await purged.findRefreshToken(liveSuccessor.tokenHash), "its live successor stays");
          assert.ok(await purged.findSession(live.session.id));
          assert.ok(await purged.findRefreshToken(recentlyRevoked.token.tokenHash));
        } finally {
          await purged.close();
          await fresh.drop();
        }
      });
    });

    describe("email addresses and one-time tokens", () => {
      const aOneTimeToken = (userId: string, overrides: Partial<OneTimeTokenRecord> = {}): OneTimeTokenRecord => ({
        id: randomUUID(),
        userId,
        purpose: "password_reset",
        tokenHash: randomBytes(32).toString("hex"),
        boundTo: "fingerprint",
        createdAt: at(0),
        expiresAt: at(HOUR / 2),
        usedAt: null,
        ...overrides,
      });

      it("sets, finds by key, verifies and clears an address; a key belongs to one user", async () => {
        const user = aUser();
        const rival = aUser();
        await store.createUser(user);
        await store.createUser(rival);
        const key = `${user.id}@example.test`;
        assert.equal(await store.setUserEmail(user.id, { email: `Mixed.${key}`, emailKey: key, setAt: at(0) }), true);
        assert.equal(await store.setUserEmail(rival.id, { email: key, emailKey: key, setAt: at(0) }), false, "taken");
        const nobody = { email: "x@example.test", emailKey: "x@example.test", setAt: at(0) };
        assert.equal(await store.setUserEmail(randomUUID(), nobody), false);
        assert.equal(await store.setUserEmail(randomUUID(), { ...nobody, releaseUnverifiedBefore: at(0) }), false);
        const found = await store.findUserByEmailKey(key);
        assert.deepEqual(
          [found?.id, found?.email, found?.emailVerifiedAt, found?.emailSetAt?.getTime()],
          [user.id, `Mixed.${key}`, null, at(0).getTime()],
        );
        assert.equal(await store.markEmailVerified(user.id, "other@example.test", at(HOUR)), false, "another key");
        assert.equal(await store.markEmailVerified(user.id, key, at(HOUR)), true);
        assert.equal((await store.findUserById(user.id))?.emailVerifiedAt?.getTime(), at(HOUR).getTime());
        assert.equal(
          await store.setUserEmail(user.id, { email: `new.${key}`, emailKey: `new.${key}`, setAt: at(2 * HOUR) }),
          true,
        );
        const moved = await store.findUserById(user.id);
        assert.equal(moved?.emailVerifiedAt, null, "a new address is unverified");
        assert.equal(moved?.emailSetAt?.getTime(), at(2 * HOUR).getTime());
        assert.equal(await store.setUserEmail(user.id, null), true);
        assert.deepEqual(
          [(await store.findUserById(user.id))?.emailKey, (await store.findUserById(user.id))?.emailSetAt],
          [null, null],
        );
        assert.equal(await store.setUserEmail(rival.id, null), true, "many users without an address");
        assert.equal(await store.findUserByEmailKey(key), null);
      });

      it("releases another user's unverified address set before the cutoff, voiding its tokens, in the same change", async () => {
        const key = `${randomUUID()}@example.test`;
        const stale = aUser();
        const newcomer = aUser();
        await store.createUser(stale);
        await store.createUser(newcomer);
        assert.equal(await store.setUserEmail(stale.id, { email: key, emailKey: key, setAt: at(0) }), true);
        const staleTokens = [
          aOneTimeToken(stale.id, { purpose: "email_verification", expiresAt: at(48 * HOUR) }),
          aOneTimeToken(stale.id, { expiresAt: at(48 * HOUR) }),
        ];
        const newcomerToken = aOneTimeToken(newcomer.id, { purpose: "email_verification", expiresAt: at(48 * HOUR) });
        for (const token of [...staleTokens, newcomerToken]) await store.createOneTimeToken(token);
        const claim = { email: `New.${key}`, emailKey: key, setAt: at(24 * HOUR) };
        // Set at the cutoff itself: not before it, so the address holds.
        assert.equal(await store.setUserEmail(newcomer.id, { ...claim, releaseUnverifiedBefore: at(0) }), false);
        assert.equal(await store.setUserEmail(newcomer.id, claim), false, "without a cutoff every claim holds");
        assert.equal((await store.findUserById(stale.id))?.emailKey, key);
        assert.equal(await store.setUserEmail(newcomer.id, { ...claim, releaseUnverifiedBefore: at(1) }), true);
        const [left, taken] = [await store.findUserById(stale.id), await store.findUserById(newcomer.id)];
        assert.deepEqual(
          [left?.email, left?.emailKey, left?.emailVerifiedAt, left?.emailSetAt],
          [null, null, null, null],
        );
        assert.deepEqual([taken?.email, taken?.emailKey], [`New.${key}`, key]);
        for (const token of staleTokens)
          assert.equal(await store.consumeOneTimeToken(token.tokenHash, token.purpose, at(25 * HOUR)), null, "voided");
        assert.ok(
          await store.consumeOneTimeToken(newcomerToken.tokenHash, "email_verification", at(25 * HOUR)),
          "the newcomer's own links are untouched",
        );
      });

      it("keeps when an unverified address was first set when it is set again, so its claim still runs out", async () => {
        const key = `${randomUUID()}@example.test`;
        const [holder, newcomer] = [aUser(), aUser()];
        for (const user of [holder, newcomer]) await store.createUser(user);
        assert.equal(await store.setUserEmail(holder.id, { email: key, emailKey: key, setAt: at(0) }), true);
        const again = { email: `Again.${key}`, emailKey: key, setAt: at(23 * HOUR) };
        assert.equal(await store.setUserEmail(holder.id, { ...again, releaseUnverifiedBefore: at(-HOUR) }), true);
        const kept = await store.findUserById(holder.id);
        assert.deepEqual(
          [kept?.email, kept?.emailVerifiedAt, kept?.emailSetAt?.getTime()],
          [`Again.${key}`, null, at(0).getTime()],
          "the address as given this time, still set at 0",
        );
        const claim = { email: key, emailKey: key, setAt: at(24 * HOUR + 1000), releaseUnverifiedBefore: at(1000) };
        assert.equal(await store.setUserEmail(newcomer.id, claim), true, "the first setting's window has run out");
        assert.equal((await store.findUserById(holder.id))?.emailKey, null);
      });

      it("restarts the clock for another address, and for the user's own once it is verified", async () => {
        const [first, second] = [`a-${randomUUID()}@example.test`, `b-${randomUUID()}@example.test`];
        const user = aUser();
        await store.createUser(user);
        const setAt = async () => (await store.findUserById(user.id))?.emailSetAt?.getTime();
        await store.setUserEmail(user.id, { email: first, emailKey: first, setAt: at(0) });
        await store.setUserEmail(user.id, { email: second, emailKey: second, setAt: at(HOUR) });
        assert.equal(await setAt(), at(HOUR).getTime(), "another address");
        await store.setUserEmail(user.id, { email: first, emailKey: first, setAt: at(2 * HOUR) });
        assert.equal(await setAt(), at(2 * HOUR).getTime(), "back to an earlier address");
        assert.equal(await store.markEmailVerified(user.id, first, at(3 * HOUR)), true);
        await store.setUserEmail(user.id, { email: first, emailKey: first, setAt: at(4 * HOUR) });
        const unverified = await store.findUserById(user.id);
        assert.deepEqual(
          [unverified?.emailVerifiedAt, unverified?.emailSetAt?.getTime()],
          [null, at(4 * HOUR).getTime()],
        );
      });

      it("never releases a verified address, however old, nor an unverified one set after the cutoff", async () => {
        const [verifiedKey, recentKey] = [`v-${randomUUID()}@example.test`, `r-${randomUUID()}@example.test`];
        const [verified, recent, newcomer] = [aUser(), aUser(), aUser()];
        for (const user of [verified, recent, newcomer]) await store.createUser(user);
        await store.setUserEmail(verified.id, { email: verifiedKey, emailKey: verifiedKey, setAt: at(0) });
        assert.equal(await store.markEmailVerified(verified.id, verifiedKey, at(1000)), true);
        await store.setUserEmail(recent.id, { email: recentKey, emailKey: recentKey, setAt: at(10 * HOUR) });
        const token = aOneTimeToken(recent.id, { purpose: "email_verification", expiresAt: at(48 * HOUR) });
        await store.createOneTimeToken(token);
        const cutoff = at(10 * HOUR);
        for (const key of [verifiedKey, recentKey]) {
          const claim = { email: key, emailKey: key, setAt: at(100 * HOUR), releaseUnverifiedBefore: cutoff };
          assert.equal(await store.setUserEmail(newcomer.id, claim), false, key);
          assert.equal(
            await store.createUser(aUser({ email: key, emailKey: key, createdAt: at(100 * HOUR) }), cutoff),
            false,
          );
        }
        assert.equal((await store.findUserById(verified.id))?.emailKey, verifiedKey);
        assert.equal((await store.findUserById(recent.id))?.emailKey, recentKey);
        assert.ok(await store.consumeOneTimeToken(token.tokenHash, "email_verification", at(11 * HOUR)), "links kept");
      });

      it("releases a stale unverified address to a new user in the insert's transaction; a taken username changes nothing", async () => {
        const key = `${randomUUID()}@example.test`;
        const stale = aUser({ email: key, emailKey: key, createdAt: at(0) });
        assert.equal(await store.createUser(stale), true);
        assert.equal((await store.findUserById(stale.id))?.emailSetAt?.getTime(), at(0).getTime(), "set at creation");
        const token = aOneTimeToken(stale.id, { purpose: "email_verification", expiresAt: at(48 * HOUR) });
        await store.createOneTimeToken(token);
        const cutoff = at(HOUR);
        const sameName = aUser({ username: stale.username, usernameKey: stale.usernameKey, email: key, emailKey: key });
        assert.equal(await store.createUser(sameName, cutoff), false);
        assert.equal((await store.findUserById(stale.id))?.emailKey, key, "the rolled-back release kept the address");
        const newcomer = aUser({ email: key, emailKey: key, createdAt: at(25 * HOUR) });
        assert.equal(await store.createUser(newcomer, cutoff), true);
        assert.equal((await store.findUserById(stale.id))?.emailKey, null);
        const taken = await store.findUserByEmailKey(key);
        assert.deepEqual([taken?.id, taken?.emailSetAt?.getTime()], [newcomer.id, at(25 * HOUR).getTime()]);
        assert.equal(await store.consumeOneTimeToken(token.tokenHash, "email_verification", at(25 * HOUR)), null);
      });

      it("lets exactly one of two racing newcomers take a stale address", async () => {
        const key = `${randomUUID()}@example.test`;
        const stale = aUser({ email: key, emailKey: key, createdAt: at(0) });
        const [first, second] = [aUser(), aUser()];
        for (const user of [stale, first, second]) await store.createUser(user);
        const claim = { email: key, emailKey: key, setAt: at(25 * HOUR), releaseUnverifiedBefore: at(HOUR) };
        const results = await Promise.all([store.setUserEmail(first.id, claim), other.setUserEmail(second.id, claim)]);
        assert.equal(results.filter(Boolean).length, 1);
        assert.equal((await store.findUserByEmailKey(key))?.id, results[0] ? first.id : second.id);
      });

      it("leaves a disabled user's token unused and its address unverified when asked for enabled users only", async () => {
        const key = `${randomUUID()}@example.test`;
        const user = aUser({ email: key, emailKey: key });
        await store.createUser(user);
        const token = aOneTimeToken(user.id, { purpose: "email_verification" });
        await store.createOneTimeToken(token);
        await store.disableUser(user.id, at(1000));
        const enabledOnly = { enabledUsersOnly: true };
        assert.equal(
          await store.consumeOneTimeToken(token.tokenHash, "email_verification", at(2000), enabledOnly),
          null,
        );
        assert.equal(await store.markEmailVerified(user.id, key, at(2000)), false, "a disabled user verifies nothing");
        await store.enableUser(user.id);
        assert.ok(
          await store.consumeOneTimeToken(token.tokenHash, "email_verification", at(3000), enabledOnly),
          "still unused",
        );
        assert.equal(await store.markEmailVerified(user.id, key, at(3000)), true);
      });

      it("dates addresses stored before email_set_at existed from the migration", async () => {
        const fresh = await createDatabase();
        const upgraded = openStore({ url: fresh.url });
        try {
          await upgraded.migrate();
          const key = `${randomUUID()}@example.test`;
          const [withAddress, without] = [aUser({ email: key, emailKey: key }), aUser()];
          await upgraded.createUser(withAddress);
          await upgraded.createUser(without);
          await queryRows(fresh, "delete from kysely_migration where name = '0009_email_claims'");
          await queryRows(fresh, "alter table users drop column email_set_at");
          const started = Date.now();
          await upgraded.migrate();
          const setAt = (await upgraded.findUserById(withAddress.id))?.emailSetAt?.getTime() ?? 0;
          assert.ok(setAt >= started - 1000 && setAt <= Date.now() + 1000, "set at the migration");
          assert.equal((await upgraded.findUserById(without.id))?.emailSetAt, null);
        } finally {
          await upgraded.close();
          await fresh.drop();
        }
      });

      it("consumes a token once, for its purpose, before it expires", async () => {
        const user = aUser();
        await store.createUser(user);
        const token = aOneTimeToken(user.id);
        await store.createOneTimeToken(token);
        assert.equal(await store.consumeOneTimeToken(token.tokenHash, "email_verification", at(1000)), null);
        assert.equal(
          await store.consumeOneTimeToken(randomBytes(32).toString("hex"), "password_reset", at(1000)),
          null,
        );
        assert.deepEqual(await store.consumeOneTimeToken(token.tokenHash, "password_reset", at(1000)), {
          ...token,
          usedAt: at(1000),
        });
        assert.equal(await store.consumeOneTimeToken(token.tokenHash, "password_reset", at(2000)), null, "used");
        const late = aOneTimeToken(user.id);
        await store.createOneTimeToken(late);
        assert.equal(await store.consumeOneTimeToken(late.tokenHash, "password_reset", at(HOUR / 2)), null, "expired");
      });

      it("lets exactly one of two racing calls consume a token", async () => {
        const user = aUser();
        await store.createUser(user);
        const token = aOneTimeToken(user.id);
        await store.createOneTimeToken(token);
        const results = await Promise.all([
          store.consumeOneTimeToken(token.tokenHash, "password_reset", at(1000)),
          other.consumeOneTimeToken(token.tokenHash, "password_reset", at(1000)),
        ]);
        assert.equal(results.filter((result) => result !== null).length, 1);
      });

      it("stores a user with its address, unverified, in one insert; a taken username or address inserts nothing", async () => {
        const key = `${randomUUID()}@example.test`;
        const user = aUser({ email: `Pat.${key}`, emailKey: `pat.${key}` });
        assert.equal(await store.createUser(user), true);
        const found = await store.findUserByEmailKey(`pat.${key}`);
        assert.deepEqual([found?.id, found?.email, found?.emailVerifiedAt], [user.id, `Pat.${key}`, null]);
        const sameAddress = aUser({ email: `pat.${key}`, emailKey: `pat.${key}` });
        assert.equal(await store.createUser(sameAddress), false);
        assert.equal(await store.findUserById(sameAddress.id), null, "no user without its address");
        const sameName = aUser({ username: user.username, usernameKey: user.usernameKey, email: key, emailKey: key });
        assert.equal(await store.createUser(sameName), false);
        assert.equal(await store.findUserByEmailKey(key), null, "no address without its user");
      });

      it("voids every unused token of one purpose of one user, and only those", async () => {
        const user = aUser();
        const rival = aUser();
        await store.createUser(user);
        await store.createUser(rival);
        const tokens = [
          aOneTimeToken(user.id, { purpose: "email_verification" }),
          aOneTimeToken(user.id, { purpose: "email_verification" }),
          aOneTimeToken(user.id, { purpose: "password_reset" }),
          aOneTimeToken(rival.id, { purpose: "email_verification" }),
        ];
        for (const token of tokens) await store.createOneTimeToken(token);
        assert.equal(await store.voidOneTimeTokens(user.id, "email_verification", at(1000)), 2);
        assert.equal(await store.voidOneTimeTokens(user.id, "email_verification", at(2000)), 0, "already void");
        const consume = (index: number) =>
          store.consumeOneTimeToken(tokens[index]!.tokenHash, tokens[index]!.purpose, at(3000));
        assert.equal(await consume(0), null);
        assert.equal(await consume(1), null);
        assert.ok(await consume(2), "another purpose keeps working");
        assert.ok(await consume(3), "another user's token keeps working");
      });

      it("deletes spent tokens in batches: used or expired before the cutoff, or of a user that is gone", async () => {
        const fresh = await createDatabase();
        const purged = openStore({ url: fresh.url });
        try {
          await purged.migrate();
          const user = aUser();
          await purged.createUser(user);
          const live = aOneTimeToken(user.id, { expiresAt: at(2 * HOUR) });
          const usedLater = aOneTimeToken(user.id, { expiresAt: at(2 * HOUR) });
          const spent = [
            aOneTimeToken(user.id, { expiresAt: at(HOUR / 2) }),
            aOneTimeToken(user.id, { expiresAt: at(HOUR / 2) }),
            aOneTimeToken(user.id, { expiresAt: at(2 * HOUR) }),
          ];
          for (const token of [live, usedLater, ...spent]) await purged.createOneTimeToken(token);
          assert.ok(await purged.consumeOneTimeToken(spent[2]!.tokenHash, "password_reset", at(1000)));
          assert.ok(await purged.consumeOneTimeToken(usedLater.tokenHash, "password_reset", at(HOUR + 1000)));
          // A token whose user row is gone without deleteUser() (a database that never cascaded).
          const orphanOwner = aUser();
          await purged.createUser(orphanOwner);
          const orphan = aOneTimeToken(orphanOwner.id, { expiresAt: at(2 * HOUR) });
          await purged.createOneTimeToken(orphan);
          // Another client's connection: SQLite enforces the foreign key only where it is switched on.
          await queryRows(fresh, `delete from users where id = '${orphanOwner.id}'`);
          const orphaned = (await queryRows(fresh, `select id from one_time_tokens where id = '${orphan.id}'`)).length;

          const counts: number[] = [];
          for (let i = 0; i < 5; i += 1) {
            const deleted = await purged.deleteSpentOneTimeTokens(at(HOUR), 2);
            counts.push(deleted);
            assert.ok(deleted <= 2, `batch of ${deleted}`);
            if (deleted === 0) break;
          }
          assert.equal(counts.at(-1), 0);
          assert.equal(
            counts.reduce((sum, n) => sum + n, 0),
            3 + orphaned,
          );
          const left = await queryRows(fresh, "select id from one_time_tokens");
          assert.deepEqual(left.map((row) => String(row.id)).sort(), [live.id, usedLater.id].sort());
          assert.ok(await purged.consumeOneTimeToken(live.tokenHash, "password_reset", at(HOUR)), "a live link works");
        } finally {
          await purged.close();
          await fresh.drop();
        }
      });

      it("deletes a deleted user's tokens with the user", async () => {
        const user = aUser();
        await store.createUser(user);
        const token = aOneTimeToken(user.id);
        await store.createOneTimeToken(token);
        assert.equal(await store.deleteUser(user.id, at(HOUR)), true);
        const rows = await queryRows(database, `select id from one_time_tokens where user_id = '${user.id}'`);
        assert.equal(rows.length, 0);
      });

      it("reserves answers on a token before they are checked, never more than the limit, also under a race", async () => {
        const user = aUser();
        await store.createUser(user);
        const token = aOneTimeToken(user.id, { purpose: "mfa" });
        await store.createOneTimeToken(token);
        assert.equal(await store.findOneTimeToken(token.tokenHash, "password_reset", at(1000)), null, "other purpose");
        assert.deepEqual(await store.findOneTimeToken(token.tokenHash, "mfa", at(1000)), token);
        assert.equal(await store.findOneTimeToken(token.tokenHash, "mfa", at(HOUR)), null, "expired");
        assert.equal(await store.reserveOneTimeTokenAttempt(token.tokenHash, "password_reset", 3, at(1000)), null);
        assert.equal(await store.reserveOneTimeTokenAttempt(token.tokenHash, "mfa", 3, at(HOUR)), null, "expired");
        assert.deepEqual(await store.reserveOneTimeTokenAttempt(token.tokenHash, "mfa", 3, at(1000)), token);
        const racing = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            (i % 2 === 0 ? store : other).reserveOneTimeTokenAttempt(token.tokenHash, "mfa", 3, at(1000)),
          ),
        );
        assert.equal(racing.filter(Boolean).length, 2, "of racing answers, only those up to the limit");
        assert.equal(await store.reserveOneTimeTokenAttempt(token.tokenHash, "mfa", 3, at(1000)), null, "spent");
        assert.ok(await store.consumeOneTimeToken(token.tokenHash, "mfa", at(2000)), "a reserved answer may use it");
        const fresh = aOneTimeToken(user.id, { purpose: "mfa" });
        await store.createOneTimeToken(fresh);
        await store.consumeOneTimeToken(fresh.tokenHash, "mfa", at(1000));
        assert.equal(await store.reserveOneTimeTokenAttempt(fresh.tokenHash, "mfa", 3, at(1000)), null, "used");
      });
    });

    describe("TOTP credentials and recovery codes", () => {
      const aCode = (userId: string): RecoveryCodeRecord => ({
        id: randomUUID(),
        userId,
        codeHash: randomBytes(32).toString("hex"),
        createdAt: at(0),
        usedAt: null,
      });

      it("keeps a pending secret, replaced by a new enrolment, until it is confirmed", async () => {
        const user = aUser();
        await store.createUser(user);
        assert.equal(await store.findTotp(user.id), null);
        assert.equal(await store.savePendingTotp(user.id, "sealed-1", at(0)), true);
        assert.equal(await store.savePendingTotp(user.id, "sealed-2", at(1000)), true);
        assert.deepEqual(await store.findTotp(user.id), {
          userId: user.id,
          secretSealed: "sealed-2",
          createdAt: at(1000),
          confirmedAt: null,
          lastStep: null,
          failures: 0,
        });
        assert.equal(await store.acceptTotpStep(user.id, 100), false, "a pending secret accepts no code");
        const codes = [aCode(user.id), aCode(user.id)];
        assert.equal(await store.confirmTotp(user.id, "sealed-1", 100, at(2000), codes), false, "a replaced secret");
        assert.equal(await store.confirmTotp(user.id, "sealed-2", 100, at(2000), codes), true);
        assert.equal(await store.confirmTotp(user.id, "sealed-2", 101, at(2000), codes), false, "already confirmed");
        const found = await store.findTotp(user.id);
        assert.deepEqual([found?.confirmedAt, found?.lastStep], [at(2000), 100]);
        assert.equal(await store.savePendingTotp(user.id, "sealed-3", at(3000)), false, "confirmed stays");
        assert.equal((await store.findTotp(user.id))?.secretSealed, "sealed-2");
        assert.equal(await store.countUnusedRecoveryCodes(user.id), 2);
      });

      it("accepts each time step once, never one at or before the last accepted", async () => {
        const user = aUser();
        await store.createUser(user);
        await store.savePendingTotp(user.id, "sealed", at(0));
        await store.confirmTotp(user.id, "sealed", 1_000_000_000, at(0), []);
        assert.equal(await store.acceptTotpStep(user.id, 1_000_000_000), false, "the confirming step");
        assert.equal(await store.acceptTotpStep(user.id, 1_000_000_001), true);
        assert.equal(await store.acceptTotpStep(user.id, 1_000_000_001), false, "replayed");
        assert.equal(await store.acceptTotpStep(user.id, 999_999_999), false, "earlier");
        const racing = await Promise.all([
          store.acceptTotpStep(user.id, 1_000_000_002),
          other.acceptTotpStep(user.id, 1_000_000_002),
        ]);
        assert.equal(racing.filter(Boolean).length, 1, "one of two racing calls wins");
        assert.equal((await store.findTotp(user.id))?.lastStep, 1_000_000_002);
      });

      it("uses a recovery code once, only the user's own, and exactly once under a race", async () => {
        const user = aUser();
        const rival = aUser();
        await store.createUser(user);
        await store.createUser(rival);
        await store.savePendingTotp(user.id, "sealed", at(0));
        const codes = [aCode(user.id), aCode(user.id)];
        await store.confirmTotp(user.id, "sealed", 1, at(0), codes);
        assert.equal(await store.useRecoveryCode(rival.id, codes[0]!.codeHash, at(1000)), false, "another user");
        assert.equal(await store.useRecoveryCode(user.id, codes[0]!.codeHash, at(1000)), true);
        assert.equal(await store.useRecoveryCode(user.id, codes[0]!.codeHash, at(2000)), false, "used");
        const racing = await Promise.all([
          store.useRecoveryCode(user.id, codes[1]!.codeHash, at(3000)),
          other.useRecoveryCode(user.id, codes[1]!.codeHash, at(3000)),
        ]);
        assert.equal(racing.filter(Boolean).length, 1);
        assert.equal(await store.countUnusedRecoveryCodes(user.id), 0);
      });

      it("keeps a code's digest unique per user only", async () => {
        const [user, rival] = [aUser(), aUser()];
        for (const each of [user, rival]) {
          await store.createUser(each);
          await store.savePendingTotp(each.id, "sealed", at(0));
        }
        const code = aCode(user.id);
        assert.equal(await store.confirmTotp(user.id, "sealed", 1, at(0), [code]), true);
        assert.equal(
          await store.confirmTotp(rival.id, "sealed", 1, at(0), [{ ...aCode(rival.id), codeHash: code.codeHash }]),
          true,
        );
        assert.equal(await store.useRecoveryCode(rival.id, code.codeHash, at(1000)), true);
        assert.equal(
          await store.useRecoveryCode(user.id, code.codeHash, at(1000)),
          true,
          "the user's own is still unused",
        );
      });

      it("counts second-factor answers in a row up to a cap, also under a race; a right answer or a new password clears them", async () => {
        const user = aUser();
        await store.createUser(user);
        assert.equal(await store.reserveTotpAttempt(user.id, 4), null, "no credential");
        await store.savePendingTotp(user.id, "sealed", at(0));
        assert.equal(await store.reserveTotpAttempt(user.id, 4), null, "pending");
        await store.confirmTotp(user.id, "sealed", 1, at(0), []);
        assert.equal(await store.reserveTotpAttempt(user.id, 4), 1);
        const racing = await Promise.all(
          Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? store : other).reserveTotpAttempt(user.id, 4)),
        );
        assert.deepEqual(racing.filter((n) => n !== null).sort(), [2, 3, 4], "each count once, none past the cap");
        assert.equal((await store.findTotp(user.id))?.failures, 4);
        assert.equal(await store.reserveTotpAttempt(user.id, 4), null, "locked");
        await store.clearTotpFailures(user.id);
        assert.equal(await store.reserveTotpAttempt(user.id, 4), 1, "cleared");
        await Promise.all([1, 2, 3].map(() => store.reserveTotpAttempt(user.id, 4)));
        assert.equal(await store.setPasswordHash(user.id, "other-hash", "not-the-hash"), false);
        assert.equal((await store.findTotp(user.id))?.failures, 4, "a refused change clears nothing");
        assert.equal(await store.setPasswordHash(user.id, "other-hash", user.passwordHash), true);
        assert.equal((await store.findTotp(user.id))?.failures, 0, "a new password clears the count");
      });

      it("tells which of a list of users have TOTP on, not those with a pending enrolment", async () => {
        const [on, pending, none] = [aUser(), aUser(), aUser()];
        for (const user of [on, pending, none]) await store.createUser(user);
        await store.savePendingTotp(on.id, "sealed", at(0));
        await store.confirmTotp(on.id, "sealed", 1, at(0), []);
        await store.savePendingTotp(pending.id, "sealed", at(0));
        assert.deepEqual(await store.findTotpUserIds([on.id, pending.id, none.id, randomUUID()]), [on.id]);
        assert.deepEqual(await store.findTotpUserIds([none.id]), []);
        assert.deepEqual(await store.findTotpUserIds([]), []);
      });

      it("deletes the credential with its codes, and with the user", async () => {
        const user = aUser();
        await store.createUser(user);
        await store.savePendingTotp(user.id, "sealed", at(0));
        await store.confirmTotp(user.id, "sealed", 1, at(0), [aCode(user.id)]);
        assert.equal(await store.deleteTotp(user.id), true);
        assert.equal(await store.deleteTotp(user.id), false);
        assert.equal(await store.findTotp(user.id), null);
        assert.equal(await store.countUnusedRecoveryCodes(user.id), 0);
        const gone = aUser();
        await store.createUser(gone);
        await store.savePendingTotp(gone.id, "sealed", at(0));
        await store.confirmTotp(gone.id, "sealed", 1, at(0), [aCode(gone.id)]);
        assert.equal(await store.deleteUser(gone.id, at(HOUR)), true);
        for (const table of ["totp_credentials", "recovery_codes"]) {
          const rows = await queryRows(database, `select user_id from ${table} where user_id = '${gone.id}'`);
          assert.equal(rows.length, 0, table);
        }
      });

      it("keeps the methods a session was opened with; a session stored without them is a password login", async () => {
        const { session } = await seedSession(store, { amr: ["pwd", "otp"] });
        assert.deepEqual((await store.findSession(session.id))?.amr, ["pwd", "otp"]);
        const { session: plain, token } = await seedSession(store, { amr: undefined });
        assert.deepEqual((await store.findSession(plain.id))?.amr, ["pwd"]);
        assert.deepEqual((await store.findRefreshToken(token.tokenHash))?.session.amr, ["pwd"]);
      });
    });
  });
}

/** Every (table, first column, unique) index of Tessera's tables, as the catalog reports it. */
async function indexedColumns(database: TestDatabase): Promise<{ table: string; column: string; unique: boolean }[]> {
  switch (database.kind) {
    case "postgres": {
      const rows = await queryRows(
        database,
        `select t.relname as "table", a.attname as "column", ix.indisunique as "unique"
           from pg_index ix
           join pg_class t on t.oid = ix.indrelid
           join pg_namespace n on n.oid = t.relnamespace and n.nspname = current_schema()
           join pg_attribute a on a.attrelid = t.oid and a.attnum = ix.indkey[0]`,
      );
      return rows.map((row) => ({ table: String(row.table), column: String(row.column), unique: row.unique === true }));
    }
    case "mysql": {
      const rows = await queryRows(
        database,
        `select table_name as "table", column_name as "column", non_unique as non_unique
           from information_schema.statistics where table_schema = database() and seq_in_index = 1`,
      );
      return rows.map((row) => ({
        table: String(row.table),
        column: String(row.column),
        unique: Number(row.non_unique) === 0,
      }));
    }
    case "sqlite": {
      const rows = await queryRows(
        database,
        `select m.name as "table", i."unique" as "unique", c.name as "column"
           from sqlite_master m, pragma_index_list(m.name) i, pragma_index_info(i.name) c
           where m.type = 'table' and c.seqno = 0`,
      );
      return rows.map((row) => ({
        table: String(row.table),
        column: String(row.column),
        unique: Number(row.unique) === 1,
      }));
    }
  }
}
