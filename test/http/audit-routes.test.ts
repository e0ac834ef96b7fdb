import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import BetterSqlite3 from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import { auditSchema } from "../../src/http/audit-routes.js";
import { createServer } from "../../src/http/server.js";
import { AUDIT_QUERY_FIELDS } from "../../src/service/audit-trail.js";
import { type ServiceFixture, serviceFixture } from "../support/service.js";

const PASSWORD = "correct horse battery staple";
const context = { ip: "127.0.0.1", userAgent: "audit-routes-test" };

interface AuditBody {
  events: Array<{
    id: string;
    type: string;
    user_id: string | null;
    session_id: string | null;
    ip: string | null;
    user_agent: string | null;
    details: Record<string, unknown> | null;
    created_at: string;
  }>;
  next_cursor: string | null;
}

let fixture: ServiceFixture;
let app: FastifyInstance;
let adminToken: string;
let userToken: string;
let counter = 0;

before(async () => {
  fixture = await serviceFixture();
  app = await createServer({ services: fixture.services, rateLimitPerMinute: 0, logger: false });
  await fixture.service.register("auditor", PASSWORD, context);
  await fixture.services.admin.setUserRoles("auditor", ["admin"]);
  adminToken = (await fixture.service.login("auditor", PASSWORD, context)).accessToken;
  await fixture.service.register("plain-user", PASSWORD, context);
  userToken = (await fixture.service.login("plain-user", PASSWORD, context)).accessToken;
});
after(async () => {
  await app.close();
  await fixture.close();
});

function audit(query: string, token: string | null = adminToken) {
  return app.inject({
    method: "GET",
    url: `/admin/audit${query}`,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
}

function login(username: string, password: string) {
  return app.inject({
    method: "POST",
    url: "/auth/login",
    headers: { "content-type": "application/json", "user-agent": "audit-routes-test" },
    payload: { username, password },
  });
}

async function someone() {
  counter += 1;
  const username = `watched${counter}`;
  fixture.clock.advance(1);
  const user = await fixture.service.register(username, PASSWORD, context);
  return { username, user };
}

describe("GET /admin/audit", () => {
  it("answers 401 without a token and 403 insufficient_scope without the admin role", async () => {
    const anonymous = await audit("", null);
    assert.equal(anonymous.statusCode, 401);
    assert.match(String(anonymous.headers["www-authenticate"]), /^Bearer/);
    const forbidden = await audit("?type=nonsense", userToken);
    assert.equal(forbidden.statusCode, 403);
    assert.equal(forbidden.json<{ error: string }>().error, "insufficient_scope");
  });

  it("lists a user's events newest first, by username or id, filtered by type", async () => {
    const { username, user } = await someone();
    fixture.clock.advance(1);
    assert.equal((await login(username, PASSWORD)).statusCode, 200);
    fixture.clock.advance(1);
    assert.equal((await login(username, "not the password")).statusCode, 401);
    const byName = await audit(`?user=${username}`);
    assert.equal(byName.statusCode, 200, byName.body);
    assert.equal(byName.headers["cache-control"], "no-store");
    const body = byName.json<AuditBody>();
    assert.deepEqual(
      body.events.map((event) => event.type),
      ["login_failed", "login_succeeded", "user_registered"],
    );
    assert.ok(body.events.every((event) => event.user_id === user.id));
    assert.equal(body.events[1]!.user_agent, "audit-routes-test");
    assert.equal(body.events[0]!.created_at, fixture.clock.now().toISOString());
    assert.equal(body.next_cursor, null);
    const failed = (await audit(`?user=${user.id}&type=login_failed`)).json<AuditBody>();
    assert.deepEqual(
      failed.events.map((event) => [event.type, event.details]),
      [["login_failed", { reason: "wrong_password" }]],
    );
  });

  it("filters by session and time", async () => {
    const { username } = await someone();
    fixture.clock.advance(1);
    const tokens = await fixture.service.login(username, PASSWORD, context);
    fixture.clock.advance(1);
    await fixture.service.refresh(tokens.refreshToken, context);
    const since = fixture.clock.now().toISOString();
    fixture.clock.advance(1);
    await fixture.service.logout((await fixture.service.login(username, PASSWORD, context)).refreshToken, context);
    const bySession = (await audit(`?session=${tokens.sessionId}`)).json<AuditBody>();
    assert.deepEqual(
      bySession.events.map((event) => event.type),
      ["token_refreshed", "login_succeeded"],
    );
    const window = (await audit(`?user=${username}&since=${encodeURIComponent(since)}`)).json<AuditBody>();
    assert.deepEqual(window.events.map((event) => event.type).sort(), ["login_succeeded", "logout", "token_refreshed"]);
    const before = (await audit(`?user=${username}&until=${encodeURIComponent(since)}`)).json<AuditBody>();
    assert.deepEqual(
      before.events.map((event) => event.type),
      ["login_succeeded", "user_registered"],
    );
  });

  it("walks every page once with the cursor, whatever the page size", async () => {
    const { username } = await someone();
    for (let i = 0; i < 11; i += 1) {
      if (i % 3 === 0) fixture.clock.advance(1);
      await fixture.service.login(username, PASSWORD, context);
    }
    for (const limit of [1, 4, 12, 13]) {
      const ids: string[] = [];
      let cursor = "";
      for (let page = 0; page < 20; page += 1) {
        const response = await audit(`?user=${username}&limit=${limit}${cursor}`);
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json<AuditBody>();
        assert.ok(body.events.length <= limit);
        ids.push(...body.events.map((event) => event.id));
        if (body.next_cursor === null) break;
        cursor = `&cursor=${body.next_cursor}`;
      }
      assert.equal(ids.length, 12, `limit ${limit}`);
      assert.equal(new Set(ids).size, 12, `no duplicates with limit ${limit}`);
    }
  });

  it("refuses bad filters with 400 invalid_request", async () => {
    for (const query of [
      "?type=login_failed,bogus",
      "?type=login_failed&type=logout",
      "?since=2026-13-01",
      "?since=2026-01-01T10:00",
      "?since=2026-02-01&until=2026-01-01",
      "?limit=0",
      "?limit=501",
      "?limit=-1",
      "?limit=ten",
      "?cursor=not*a*cursor",
      "?cursor=bm9wZQ",
      "?user=nobody-is-called-this",
      `?user=${"x".repeat(200)}`,
      "?colour=blue",
    ]) {
      const response = await audit(query);
      assert.equal(response.statusCode, 400, `${query}: ${response.body}`);
      assert.equal(response.json<{ error: string }>().error, "invalid_request", query);
    }
  });

  it("takes exactly the query fields docs/audit.md lists, which tessera audit list takes as flags", () => {
    const doc = readFileSync(resolve("docs/audit.md"), "utf8");
    const section = doc.slice(doc.indexOf("## Reading"), doc.indexOf("\n## ", doc.indexOf("## Reading") + 1));
    const rows = [...section.matchAll(/^\| `(\w+)` \| `--(\w+)` \|/gm)];
    assert.deepEqual(
      rows.map((row) => row[1]),
      Object.keys(auditSchema.querystring.properties),
    );
    assert.ok(rows.every((row) => row[1] === row[2]));
    assert.deepEqual(Object.keys(auditSchema.querystring.properties), [...AUDIT_QUERY_FIELDS]);
  });

  it("is described in the OpenAPI document", async () => {
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json<{
      paths: Record<string, Record<string, { responses: Record<string, unknown>; parameters: { name: string }[] }>>;
    }>();
    const operation = spec.paths["/admin/audit"]?.get;
    assert.ok(operation, "GET /admin/audit is documented");
    assert.ok(operation.responses["200"] && operation.responses["4XX"]);
    assert.deepEqual(operation.parameters.map((parameter) => parameter.name).sort(), [
      "cursor",
      "limit",
      "session",
      "since",
      "type",
      "until",
      "user",
    ]);
  });
});

describe("POST /auth/login failures", () => {
  it("answer alike for an unknown user and a wrong password, while the audit tells them apart", async () => {
    const { username, user } = await someone();
    fixture.clock.advance(1);
    const since = fixture.clock.now().toISOString();
    const wrong = await login(username, "not the password");
    const unknown = await login(`${username}-nobody`, "not the password");
    const wire = (response: typeof wrong) => {
      const { date: _date, "x-request-id": _id, ...headers } = response.headers;
      return { status: response.statusCode, headers, body: response.body };
    };
    assert.equal(wrong.statusCode, 401);
    assert.deepEqual(wire(unknown), wire(wrong));
    const failures = (await audit(`?type=login_failed&since=${encodeURIComponent(since)}`)).json<AuditBody>();
    assert.deepEqual(failures.events.map((event) => [event.user_id, event.details]).sort(), [
      [null, { reason: "unknown_user" }],
      [user.id, { reason: "wrong_password" }],
    ]);
  });
});

describe("/metrics", () => {
  it("counts audit events the store could not write, while logins still succeed", async () => {
    const path = fixture.databaseUrl.slice("sqlite:".length);
    const sql = (statement: string) => {
      const connection = new BetterSqlite3(path);
      try {
        connection.pragma("busy_timeout = 5000");
        connection.exec(statement);
      } finally {
        connection.close();
      }
    };
    const { username } = await someone();
    await fixture.services.audit.flush();
    const before = await app.inject({ method: "GET", url: "/metrics" });
    assert.match(before.body, /^tessera_audit_write_failures_total\{reason="store_error"\} 0$/m);
    sql("alter table audit_events rename to audit_events_away");
    try {
      assert.equal((await login(username, PASSWORD)).statusCode, 200);
      await fixture.services.audit.flush();
    } finally {
      sql("alter table audit_events_away rename to audit_events");
    }
    const metrics = await app.inject({ method: "GET", url: "/metrics" });
    assert.match(metrics.body, /^tessera_audit_write_failures_total\{reason="store_error"\} 1$/m);
    assert.match(metrics.body, /^tessera_audit_write_failures_total\{reason="buffer_full"\} 0$/m);
  });
});
