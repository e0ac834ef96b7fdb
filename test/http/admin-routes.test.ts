import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, InjectOptions } from "fastify";
import { createServer } from "../../src/http/server.js";
import { USER_LIST_LIMIT } from "../../src/service/admin-service.js";
import { type ServiceFixture, serviceFixture } from "../support/service.js";
import { totpCodeOf } from "../support/totp.js";

const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a brand new passphrase";
const context = { ip: "127.0.0.1", userAgent: "test" };
const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

interface Account {
  id: string;
  username: string;
  roles: string[];
  created_at: string;
  disabled_at: string | null;
  mfa?: { totp: boolean };
}

/** Every admin route, with a path naming `id` (and `sessionId`) and a valid body. */
function adminRoutes(id: string, sessionId: string): Array<[InjectOptions["method"], string, object?]> {
  return [
    ["GET", "/admin/users"],
    ["POST", "/admin/users", { username: "never-made", password: PASSWORD }],
    ["GET", `/admin/users/${id}`],
    ["POST", `/admin/users/${id}/disable`],
    ["POST", `/admin/users/${id}/enable`],
    ["PUT", `/admin/users/${id}/roles`, { roles: ["admin"] }],
    ["PUT", `/admin/users/${id}/password`, { password: NEW_PASSWORD }],
    ["DELETE", `/admin/users/${id}/mfa`],
    ["DELETE", `/admin/users/${id}`],
    ["GET", `/admin/users/${id}/sessions`],
    ["DELETE", `/admin/users/${id}/sessions/${sessionId}`],
    ["DELETE", `/admin/users/${id}/sessions`],
  ];
}

describe("Admin API /admin/users", () => {
  let fixture: ServiceFixture;
  let app: FastifyInstance;
  let adminToken: string;
  let counter = 0;

  before(async () => {
    fixture = await serviceFixture({ registration: "closed" });
    app = await createServer({ services: fixture.services, rateLimitPerMinute: 0, logger: false });
    await fixture.services.admin.createUser("root-admin", PASSWORD, ["admin"]);
    adminToken = (await fixture.service.login("root-admin", PASSWORD, context)).accessToken;
  });
  after(async () => {
    await app.close();
    await fixture.close();
  });

  function call(method: InjectOptions["method"], url: string, body?: object, token: string | null = adminToken) {
    return app.inject({
      method,
      url,
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { payload: body }),
    });
  }

  async function member(sessions = 1) {
    counter += 1;
    const username = `member${counter}`;
    const user = await fixture.services.admin.createUser(username, PASSWORD);
    const logins = [];
    for (let i = 0; i < sessions; i += 1) logins.push(await fixture.service.login(username, PASSWORD, context));
    return { username, id: user.id, logins };
  }

  it("answers 401 without a valid token and 403 insufficient_scope without the admin role, on every route", async () => {
    const { id, logins } = await member(1);
    for (const [method, url, body] of adminRoutes(id, logins[0]!.sessionId)) {
      const anonymous = await call(method, url, body, null);
      assert.equal(anonymous.statusCode, 401, `${method} ${url}`);
      assert.match(String(anonymous.headers["www-authenticate"]), /^Bearer /);
      const forged = await call(method, url, body, "not-a-token");
      assert.equal(forged.statusCode, 401, `${method} ${url}`);
      const plain = await call(method, url, body, logins[0]!.accessToken);
      assert.equal(plain.statusCode, 403, `${method} ${url}`);
      assert.equal(plain.json<{ error: string }>().error, "insufficient_scope");
    }
    // Nothing happened on the member's behalf.
    assert.equal((await fixture.services.admin.showUser({ id })).disabledAt, null);
    assert.ok((await fixture.service.refresh(logins[0]!.refreshToken, context)).accessToken);
  });

  it("takes the admin API away the moment the admin role is, however long the token still lives", async () => {
    await fixture.services.admin.createUser("demoted-admin", PASSWORD, ["admin"]);
    const token = (await fixture.service.login("demoted-admin", PASSWORD, context)).accessToken;
    const self = (await fixture.services.admin.showUser("demoted-admin")).id;
    assert.equal((await call("GET", "/admin/users?limit=1", undefined, token)).statusCode, 200);
    await fixture.services.admin.setUserRoles("demoted-admin", ["user"]);
    for (const [method, url, body] of [
      ["GET", "/admin/users?limit=1"],
      ["PUT", `/admin/users/${self}/roles`, { roles: ["admin"] }],
      ["GET", "/admin/audit"],
    ] as const) {
      const refused = await call(method, url, body, token);
      assert.equal(refused.statusCode, 403, `${method} ${url}`);
      assert.equal(refused.json<{ error: string }>().error, "insufficient_scope");
    }
    assert.deepEqual((await fixture.services.admin.showUser("demoted-admin")).roles, ["user"]);
  });

  it("adds a user (registration closed) and never answers a password hash", async () => {
    const created = await call("POST", "/admin/users", { username: "Added", password: PASSWORD, roles: ["auditor"] });
    assert.equal(created.statusCode, 201, created.body);
    const account = created.json<Account>();
    assert.deepEqual(Object.keys(account).sort(), ["created_at", "disabled_at", "id", "roles", "username"]);
    assert.deepEqual(account.roles, ["auditor"]);
    assert.ok(!created.body.includes("argon2"));
    assert.ok((await fixture.service.login("added", PASSWORD, context)).accessToken);
    const taken = await call("POST", "/admin/users", { username: "ADDED", password: PASSWORD });
    assert.equal(taken.statusCode, 409);
    assert.equal(taken.json<{ error: string }>().error, "username_taken");
    const shown = await call("GET", `/admin/users/${account.id}`);
    assert.equal(shown.statusCode, 200);
    assert.deepEqual(shown.json(), { ...account, mfa: { totp: false }, open_sessions: 1 });
  });

  it("lists users filtered by search, role and disabled state, page by page", async () => {
    const made: string[] = [];
    for (const name of ["Paged-1", "paged-2", "PAGED-3"])
      made.push((await fixture.services.admin.createUser(name, PASSWORD)).id);
    await fixture.services.admin.disableUser({ id: made[1]! });
    await fixture.services.admin.setUserRoles({ id: made[2]! }, ["ops"]);

    const names = async (query: string) => {
      const response = await call("GET", `/admin/users?${query}`);
      assert.equal(response.statusCode, 200, response.body);
      return response.json<{ users: Account[]; next_cursor: string | null }>();
    };
    assert.deepEqual(
      (await names("search=paged")).users.map((user) => user.username),
      ["Paged-1", "paged-2", "PAGED-3"],
    );
    assert.deepEqual(
      (await names("search=PAGED&disabled=true")).users.map((user) => user.username),
      ["paged-2"],
    );
    assert.deepEqual(
      (await names("search=paged&disabled=false&role=ops")).users.map((user) => user.username),
      ["PAGED-3"],
    );
    const first = await names("search=paged&limit=2");
    assert.equal(first.users.length, 2);
    assert.ok(first.next_cursor);
    const second = await names(`search=paged&limit=2&cursor=${encodeURIComponent(first.next_cursor)}`);
    assert.deepEqual(
      second.users.map((user) => user.username),
      ["PAGED-3"],
    );
    assert.equal(second.next_cursor, null);
    assert.ok(second.users.every((user) => !("password_hash" in user) && !("passwordHash" in user)));
  });

  it("refuses bad queries, bodies and media types with 400 or 415 and an unknown user with 404 user_not_found", async () => {
    for (const query of [
      "limit=0",
      `limit=${USER_LIST_LIMIT.max + 1}`,
      "limit=ten",
      "disabled=yes",
      "cursor=forged",
      "role=two%20words",
      "unknown=1",
      "search=a&search=b",
    ]) {
      const response = await call("GET", `/admin/users?${query}`);
      assert.equal(response.statusCode, 400, query);
      assert.equal(response.json<{ error: string }>().error, "invalid_request", query);
    }
    const { id } = await member(0);
    for (const [method, url, body] of [
      ["POST", "/admin/users", { username: "x1y2z3", password: PASSWORD, admin: true }],
      ["POST", "/admin/users", { username: "x1y2z3", password: "short" }],
      ["POST", "/admin/users", { username: "x1y2z3", password: PASSWORD, roles: ["no spaces"] }],
      ["PUT", `/admin/users/${id}/roles`, { roles: "admin" }],
      ["PUT", `/admin/users/${id}/roles`, {}],
      ["PUT", `/admin/users/${id}/password`, { password: "short" }],
      ["PUT", `/admin/users/${id}/password`, { password: NEW_PASSWORD, extra: 1 }],
    ] as const) {
      const response = await call(method, url, body);
      assert.equal(response.statusCode, 400, `${method} ${url} ${JSON.stringify(body)}`);
      assert.equal(response.json<{ error: string }>().error, "invalid_request");
    }
    const form = await app.inject({
      method: "PUT",
      url: `/admin/users/${id}/roles`,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/x-www-form-urlencoded" },
      payload: "roles=admin",
    });
    assert.equal(form.statusCode, 415);
    assert.equal((await call("GET", `/admin/users/${"x".repeat(65)}`)).statusCode, 400);

    for (const [method, url, body] of adminRoutes(UNKNOWN_ID, UNKNOWN_ID).filter(([, url]) => url !== "/admin/users")) {
      const response = await call(method, url, body);
      assert.equal(response.statusCode, 404, `${method} ${url}`);
      assert.deepEqual(response.json(), { error: "not_found", error_description: "No such user." });
    }
    const otherSession = (await member(1)).logins[0]!.sessionId;
    const mismatch = await call("DELETE", `/admin/users/${id}/sessions/${otherSession}`);
    assert.equal(mismatch.statusCode, 404);
    assert.deepEqual(mismatch.json(), { error: "not_found", error_description: "No such session." });
  });

  it("disables a user: their login answers exactly what a wrong password answers, and their tokens stop", async () => {
    const { username, id, logins } = await member(2);
    const disabled = await call("POST", `/admin/users/${id}/disable`);
    assert.equal(disabled.statusCode, 200);
    assert.ok(disabled.json<Account>().disabled_at);
    const login = (password: string) => call("POST", "/auth/login", { username, password }, null);
    const refused = await login(PASSWORD);
    const wrong = await login("not the password at all");
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.statusCode, wrong.statusCode);
    assert.equal(refused.body, wrong.body);
    assert.equal(refused.headers["content-type"], wrong.headers["content-type"]);
    for (const session of logins) {
      const me = await call("GET", "/auth/me", undefined, session.accessToken);
      assert.equal(me.statusCode, 401);
      const refreshed = await call("POST", "/auth/refresh", { refresh_token: session.refreshToken }, null);
      assert.equal(refreshed.statusCode, 401);
    }
    assert.equal((await call("GET", `/admin/users/${id}`)).json<{ open_sessions: number }>().open_sessions, 0);
    await fixture.services.audit.flush();
    const events = await fixture.store.listAuditEvents({ userId: id }, null, 100);
    const adminId = (await fixture.services.admin.showUser("root-admin")).id;
    assert.deepEqual(events.find((event) => event.type === "user_disabled")?.details, { by: adminId });

    const enabled = await call("POST", `/admin/users/${id}/enable`);
    assert.equal(enabled.json<Account>().disabled_at, null);
    assert.equal((await login(PASSWORD)).statusCode, 200);
  });

  it("sets roles and password, lists and revokes sessions, and deletes a user", async () => {
    const { username, id, logins } = await member(3);
    const roles = await call("PUT", `/admin/users/${id}/roles`, { roles: ["admin", "ops", "admin"] });
    assert.deepEqual(roles.json<Account>().roles, ["admin", "ops"]);

    const listed = await call("GET", `/admin/users/${id}/sessions`);
    const sessions = listed.json<{ sessions: Array<{ id: string; ip: string; user_agent: string }> }>().sessions;
    assert.deepEqual(sessions.map((session) => session.id).sort(), logins.map((login) => login.sessionId).sort());
    assert.ok(sessions.every((session) => session.ip === context.ip && session.user_agent === context.userAgent));

    assert.equal((await call("DELETE", `/admin/users/${id}/sessions/${logins[0]!.sessionId}`)).statusCode, 204);
    assert.equal(
      (await call("DELETE", `/admin/users/${id}/sessions/${logins[0]!.sessionId}`)).statusCode,
      204,
      "already revoked: nothing left to do",
    );
    const rest = await call("DELETE", `/admin/users/${id}/sessions`);
    assert.deepEqual(
      rest.json<{ revoked: string[] }>().revoked.sort(),
      [logins[1]!.sessionId, logins[2]!.sessionId].sort(),
    );

    const again = await fixture.service.login(username, PASSWORD, context);
    const password = await call("PUT", `/admin/users/${id}/password`, { password: NEW_PASSWORD });
    assert.equal(password.statusCode, 204);
    assert.equal(password.body, "");
    assert.equal((await call("GET", "/auth/me", undefined, again.accessToken)).statusCode, 401);
    assert.equal((await call("POST", "/auth/login", { username, password: PASSWORD }, null)).statusCode, 401);
    assert.equal((await call("POST", "/auth/login", { username, password: NEW_PASSWORD }, null)).statusCode, 200);

    const deleted = await call("DELETE", `/admin/users/${id}`);
    assert.equal(deleted.statusCode, 204);
    assert.equal((await call("GET", `/admin/users/${id}`)).statusCode, 404);
    assert.equal((await call("DELETE", `/admin/users/${id}`)).statusCode, 404);
    assert.equal((await call("POST", "/auth/login", { username, password: NEW_PASSWORD }, null)).statusCode, 401);
  });

  it("resets a user's second factor: TOTP off, recovery codes gone, every session revoked; 204 again when off", async () => {
    const { username, id, logins } = await member(2);
    const principal = await fixture.service.authenticate(logins[0]!.accessToken);
    const { uri } = await fixture.services.mfa.enrollTotp(principal);
    await fixture.services.mfa.confirmTotp(principal, totpCodeOf(uri, 0, fixture.clock.now()), context);
    const shown = await call("GET", `/admin/users/${id}`);
    assert.deepEqual(shown.json<Account>().mfa, { totp: true });
    const listed = await call("GET", `/admin/users?search=${username}`);
    assert.deepEqual(
      listed.json<{ users: Account[] }>().users.map((user) => [user.username, user.mfa]),
      [[username, { totp: true }]],
    );
    const challenged = await call("POST", "/auth/login", { username, password: PASSWORD }, null);
    assert.equal(challenged.json<{ error: string }>().error, "mfa_required");

    const reset = await call("DELETE", `/admin/users/${id}/mfa`);
    assert.equal(reset.statusCode, 204, reset.body);
    assert.equal(reset.body, "");
    assert.deepEqual((await call("GET", `/admin/users/${id}`)).json<Account>().mfa, { totp: false });
    assert.equal(await fixture.store.countUnusedRecoveryCodes(id), 0);
    for (const login of logins)
      assert.equal((await call("GET", "/auth/me", undefined, login.accessToken)).statusCode, 401);
    const events = await fixture.services.audit.list({ user: id, type: "mfa_disabled" });
    const adminId = (await fixture.services.admin.showUser("root-admin")).id;
    assert.deepEqual(
      events.events.map((event) => event.details),
      [{ by: adminId }],
    );
    const login = await call("POST", "/auth/login", { username, password: PASSWORD }, null);
    assert.equal(login.statusCode, 200, "the password alone logs in");

    assert.equal((await call("DELETE", `/admin/users/${id}/mfa`)).statusCode, 204, "TOTP already off");
    const unknown = await call("DELETE", `/admin/users/${UNKNOWN_ID}/mfa`);
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual(unknown.json(), { error: "not_found", error_description: "No such user." });
  });

  it("answers 409 last_admin to disabling, deleting or demoting the last enabled admin, and changes nothing", async () => {
    const admin = fixture.services.admin;
    const rootId = (await admin.showUser("root-admin")).id;
    for (const other of (await admin.listUsers({ role: "admin", disabled: false, limit: 200 })).users)
      if (other.id !== rootId) await admin.setUserRoles({ id: other.id }, ["user"]);
    const refusals: Array<[InjectOptions["method"], string, object?]> = [
      ["POST", `/admin/users/${rootId}/disable`],
      ["DELETE", `/admin/users/${rootId}`],
      ["PUT", `/admin/users/${rootId}/roles`, { roles: ["user"] }],
      ["PUT", `/admin/users/${rootId}/roles`, { roles: [] }],
    ];
    for (const [method, url, body] of refusals) {
      const refused = await call(method, url, body);
      assert.equal(refused.statusCode, 409, `${method} ${url}`);
      assert.equal(refused.json<{ error: string }>().error, "last_admin");
      assert.equal(refused.headers["cache-control"], "no-store");
    }
    const root = (await call("GET", `/admin/users/${rootId}`)).json<Account & { open_sessions: number }>();
    assert.deepEqual(root.roles, ["admin"]);
    assert.equal(root.disabled_at, null);
    assert.ok(root.open_sessions >= 1, "the admin's own session was not revoked");
    assert.equal((await call("GET", "/auth/me")).statusCode, 200);

    // With a second admin, either may go; the one left is guarded again.
    const { id } = await member(0);
    assert.equal((await call("PUT", `/admin/users/${id}/roles`, { roles: ["admin"] })).statusCode, 200);
    const demoted = await call("PUT", `/admin/users/${id}/roles`, { roles: ["user"] });
    assert.equal(demoted.statusCode, 200);
    assert.deepEqual(demoted.json<Account>().roles, ["user"]);
    assert.equal((await call("POST", `/admin/users/${rootId}/disable`)).statusCode, 409);
  });

  it("describes every admin route, its success and its refusals in /openapi.json", async () => {
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json<{
      paths: Record<string, Record<string, { responses?: Record<string, unknown>; security?: unknown[] }>>;
    }>();
    const successOf = (method: string, url: string) => {
      if (method === "POST" && url === "/admin/users") return "201";
      if (url.endsWith("/password") || (method === "DELETE" && !url.endsWith("/sessions"))) return "204";
      return "200";
    };
    for (const [method, url] of adminRoutes("{id}", "{sessionId}")) {
      const operation = spec.paths[url]?.[String(method).toLowerCase()];
      assert.ok(operation, `${method} ${url}`);
      const expected = successOf(String(method), url);
      assert.ok(operation.responses?.[expected], `${method} ${url} documents ${expected}`);
      assert.ok(operation.responses?.["4XX"], `${method} ${url} documents its refusals`);
      assert.ok(operation.security?.length, `${method} ${url} names bearer authentication`);
    }
  });
});
