import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { type AdminActor, OPERATOR, USER_LIST_LIMIT } from "../../src/service/admin-service.js";
import type { RequestContext } from "../../src/service/request-context.js";
import type { SessionsRevokedEvent } from "../../src/service/session-revocations.js";
import { countingHasher, type ServiceFixture, serviceFixture, rejectsWith } from "../support/service.js";

const context: RequestContext = { ip: "203.0.113.7", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "another long passphrase";
const API_ADMIN: AdminActor = {
  by: "00000000-0000-4000-8000-00000000000a",
  context: { ip: "198.51.100.1", userAgent: "admin-ui" },
};

describe("AdminService user lifecycle", () => {
  let fixture: ServiceFixture;
  const hasher = countingHasher();
  const announced: SessionsRevokedEvent[] = [];
  let counter = 0;

  before(async () => {
    fixture = await serviceFixture({}, hasher);
    fixture.services.revocations.onSessionsRevoked((event) => announced.push(event));
  });
  after(() => fixture.close());

  /** A registered user with `sessions` logins. */
  async function userWithSessions(sessions = 1, prefix = "member") {
    counter += 1;
    const name = `${prefix}${counter}`;
    const user = await fixture.service.register(name, PASSWORD, context);
    const logins = [];
    for (let i = 0; i < sessions; i += 1) logins.push(await fixture.service.login(name, PASSWORD, context));
    return { name, user, logins };
  }

  async function eventsOf(userId: string) {
    await fixture.services.audit.flush();
    return (await fixture.store.listAuditEvents({ userId }, null, 1000)).reverse();
  }

  describe("createUser()", () => {
    it("adds an account with the given roles, never returning the hash, and records who added it", async () => {
      const added = await fixture.services.admin.createUser("Grace", PASSWORD, ["admin", "user", "admin"], API_ADMIN);
      assert.deepEqual(Object.keys(added).sort(), ["createdAt", "disabledAt", "id", "roles", "username"]);
      assert.deepEqual(added.roles, ["admin", "user"]);
      assert.equal(added.disabledAt, null);
      const [event] = await eventsOf(added.id);
      assert.equal(event?.type, "user_registered");
      assert.deepEqual(event?.details, { by: API_ADMIN.by });
      assert.equal(event?.ip, API_ADMIN.context.ip);
      await rejectsWith(fixture.services.admin.createUser("grace", PASSWORD), "username_taken");
      await rejectsWith(fixture.services.admin.createUser("heidi", PASSWORD, ["bad role"]), "invalid_request");
      await rejectsWith(fixture.services.admin.createUser("heidi", "short"), "invalid_request");
    });
  });

  describe("listUsers()", () => {
    it("filters by folded username text, role and disabled state, and pages with an opaque cursor", async () => {
      const admin = fixture.services.admin;
      const names = ["Listed-A1", "listed-b2", "LISTED-C3", "listed-d4", "other-e5"];
      const ids = new Map<string, string>();
      for (const name of names) ids.set(name, (await admin.createUser(name, PASSWORD)).id);
      await admin.setUserRoles({ id: ids.get("listed-b2")! }, ["auditor"]);
      await admin.disableUser({ id: ids.get("listed-d4")! });

      const usernames = async (query: Parameters<typeof admin.listUsers>[0]) =>
        (await admin.listUsers(query)).users.map((user) => user.username);
      assert.deepEqual(await usernames({ search: "ＬＩＳＴＥＤ" }), [
        "Listed-A1",
        "listed-b2",
        "LISTED-C3",
        "listed-d4",
      ]);
      assert.deepEqual(await usernames({ search: "listed", role: "auditor" }), ["listed-b2"]);
      assert.deepEqual(await usernames({ search: "listed", disabled: true }), ["listed-d4"]);
      assert.deepEqual(await usernames({ search: "listed", disabled: false }), ["Listed-A1", "listed-b2", "LISTED-C3"]);

      const first = await admin.listUsers({ search: "listed", limit: 3 });
      assert.equal(first.users.length, 3);
      assert.ok(first.nextCursor);
      assert.ok(!first.nextCursor.includes("listed"), "the cursor is opaque");
      const second = await admin.listUsers({ search: "listed", limit: 3, cursor: first.nextCursor });
      assert.deepEqual(
        second.users.map((user) => user.username),
        ["listed-d4"],
      );
      assert.equal(second.nextCursor, null);
      assert.equal((await admin.listUsers({ search: "listed", limit: 4 })).nextCursor, null, "no empty last page");
    });

    it("refuses a limit out of bounds, a forged cursor, a bad role and an overlong search", async () => {
      const admin = fixture.services.admin;
      assert.equal((await admin.listUsers({ limit: USER_LIST_LIMIT.max })).users.length > 0, true);
      for (const limit of [0, USER_LIST_LIMIT.max + 1, 1.5])
        await rejectsWith(admin.listUsers({ limit }), "invalid_request");
      for (const cursor of ["", "not base64!", "bGlzdGVk=", Buffer.from("x".repeat(65)).toString("base64url")])
        await rejectsWith(admin.listUsers({ cursor }), "invalid_request");
      await rejectsWith(admin.listUsers({ role: "no spaces" }), "invalid_request");
      await rejectsWith(admin.listUsers({ search: "x".repeat(65) }), "invalid_request");
    });
  });

  describe("showUser()", () => {
    it("shows the user with open sessions and timestamps; user_not_found for an unknown one", async () => {
      const { name, user } = await userWithSessions(2);
      const shown = await fixture.services.admin.showUser(name.toUpperCase());
      assert.equal(shown.id, user.id);
      assert.equal(shown.openSessions, 2);
      assert.deepEqual(shown.createdAt, fixture.clock.now());
      assert.equal(shown.disabledAt, null);
      assert.ok(!("passwordHash" in shown));
      await rejectsWith(
        fixture.services.admin.showUser({ id: "00000000-0000-4000-8000-000000000000" }),
        "user_not_found",
      );
      await rejectsWith(fixture.services.admin.showUser("nobody-here"), "user_not_found");
    });
  });

  describe("disableUser() and enableUser()", () => {
    it("revokes and announces every session; login then fails like a wrong password, after the same hashing", async () => {
      const { name, user, logins } = await userWithSessions(2);
      announced.length = 0;
      const disabled = await fixture.services.admin.disableUser({ id: user.id }, API_ADMIN);
      assert.deepEqual(disabled.disabledAt, fixture.clock.now());
      assert.deepEqual(
        announced.flatMap((event) => event.sessionIds).sort(),
        logins.map((login) => login.sessionId).sort(),
      );
      for (const login of logins) {
        await rejectsWith(fixture.service.refresh(login.refreshToken, context), "session_revoked");
        await rejectsWith(fixture.service.authenticate(login.accessToken), "access_token_revoked");
      }

      const before = hasher.verifications;
      const refusal = await fixture.service.login(name, PASSWORD, context).catch((error: unknown) => error);
      const wrong = await fixture.service.login(name, "a wrong password", context).catch((error: unknown) => error);
      assert.ok(refusal instanceof TesseraError && wrong instanceof TesseraError);
      assert.equal(refusal.code, "invalid_credentials");
      assert.equal(refusal.code, wrong.code);
      assert.equal(refusal.message, wrong.message);
      assert.equal(hasher.verifications - before, 2, "the password is still verified for a disabled account");
      assert.equal((await fixture.services.admin.showUser({ id: user.id })).openSessions, 0);

      const events = await eventsOf(user.id);
      const byType = (type: string) => events.filter((event) => event.type === type);
      assert.deepEqual(
        byType("user_disabled").map((event) => event.details),
        [{ by: API_ADMIN.by }],
      );
      assert.deepEqual(
        byType("session_revoked").map((event) => event.details),
        [
          { reason: "admin", by: API_ADMIN.by },
          { reason: "admin", by: API_ADMIN.by },
        ],
      );
      assert.deepEqual(
        byType("login_failed")
          .map((event) => String(event.details?.reason))
          .sort(),
        ["user_disabled", "wrong_password"],
        "the trail says the account is disabled; the client cannot tell",
      );

      // Idempotent: no second event, and still disabled.
      await fixture.services.admin.disableUser(name);
      assert.equal((await eventsOf(user.id)).filter((event) => event.type === "user_disabled").length, 1);

      const enabled = await fixture.services.admin.enableUser(name);
      assert.equal(enabled.disabledAt, null);
      assert.ok((await fixture.service.login(name, PASSWORD, context)).accessToken);
      assert.deepEqual((await eventsOf(user.id)).find((event) => event.type === "user_enabled")?.details, {
        by: OPERATOR.by,
      });
      await rejectsWith(fixture.services.admin.disableUser("nobody-here"), "user_not_found");
      await rejectsWith(fixture.services.admin.enableUser({ id: "nope" }), "user_not_found");
    });

    it("refuses to refresh a session of a disabled user that escaped the revocation, and revokes it", async () => {
      const { user, logins } = await userWithSessions(1);
      // As if a login had raced the disabling: the mark is set, the session still open.
      await fixture.store.disableUser(user.id, fixture.clock.now());
      await rejectsWith(fixture.service.refresh(logins[0]!.refreshToken, context), "session_revoked");
      assert.ok((await fixture.store.findSession(logins[0]!.sessionId))?.revokedAt);
    });
  });

  describe("setUserRoles()", () => {
    it("replaces the roles and records the change with who made it", async () => {
      const { user } = await userWithSessions(0);
      const changed = await fixture.services.admin.setUserRoles({ id: user.id }, ["admin"], API_ADMIN);
      assert.deepEqual(changed.roles, ["admin"]);
      const event = (await eventsOf(user.id)).find((e) => e.type === "roles_changed");
      assert.deepEqual(event?.details, { by: API_ADMIN.by, from: ["user"], to: ["admin"] });
    });
  });

  describe("setPassword()", () => {
    it("sets the password and revokes every session; the old password no longer works", async () => {
      const { name, user, logins } = await userWithSessions(2);
      announced.length = 0;
      await fixture.services.admin.setPassword(name, NEW_PASSWORD);
      assert.equal(announced.flatMap((event) => event.sessionIds).length, 2);
      await rejectsWith(fixture.service.refresh(logins[0]!.refreshToken, context), "session_revoked");
      await rejectsWith(fixture.service.login(name, PASSWORD, context), "invalid_credentials");
      assert.ok((await fixture.service.login(name, NEW_PASSWORD, context)).accessToken);
      const types = (await eventsOf(user.id)).map((event) => event.type);
      assert.ok(types.includes("password_changed"));
      await rejectsWith(fixture.services.admin.setPassword(name, "short"), "invalid_request");
      await rejectsWith(fixture.services.admin.setPassword("nobody-here", NEW_PASSWORD), "user_not_found");
    });
  });

  describe("deleteUser()", () => {
    it("removes the account, sessions and tokens, scrubs the audit trail and keeps the revocations in the feed", async () => {
      const { name, user, logins } = await userWithSessions(2);
      announced.length = 0;
      await fixture.services.admin.deleteUser({ id: user.id }, API_ADMIN);
      assert.equal(await fixture.store.findUserById(user.id), null);
      for (const login of logins) {
        assert.equal(await fixture.store.findSession(login.sessionId), null);
        await rejectsWith(fixture.service.refresh(login.refreshToken, context), "refresh_token_unknown");
        await rejectsWith(fixture.service.authenticate(login.accessToken), "access_token_revoked");
      }
      const sessionIds = logins.map((login) => login.sessionId).sort();
      assert.deepEqual(announced.flatMap((event) => event.sessionIds).sort(), sessionIds);
      const feed = await fixture.services.revocations.listRecent();
      assert.deepEqual(
        feed.revoked
          .map((row) => row.id)
          .filter((id) => sessionIds.includes(id))
          .sort(),
        sessionIds,
      );

      const events = await eventsOf(user.id);
      const deletion = events.find((event) => event.type === "user_deleted");
      assert.deepEqual(deletion?.details, { by: API_ADMIN.by });
      assert.equal(deletion?.ip, API_ADMIN.context.ip, "the deletion event names the admin's address");
      const before = events.filter((event) => event !== deletion);
      assert.ok(before.some((event) => event.type === "login_succeeded"));
      assert.ok(before.every((event) => event.ip === null && event.userAgent === null));

      await rejectsWith(fixture.services.admin.showUser({ id: user.id }), "user_not_found");
      await rejectsWith(fixture.services.admin.deleteUser({ id: user.id }), "user_not_found");
      await rejectsWith(fixture.service.login(name, PASSWORD, context), "invalid_credentials");
      assert.ok(await fixture.service.register(name, PASSWORD, context), "the username is free again");
    });
  });

  describe("revokeSession() and revokeUserSessions()", () => {
    it("revokes one session of the named user only, then all of them, recording who did it", async () => {
      const { user, logins } = await userWithSessions(3);
      const { logins: others } = await userWithSessions(1);
      await rejectsWith(
        fixture.services.admin.revokeSession(others[0]!.sessionId, API_ADMIN, { id: user.id }),
        "session_not_found",
      );
      await rejectsWith(
        fixture.services.admin.revokeSession("unknown", API_ADMIN, { id: user.id }),
        "session_not_found",
      );
      await rejectsWith(
        fixture.services.admin.revokeSession(logins[0]!.sessionId, API_ADMIN, { id: "nope" }),
        "user_not_found",
      );
      const sessionId = logins[0]!.sessionId;
      assert.deepEqual(await fixture.services.admin.revokeSession(sessionId, API_ADMIN, { id: user.id }), [sessionId]);
      assert.deepEqual(await fixture.services.admin.revokeSession(sessionId, API_ADMIN, { id: user.id }), []);
      const rest = await fixture.services.admin.revokeUserSessions({ id: user.id }, API_ADMIN);
      assert.deepEqual(rest.sort(), [logins[1]!.sessionId, logins[2]!.sessionId].sort());
      const revokedEvents = (await eventsOf(user.id)).filter((event) => event.type === "session_revoked");
      assert.equal(revokedEvents.length, 3);
      assert.ok(revokedEvents.every((event) => event.details?.by === API_ADMIN.by && event.details.reason === "admin"));
      assert.ok((await fixture.service.refresh(others[0]!.refreshToken, context)).accessToken);
    });
  });
});

describe("AdminService and the last enabled admin", () => {
  let fixture: ServiceFixture;
  let counter = 0;

  before(async () => {
    fixture = await serviceFixture();
  });
  after(() => fixture.close());

  /** A user with `roles` and one open session. */
  async function account(roles: string[]) {
    counter += 1;
    const name = `last-admin-${counter}`;
    const user = await fixture.services.admin.createUser(name, PASSWORD, roles);
    const login = await fixture.service.login(name, PASSWORD, context);
    return { name, id: user.id, login };
  }

  /** Every enabled admin's id: none but `ids` may be left from earlier cases. */
  async function enabledAdmins() {
    const page = await fixture.services.admin.listUsers({ role: "admin", disabled: false, limit: 200 });
    return page.users.map((user) => user.id).sort();
  }

  async function unchanged(id: string, roles: string[], sessionId: string) {
    const user = await fixture.services.admin.showUser({ id });
    assert.equal(user.disabledAt, null);
    assert.deepEqual(user.roles, roles);
    assert.equal((await fixture.store.findSession(sessionId))?.revokedAt, null, "no session revoked");
  }

  it("refuses to disable, delete or demote the last enabled admin, themselves included, changing nothing", async () => {
    const { id, login } = await account(["admin", "user"]);
    assert.deepEqual(await enabledAdmins(), [id]);
    const self: AdminActor = { by: id, context };
    const admin = fixture.services.admin;
    await rejectsWith(admin.disableUser({ id }, self), "last_admin");
    await rejectsWith(admin.deleteUser({ id }, self), "last_admin");
    await rejectsWith(admin.setUserRoles({ id }, ["user"], self), "last_admin");
    await rejectsWith(admin.setUserRoles({ id }, [], OPERATOR), "last_admin");
    await unchanged(id, ["admin", "user"], login.sessionId);
    await fixture.services.audit.flush();
    const events = await fixture.store.listAuditEvents({ userId: id }, null, 100);
    const changes = ["user_disabled", "user_deleted", "roles_changed", "session_revoked"];
    assert.deepEqual(
      events.filter((event) => changes.includes(event.type)),
      [],
      "no event of a refused change",
    );
    // Keeping the role is no demotion.
    assert.deepEqual((await admin.setUserRoles({ id }, ["admin", "ops"], self)).roles, ["admin", "ops"]);
    await admin.setUserRoles({ id }, ["admin", "user"]);
  });

  it("lets one of two admins go, then guards the other; a disabled admin does not count", async () => {
    const [first] = await enabledAdmins();
    const second = await account(["admin"]);
    const admin = fixture.services.admin;
    await admin.disableUser({ id: second.id });
    assert.deepEqual(await enabledAdmins(), [first]);
    await rejectsWith(admin.disableUser({ id: first! }), "last_admin");
    await admin.enableUser({ id: second.id });
    assert.ok((await admin.disableUser({ id: first! })).disabledAt);
    await rejectsWith(admin.setUserRoles({ id: second.id }, ["user"]), "last_admin");
    await admin.enableUser({ id: first! });
    assert.deepEqual((await admin.setUserRoles({ id: second.id }, ["user"])).roles, ["user"]);
    await rejectsWith(admin.deleteUser({ id: first! }), "last_admin");
    // Users without the role are never held back, admins or not.
    const plain = await account(["user"]);
    await admin.deleteUser({ id: plain.id });
    await rejectsWith(admin.showUser({ id: plain.id }), "user_not_found");
  });

  it("does it anyway with force, as the CLI's --force asks", async () => {
    const [only] = await enabledAdmins();
    const { login } = await account(["user"]);
    const admin = fixture.services.admin;
    const sessionOf = await fixture.service.login((await admin.showUser({ id: only! })).username, PASSWORD, context);
    assert.deepEqual((await admin.setUserRoles({ id: only! }, ["user"], OPERATOR, { force: true })).roles, ["user"]);
    assert.deepEqual(await enabledAdmins(), []);
    await admin.setUserRoles({ id: only! }, ["admin"]);
    assert.ok((await admin.disableUser({ id: only! }, OPERATOR, { force: true })).disabledAt);
    assert.notEqual((await fixture.store.findSession(sessionOf.sessionId))?.revokedAt, null);
    await admin.enableUser({ id: only! });
    await admin.deleteUser({ id: only! }, OPERATOR, { force: true });
    assert.deepEqual(await enabledAdmins(), []);
    assert.equal((await fixture.store.findSession(login.sessionId))?.revokedAt, null, "others untouched");
  });
});
