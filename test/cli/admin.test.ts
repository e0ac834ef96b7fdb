import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { REVOCATION_CHANNEL } from "../../src/core/revocation.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { openServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { redisSkipReason, TEST_REDIS_URL } from "../support/redis.js";
import { temporaryDirectory } from "../support/server.js";
import { silentLogger } from "../support/service.js";
import { totpCodeOf } from "../support/totp.js";

const CLI = resolve("dist/cli/main.js");
const SECRET = "cli-admin-test-secret-0123456789-abcdefgh";
const PASSWORD = "correct horse battery staple";
const context = { ip: "203.0.113.9", userAgent: "admin-test" };

/** The admin commands against a database that a running service also uses. */
describe("tessera user and sessions commands", () => {
  let dir: ReturnType<typeof temporaryDirectory>;
  let database: string;
  let services: TesseraServices;

  before(async () => {
    dir = temporaryDirectory();
    database = `sqlite:${dir.path}/admin.db`;
    services = await openServices(
      resolveConfig({ databaseUrl: database, secret: SECRET, issuer: "https://issuer.test" }),
      silentLogger,
    );
  });
  after(async () => {
    await services.close();
    dir.remove();
  });

  async function run(args: string[], env: Record<string, string> = {}, input = "") {
    try {
      const running = promisify(execFile)(process.execPath, [CLI, ...args, "--database", database], {
        env: { PATH: process.env.PATH, TESSERA_SECRET: SECRET, ...env },
        timeout: 30_000,
      });
      running.child.stdin?.end(input);
      const { stdout, stderr } = await running;
      return { status: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { status: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  async function userWithSessions(username: string, count: number) {
    await services.auth.register(username, PASSWORD, context);
    const logins = [];
    for (let i = 0; i < count; i += 1) logins.push(await services.auth.login(username, PASSWORD, context));
    return logins;
  }

  it("lists a user's open sessions, revokes one, then all, and the revoked tokens stop refreshing", async () => {
    const [first, second, third] = await userWithSessions("Alice", 3);
    const listed = await run(["sessions", "list", "alice", "--json"]);
    assert.equal(listed.status, 0, listed.stderr);
    const sessions = JSON.parse(listed.stdout) as Array<{ id: string; ip: string; userAgent: string }>;
    assert.deepEqual(
      sessions.map((session) => session.id).sort(),
      [first!.sessionId, second!.sessionId, third!.sessionId].sort(),
    );
    assert.ok(sessions.every((session) => session.ip === context.ip && session.userAgent === context.userAgent));
    assert.ok(!listed.stdout.includes(first!.refreshToken), "no token is ever printed");

    const one = await run(["sessions", "revoke", first!.sessionId, "--json"]);
    assert.deepEqual(JSON.parse(one.stdout), { revoked: [first!.sessionId] });
    await assert.rejects(services.auth.refresh(first!.refreshToken, context), { code: "session_revoked" });
    const secondRotated = await services.auth.refresh(second!.refreshToken, context);

    const rest = await run(["sessions", "revoke-all", "ALICE", "--json"]);
    assert.deepEqual(
      (JSON.parse(rest.stdout) as { revoked: string[] }).revoked.sort(),
      [second!.sessionId, third!.sessionId].sort(),
    );
    await assert.rejects(services.auth.refresh(secondRotated.refreshToken, context), { code: "session_revoked" });
    await assert.rejects(services.auth.refresh(third!.refreshToken, context), { code: "session_revoked" });
    assert.deepEqual(JSON.parse((await run(["sessions", "list", "alice", "--json"])).stdout), []);
    assert.equal((await run(["sessions", "list", "alice"])).stdout, "no open sessions\n");
  });

  it("replaces a user's roles, which the next access token carries", async () => {
    await services.auth.register("bob", PASSWORD, context);
    const changed = await run(["user", "set-roles", "bob", "admin, auditor,admin", "--json"]);
    assert.equal(changed.status, 0, changed.stderr);
    assert.deepEqual((JSON.parse(changed.stdout) as { roles: string[] }).roles, ["admin", "auditor"]);
    const principal = await services.auth.authenticate(
      (await services.auth.login("bob", PASSWORD, context)).accessToken,
    );
    assert.deepEqual(principal.claims.roles, ["admin", "auditor"]);

    const invalid = await run(["user", "set-roles", "bob", "root;drop"]);
    assert.equal(invalid.status, 2);
    assert.match(invalid.stderr, /role names/);
  });

  it("creates an account with the password from standard input, with registration closed", async () => {
    const created = await run(["user", "add", "Erin", "--json"], { TESSERA_REGISTRATION: "closed" }, `${PASSWORD}\n`);
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual((JSON.parse(created.stdout) as { username: string; roles: string[] }).roles, ["user"]);
    assert.ok(!created.stdout.includes(PASSWORD));
    const tokens = await services.auth.login("erin", PASSWORD, context);
    assert.ok(tokens.accessToken);
    const taken = await run(["user", "add", "erin"], {}, PASSWORD);
    assert.equal(taken.status, 1);
    assert.match(taken.stderr, /already registered/);
  });

  it("exits 2 naming the problem for an unknown user, session or missing argument", async () => {
    assert.match((await run(["sessions", "list", "nobody"])).stderr, /no such user/);
    const unknownSession = await run(["sessions", "revoke", "00000000-0000-4000-8000-000000000000"]);
    assert.equal(unknownSession.status, 2, unknownSession.stderr);
    assert.match(unknownSession.stderr, /no such session/);
    const missing = await run(["sessions", "revoke"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /usage: tessera sessions revoke <session-id>/);
  });

  it("adds, lists, shows, disables, enables, sets the password of and deletes a user", async () => {
    const added = await run(["user", "add", "Frank", "--roles", "ops,user"], {}, `${PASSWORD}\n`);
    assert.equal(added.status, 0, added.stderr);
    assert.match(added.stdout, /^username {2}Frank$/m);
    assert.match(added.stdout, /^roles {5}ops, user$/m);
    assert.match(added.stdout, /^disabled {2}no$/m);
    assert.ok(!added.stdout.includes(PASSWORD) && !added.stdout.includes("argon2"));
    const argv = await run(["user", "add", "george", PASSWORD], {}, PASSWORD);
    assert.equal(argv.status, 2);
    assert.match(argv.stderr, /no password argument/);

    const login = await services.auth.login("frank", PASSWORD, context);
    const shown = await run(["user", "show", "FRANK"]);
    assert.match(shown.stdout, /^sessions {2}1 open$/m);
    const shownJson = JSON.parse((await run(["user", "show", "frank", "--json"])).stdout) as { openSessions: number };
    assert.equal(shownJson.openSessions, 1);

    await services.admin.createUser("frankie", PASSWORD);
    const listed = JSON.parse((await run(["user", "list", "--search", "FRANK", "--json"])).stdout) as {
      users: Array<{ username: string; disabledAt: string | null }>;
      nextCursor: string | null;
    };
    assert.deepEqual(
      listed.users.map((user) => user.username),
      ["Frank", "frankie"],
    );
    assert.equal(listed.nextCursor, null);
    const page = await run(["user", "list", "--search", "frank", "--limit", "1"]);
    assert.match(page.stdout, /^USERNAME +ROLES +CREATED +DISABLED +TOTP +ID$/m);
    const cursor = /^more: --cursor (\S+)$/m.exec(page.stdout)?.[1];
    assert.ok(cursor, page.stdout);
    const next = await run(["user", "list", "--search", "frank", "--limit", "1", "--cursor", cursor]);
    assert.match(next.stdout, /^frankie /m);
    assert.doesNotMatch(next.stdout, /more:/);
    assert.equal((await run(["user", "list", "--role", "ops", "--disabled", "true", "--json"])).status, 0);
    assert.equal((await run(["user", "list", "--disabled", "maybe"])).status, 2);

    const disabled = await run(["user", "disable", "frank", "--json"]);
    assert.equal(disabled.status, 0, disabled.stderr);
    assert.ok((JSON.parse(disabled.stdout) as { disabledAt: string | null }).disabledAt);
    await assert.rejects(services.auth.login("frank", PASSWORD, context), { code: "invalid_credentials" });
    await assert.rejects(services.auth.refresh(login.refreshToken, context), { code: "session_revoked" });
    assert.match((await run(["user", "list", "--disabled", "true"])).stdout, /^Frank /m);
    assert.match((await run(["user", "enable", "frank"])).stdout, /^disabled {2}no$/m);
    const again = await services.auth.login("frank", PASSWORD, context);

    const newPassword = "an operator's new passphrase";
    const set = await run(["user", "set-password", "frank"], {}, `${newPassword}\n`);
    assert.equal(set.status, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`revoked 1 session: ${again.sessionId}`));
    await assert.rejects(services.auth.login("frank", PASSWORD, context), { code: "invalid_credentials" });
    assert.ok((await services.auth.login("frank", newPassword, context)).accessToken);

    const unconfirmed = await run(["user", "delete", "frank"]);
    assert.equal(unconfirmed.status, 2);
    assert.match(unconfirmed.stderr, /needs --yes/);
    const { id } = await services.admin.showUser("frank");
    const deleted = await run(["user", "delete", "frank", "--yes"]);
    assert.equal(deleted.status, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted Frank (${id})\n`);
    await assert.rejects(services.admin.showUser({ id }), { code: "user_not_found" });
    const remaining = await services.admin.listUsers({ search: "frank" });
    assert.deepEqual(
      remaining.users.map((user) => user.username),
      ["frankie"],
    );
    const missing = await run(["user", "show", "frank"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no such user/);
  });

  it("refuses to disable, delete or demote the last enabled admin without --force, and does it with", async () => {
    await services.admin.createUser("Quinn", PASSWORD, ["admin", "user"]);
    for (const other of (await services.admin.listUsers({ role: "admin", disabled: false })).users)
      if (other.username !== "Quinn")
        await services.admin.setUserRoles({ id: other.id }, ["user"], undefined, { force: true });
    const login = await services.auth.login("quinn", PASSWORD, context);
    for (const args of [
      ["user", "disable", "quinn"],
      ["user", "set-roles", "quinn", "user"],
      ["user", "delete", "quinn", "--yes"],
    ]) {
      const refused = await run(args);
      assert.equal(refused.status, 1, args.join(" "));
      assert.equal(refused.stderr, "tessera: Quinn is the last enabled admin; make another admin first\n");
      assert.equal(refused.stdout, "");
    }
    const kept = await services.admin.showUser("quinn");
    assert.deepEqual(kept.roles, ["admin", "user"]);
    assert.equal(kept.disabledAt, null);
    assert.ok((await services.auth.refresh(login.refreshToken, context)).accessToken, "no session revoked");

    const demoted = await run(["user", "set-roles", "quinn", "user", "--force", "--json"]);
    assert.equal(demoted.status, 0, demoted.stderr);
    assert.deepEqual((JSON.parse(demoted.stdout) as { roles: string[] }).roles, ["user"]);
    assert.equal((await run(["user", "set-roles", "quinn", "admin"])).status, 0);
    const disabled = await run(["user", "disable", "quinn", "--force", "--json"]);
    assert.equal(disabled.status, 0, disabled.stderr);
    assert.ok((JSON.parse(disabled.stdout) as { disabledAt: string | null }).disabledAt);
    assert.equal((await run(["user", "enable", "quinn"])).status, 0);
    const deleted = await run(["user", "delete", "quinn", "--yes", "--force"]);
    assert.equal(deleted.status, 0, deleted.stderr);
    await assert.rejects(services.admin.showUser("quinn"), { code: "user_not_found" });
  });

  it("resets a user's second factor after confirmation, revoking every session, and shows TOTP in user views", async () => {
    const [login, other] = await userWithSessions("Heidi", 2);
    const principal = await services.auth.authenticate(login!.accessToken);
    const { uri } = await services.mfa.enrollTotp(principal);
    await services.mfa.confirmTotp(principal, totpCodeOf(uri), context);
    assert.match((await run(["user", "show", "heidi"])).stdout, /^totp {6}on$/m);
    const listed = JSON.parse((await run(["user", "list", "--search", "heidi", "--json"])).stdout) as {
      users: Array<{ username: string; mfa: { totp: boolean } }>;
    };
    assert.deepEqual(
      listed.users.map((user) => [user.username, user.mfa]),
      [["Heidi", { totp: true }]],
    );
    assert.match(
      (await run(["user", "list", "--search", "heidi"])).stdout,
      /^USERNAME +ROLES +CREATED +DISABLED +TOTP +ID\nHeidi +.* on +\S+$/m,
    );

    const unconfirmed = await run(["user", "reset-mfa", "heidi"]);
    assert.equal(unconfirmed.status, 2);
    assert.match(unconfirmed.stderr, /tessera user reset-mfa needs --yes/);
    assert.equal(await services.mfa.isEnabled(login!.userId), true, "nothing changed without --yes");

    const reset = await run(["user", "reset-mfa", "HEIDI", "--yes", "--json"]);
    assert.equal(reset.status, 0, reset.stderr);
    const result = JSON.parse(reset.stdout) as { totpRemoved: boolean; revoked: string[] };
    assert.equal(result.totpRemoved, true);
    // The other session ended when TOTP was turned on; the reset ends the one that turned it on.
    assert.deepEqual(result.revoked, [login!.sessionId]);
    await assert.rejects(services.auth.refresh(other!.refreshToken, context), { code: "session_revoked" });
    assert.equal((await services.auth.signIn("heidi", PASSWORD, context)).kind, "tokens");
    const shown = JSON.parse((await run(["user", "show", "heidi", "--json"])).stdout) as { mfa: { totp: boolean } };
    assert.deepEqual(shown.mfa, { totp: false });
    await services.audit.flush();
    const events = await services.audit.list({ user: login!.userId, type: "mfa_disabled" });
    assert.deepEqual(
      events.events.map((event) => event.details),
      [{ by: "operator" }],
    );

    const again = await run(["user", "reset-mfa", "heidi", "--yes"]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^Heidi had no TOTP on; revoked 1 session: \S+$/m);
    assert.match((await run(["user", "reset-mfa", "nobody", "--yes"])).stderr, /no such user/);
  });

  describe("with TESSERA_REDIS_URL", async () => {
    const skip = await redisSkipReason();

    it("publishes the revocation, so subscribed verifiers drop the sessions at once", { skip }, async () => {
      const logins = await userWithSessions("carol", 2);
      const subscriber = new Redis(TEST_REDIS_URL);
      try {
        await subscriber.subscribe(REVOCATION_CHANNEL);
        const messages: Array<{ sids: string[]; revoked_at: number }> = [];
        subscriber.on("message", (_channel: string, message: string) =>
          messages.push(JSON.parse(message) as { sids: string[]; revoked_at: number }),
        );
        const result = await run(["sessions", "revoke-all", "carol", "--json"], { TESSERA_REDIS_URL: TEST_REDIS_URL });
        assert.equal(result.status, 0, result.stderr);
        for (let i = 0; i < 50 && !messages.some((m) => m.sids.includes(logins[0]!.sessionId)); i += 1)
          await new Promise((done) => setTimeout(done, 20));
        const message = messages.find((m) => m.sids.includes(logins[0]!.sessionId));
        assert.ok(message, `no revocation published; got ${JSON.stringify(messages)}`);
        assert.deepEqual(message.sids.sort(), logins.map((login) => login.sessionId).sort());
        assert.ok(Math.abs(message.revoked_at - Date.now() / 1000) < 30);
      } finally {
        subscriber.disconnect();
      }
    });

    it("still revokes, warns and exits 0 when Redis is unreachable", async () => {
      const [login] = await userWithSessions("dave", 1);
      const started = Date.now();
      const result = await run(["sessions", "revoke", login!.sessionId, "--json"], {
        TESSERA_REDIS_URL: "redis://127.0.0.1:1",
      });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { revoked: [login!.sessionId] });
      assert.match(result.stderr, /revocation not published to Redis/);
      assert.ok(Date.now() - started < 15_000, "gives up on Redis within seconds");
      await assert.rejects(services.auth.refresh(login!.refreshToken, context), { code: "session_revoked" });
    });
  });
});
