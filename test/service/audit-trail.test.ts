import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import BetterSqlite3 from "better-sqlite3";
import type { Logger } from "../../src/core/logger.js";
import { resolveConfig } from "../../src/http/server-config.js";
import {
  AUDIT_BUFFER,
  AUDIT_EVENT_TYPES,
  AuditTrail,
  type AuditLossReason,
  LOGIN_FAILURE_REASONS,
} from "../../src/service/audit-trail.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { createServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import type { AuditEventRecord, Store } from "../../src/store/store.js";
import { FrozenClock } from "../support/clock.js";
import { temporaryDirectory } from "../support/server.js";
import { type ServiceFixture, serviceFixture, silentLogger, rejectsWith } from "../support/service.js";

const context: RequestContext = { ip: "203.0.113.7", userAgent: "audit-test/1.0" };
const PASSWORD = "correct horse battery staple";

let counter = 0;
function username() {
  counter += 1;
  return `auditee${counter}`;
}

/** The events of a user, oldest first, after the buffer is written. */
async function eventsOf(fixture: ServiceFixture, filter: { userId?: string; sessionId?: string }) {
  await fixture.services.audit.flush();
  return (await fixture.store.listAuditEvents(filter, null, 1000)).reverse();
}

/** Type, subject and details of each event: what an investigator reads. */
const summary = (events: readonly AuditEventRecord[]) =>
  events.map(({ type, userId, sessionId, details }) => ({ type, userId, sessionId, details }));

describe("AuditTrail", () => {
  let fixture: ServiceFixture;

  before(async () => {
    fixture = await serviceFixture();
  });
  after(() => fixture.close());

  async function registered() {
    const name = username();
    fixture.clock.advance(1);
    const user = await fixture.service.register(name, PASSWORD, context);
    return { name, user };
  }

  describe("the events of the user's flows", () => {
    it("records register, logins, refresh, grace repeat, reuse and logout with their subjects and details", async () => {
      const { name, user } = await registered();
      fixture.clock.advance(1);
      await rejectsWith(fixture.service.login(name, "wrong password!", context), "invalid_credentials");
      fixture.clock.advance(1);
      const first = await fixture.service.login(name, PASSWORD, context);
      fixture.clock.advance(1);
      const rotated = await fixture.service.refresh(first.refreshToken, context);
      fixture.clock.advance(1);
      await fixture.service.refresh(first.refreshToken, context);
      fixture.clock.advance(60);
      await rejectsWith(fixture.service.refresh(first.refreshToken, context), "refresh_token_reused");
      fixture.clock.advance(1);
      const second = await fixture.service.login(name, PASSWORD, context);
      fixture.clock.advance(1);
      await fixture.service.logout(second.refreshToken, context);

      const events = await eventsOf(fixture, { userId: user.id });
      const firstToken = events.find((event) => event.type === "token_refreshed")?.details?.tokenId;
      assert.equal(typeof firstToken, "string");
      assert.deepEqual(summary(events), [
        { type: "user_registered", userId: user.id, sessionId: null, details: null },
        { type: "login_failed", userId: user.id, sessionId: null, details: { reason: "wrong_password" } },
        { type: "login_succeeded", userId: user.id, sessionId: first.sessionId, details: null },
        { type: "token_refreshed", userId: user.id, sessionId: first.sessionId, details: { tokenId: firstToken } },
        {
          type: "refresh_grace_repeat",
          userId: user.id,
          sessionId: first.sessionId,
          details: { tokenId: firstToken },
        },
        {
          type: "refresh_token_reused",
          userId: user.id,
          sessionId: first.sessionId,
          details: { tokenId: firstToken, sessionRevoked: true },
        },
        { type: "login_succeeded", userId: user.id, sessionId: second.sessionId, details: null },
        { type: "logout", userId: user.id, sessionId: second.sessionId, details: null },
      ]);
      assert.ok(events.every((event) => event.ip === context.ip && event.userAgent === context.userAgent));
      const stored = JSON.stringify(events);
      for (const secret of [PASSWORD, "wrong password!", first.refreshToken, rotated.refreshToken, first.accessToken])
        assert.ok(!stored.includes(secret), "no token or password in any event");
    });

    it("tells an unknown user from a wrong password only in details.reason", async () => {
      fixture.clock.advance(1);
      const since = fixture.clock.now();
      await rejectsWith(fixture.service.login("nobody-at-all", PASSWORD, context), "invalid_credentials");
      await fixture.services.audit.flush();
      const events = await fixture.store.listAuditEvents({ types: ["login_failed"], since }, null, 10);
      assert.deepEqual(summary(events), [
        { type: "login_failed", userId: null, sessionId: null, details: { reason: "unknown_user" } },
      ]);
      assert.ok(!JSON.stringify(events).includes("nobody-at-all"), "the name tried is not kept");
    });

    it("records who revoked: the user for their own session, logout-all and RFC 7009 revocation", async () => {
      const { name, user } = await registered();
      const a = await fixture.service.login(name, PASSWORD, context);
      const b = await fixture.service.login(name, PASSWORD, context);
      const c = await fixture.service.login(name, PASSWORD, context);
      const principal = await fixture.service.authenticate(a.accessToken);
      fixture.clock.advance(1);
      await fixture.service.revokeSession(principal, b.sessionId, context);
      fixture.clock.advance(1);
      await fixture.service.revokeToken(c.accessToken, context);
      fixture.clock.advance(1);
      await fixture.service.logoutAll(principal, context);
      const revocations = (await eventsOf(fixture, { userId: user.id })).filter((event) =>
        event.type.startsWith("session"),
      );
      assert.deepEqual(summary(revocations), [
        { type: "session_revoked", userId: user.id, sessionId: b.sessionId, details: { reason: "user", by: user.id } },
        {
          type: "session_revoked",
          userId: user.id,
          sessionId: c.sessionId,
          details: { reason: "revocation", by: user.id },
        },
        {
          type: "sessions_revoked",
          userId: user.id,
          sessionId: a.sessionId,
          details: { reason: "logout_all", count: 1, by: user.id },
        },
      ]);
    });

    it("records logout-others with the count of the other sessions it ended, the caller's kept", async () => {
      const { name, user } = await registered();
      const a = await fixture.service.login(name, PASSWORD, context);
      const b = await fixture.service.login(name, PASSWORD, context);
      const c = await fixture.service.login(name, PASSWORD, context);
      const principal = await fixture.service.authenticate(a.accessToken);
      fixture.clock.advance(1);
      const revoked = await fixture.service.logoutOthers(principal, context);
      assert.deepEqual(revoked.sort(), [b.sessionId, c.sessionId].sort());
      assert.equal((await fixture.store.findSession(a.sessionId))?.revokedAt, null);
      assert.equal((await fixture.store.findSession(b.sessionId))?.revokedReason, "logout_others");
      const revocations = (await eventsOf(fixture, { userId: user.id })).filter((event) =>
        event.type.startsWith("session"),
      );
      assert.deepEqual(summary(revocations), [
        {
          type: "sessions_revoked",
          userId: user.id,
          sessionId: a.sessionId,
          details: { reason: "logout_others", count: 2, by: user.id },
        },
      ]);
    });

    it("serves events written by other code (keys) through record()", async () => {
      fixture.clock.advance(1);
      const since = fixture.clock.now();
      await fixture.services.audit.record("key_created", { ip: null, userAgent: "tessera-cli" }, {}, { kid: "k1" });
      await fixture.services.audit.flush();
      const [event] = await fixture.store.listAuditEvents({ types: ["key_created"], since }, null, 10);
      assert.deepEqual(summary([event!]), [
        { type: "key_created", userId: null, sessionId: null, details: { kid: "k1" } },
      ]);
    });
  });

  describe("buffering", () => {
    /** The real store, counting the batches written through it. */
    function countingBatches(store: Store) {
      const batches: number[] = [];
      const counted = Object.create(store) as Store;
      counted.insertAuditEvents = (events) => {
        batches.push(events.length);
        return store.insertAuditEvents(events);
      };
      return { store: counted, batches };
    }

    it("writes events after at most flushIntervalMs, in multi-row batches of at most batchSize", async () => {
      const { store, batches } = countingBatches(fixture.store);
      const trail = new AuditTrail(store, fixture.clock, silentLogger, {
        ...AUDIT_BUFFER,
        flushIntervalMs: 20,
        batchSize: 10,
      });
      const userId = randomUUID();
      await trail.record("token_refreshed", context, { userId });
      assert.equal(batches.length, 0, "nothing is written while the request runs");
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.deepEqual(batches, [1]);
      for (let i = 0; i < 25; i += 1) await trail.record("token_refreshed", context, { userId });
      await trail.flush();
      assert.equal(
        batches.reduce((a, b) => a + b),
        26,
      );
      assert.ok(batches.every((size) => size <= 10) && batches.length >= 4, `batches ${batches.join(",")}`);
      assert.equal((await fixture.store.listAuditEvents({ userId }, null, 100)).length, 26);
    });

    it("writes what is still buffered when the services close", async () => {
      const local = await serviceFixture();
      const userId = randomUUID();
      for (let i = 0; i < 3; i += 1) await local.services.audit.record("token_refreshed", context, { userId });
      await local.services.close();
      const reopened = openStore({ url: local.databaseUrl });
      try {
        assert.equal((await reopened.listAuditEvents({ userId }, null, 10)).length, 3);
      } finally {
        await reopened.close();
        await local.close().catch(() => undefined);
      }
    });

    it("drops events beyond its capacity and counts them, never throwing", async () => {
      const lost: [number, AuditLossReason][] = [];
      const trail = new AuditTrail(fixture.store, fixture.clock, silentLogger, {
        ...AUDIT_BUFFER,
        capacity: 10,
      });
      trail.onEventsLost((count, reason) => lost.push([count, reason]));
      const userId = randomUUID();
      for (let i = 0; i < 13; i += 1) await trail.record("token_refreshed", context, { userId });
      await trail.flush();
      assert.deepEqual(lost, [
        [1, "buffer_full"],
        [1, "buffer_full"],
        [1, "buffer_full"],
      ]);
      assert.equal((await fixture.store.listAuditEvents({ userId }, null, 100)).length, 10);
    });
  });

  describe("list()", () => {
    it("finds a user's events by username or id, filters by type and time, and walks every page once", async () => {
      const { name, user } = await registered();
      for (let i = 0; i < 7; i += 1) {
        fixture.clock.advance(1);
        await fixture.service.login(name, PASSWORD, context);
      }
      const byName = await fixture.services.audit.list({ user: name.toUpperCase(), type: "login_succeeded" });
      const byId = await fixture.services.audit.list({ user: user.id, type: "login_succeeded,login_succeeded" });
      assert.equal(byName.events.length, 7);
      assert.deepEqual(byId, byName);
      const seen: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await fixture.services.audit.list({ user: name, limit: "3", ...(cursor ? { cursor } : {}) });
        seen.push(...page.events.map((event) => event.id));
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      assert.equal(seen.length, 8);
      assert.equal(new Set(seen).size, 8);
      const newest = byName.events[0]!.createdAt;
      const window = await fixture.services.audit.list({
        user: user.id,
        since: new Date(newest.getTime() - 2000).toISOString(),
        until: newest.toISOString(),
      });
      assert.equal(window.events.length, 2, "since inclusive, until exclusive");
    });

    it("refuses bad filters with invalid_request", async () => {
      const { audit } = fixture.services;
      for (const query of [
        { type: "login_succeeded,no_such_type" },
        { since: "2026-02-30" },
        { since: "2026-01-01T12:00" },
        { since: "yesterday" },
        { since: "2026-02-01", until: "2026-01-01" },
        { limit: "0" },
        { limit: "501" },
        { limit: "ten" },
        { cursor: "bm90LWEtY3Vyc29y" },
        { user: "nobody-by-that-name" },
        { session: "" },
      ]) {
        await rejectsWith(audit.list(query), "invalid_request");
      }
    });

    it("still lists the events of a user id no longer in the users table", async () => {
      const page = await fixture.services.audit.list({ user: randomUUID() });
      assert.deepEqual(page, { events: [], nextCursor: null });
    });
  });

  describe("retention", () => {
    it("purge deletes events older than auditRetention and reports how many", async () => {
      const local = await serviceFixture({ auditRetention: "30d" });
      try {
        const userId = randomUUID();
        await local.services.audit.record("token_refreshed", context, { userId });
        local.clock.advance(20 * 86400);
        await local.services.audit.record("token_refreshed", context, { userId });
        local.clock.advance(11 * 86400);
        await local.services.audit.flush();
        const purged = await local.services.admin.purge(1);
        assert.equal(purged.auditEvents, 2, "the first refresh, and the key elected at start");
        assert.equal((await local.store.listAuditEvents({ userId }, null, 10)).length, 1);
      } finally {
        await local.close();
      }
    });
  });
});

describe("docs/audit.md", () => {
  it("lists every event type once, and only those, with every login failure reason", () => {
    const doc = readFileSync(resolve("docs/audit.md"), "utf8");
    const section = doc.slice(doc.indexOf("## Events"), doc.indexOf("\n## ", doc.indexOf("## Events") + 1));
    const rows = [...section.matchAll(/^\| `(\w+)` \|/gm)].map((match) => match[1]);
    assert.deepEqual(rows, [...AUDIT_EVENT_TYPES]);
    for (const reason of LOGIN_FAILURE_REASONS) assert.ok(section.includes(`\`${reason}\``), reason);
  });
});

describe("AuditTrail when the store cannot write", () => {
  let dir: ReturnType<typeof temporaryDirectory>;
  let services: TesseraServices;
  let path: string;
  const logged: { object: object; message: string }[] = [];
  const logger: Logger = {
    info: () => undefined,
    warn: () => undefined,
    error: (object, message) => logged.push({ object, message }),
  };

  before(async () => {
    dir = temporaryDirectory();
    path = join(dir.path, "tessera.db");
    const store = openStore({ url: `sqlite:${path}` });
    await store.migrate();
    const config = resolveConfig({
      databaseUrl: `sqlite:${path}`,
      secret: "audit-test-secret-0123456789-abcdefghij",
      issuer: "https://issuer.test",
    });
    services = await createServices({ store, config, logger, clock: new FrozenClock() });
  });
  after(async () => {
    await services.close();
    dir.remove();
  });

  function sql(statement: string) {
    const connection = new BetterSqlite3(path);
    try {
      connection.pragma("busy_timeout = 5000");
      connection.exec(statement);
    } finally {
      connection.close();
    }
  }

  it("still logs in and refreshes, logs the failure without secrets and counts the events lost", async () => {
    await services.auth.register("carol", PASSWORD, context);
    await services.audit.flush();
    const lost: [number, AuditLossReason][] = [];
    services.audit.onEventsLost((count, reason) => lost.push([count, reason]));
    sql("alter table audit_events rename to audit_events_away");
    try {
      const tokens = await services.auth.login("carol", PASSWORD, context);
      const next = await services.auth.refresh(tokens.refreshToken, context);
      await rejectsWith(services.auth.login("carol", "wrong password!", context), "invalid_credentials");
      await services.audit.flush();
      assert.deepEqual(
        lost.reduce((sum, [count]) => sum + count, 0),
        3,
      );
      assert.ok(lost.every(([, reason]) => reason === "store_error"));
      assert.equal(logged.length, 1, "one line, not one per event");
      assert.equal(logged[0]!.message, "audit events could not be written");
      const line = JSON.stringify(logged[0]);
      for (const secret of [PASSWORD, "wrong password!", tokens.refreshToken, next.refreshToken, tokens.accessToken])
        assert.ok(!line.includes(secret));
    } finally {
      sql("alter table audit_events_away rename to audit_events");
    }
    const later = await services.auth.login("carol", PASSWORD, context);
    await services.audit.flush();
    const page = await services.audit.list({ user: "carol", type: "login_succeeded" });
    assert.deepEqual(
      page.events.map((event) => event.sessionId),
      [later.sessionId],
      "writes resume once the table is back",
    );
  });
});
