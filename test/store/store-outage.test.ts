import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isTesseraError } from "../../src/core/errors.js";
import { openStore } from "../../src/store/open-store.js";
import { ADMIN_URLS, createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { TcpProxy } from "../support/tcp-proxy.js";

const json = { "content-type": "application/json" };

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: "POST", headers: json, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `url` pointing at 127.0.0.1:`port` instead of its own host and port. */
function viaPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = "127.0.0.1";
  parsed.port = String(port);
  return parsed.toString();
}

const networked = (await storesUnderTest()).filter(({ kind }) => kind !== "sqlite");

for (const { kind, skip } of networked) {
  describe(`A ${kind} database that is down or goes away`, { skip }, () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let server: RunningServer;

    before(async () => {
      database = await createTestDatabase(kind);
      const target = new URL(ADMIN_URLS[kind as "postgres" | "mysql"]);
      proxy = await TcpProxy.start({
        host: target.hostname,
        port: Number(target.port || (kind === "postgres" ? 5432 : 3306)),
      });
      server = await startServer({ databaseUrl: viaPort(database.url, proxy.port), databasePoolSize: 4 });
    });

    after(async () => {
      await server?.close();
      await proxy?.close();
      await database?.drop();
    });

    it("makes a store that cannot connect throw store_unavailable", async () => {
      const idle = await TcpProxy.start({ host: "127.0.0.1", port: 9 });
      await idle.cut();
      const store = openStore({ url: viaPort(database.url, idle.port) });
      try {
        await assert.rejects(store.ping(), (error) => isTesseraError(error, "store_unavailable"));
        await assert.rejects(store.findUserByUsername("anyone"), (error) => isTesseraError(error, "store_unavailable"));
        await assert.rejects(store.migrate(), (error) => isTesseraError(error, "store_unavailable"));
      } finally {
        await store.close();
      }
    });

    it("answers 503 temporarily_unavailable (never 500) and /readyz 503, then recovers by itself with no token lost or duplicated", async () => {
      const tokens = await registerAndLogin(server.url, "outage");
      assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

      await proxy.cut();
      assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
      const during = await Promise.all([
        post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token }),
        post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token }),
        post(`${server.url}/auth/login`, { username: "outage", password: "correct horse battery staple" }),
        post(`${server.url}/auth/register`, { username: "newcomer", password: "correct horse battery staple" }),
        fetch(`${server.url}/auth/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } }).then(
          async (r) => ({
            status: r.status,
            body: (await r.json()) as Record<string, unknown>,
          }),
        ),
      ]);
      for (const answer of during)
        assert.deepEqual([answer.status, answer.body.error], [503, "temporarily_unavailable"]);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200, "liveness does not depend on the database");

      await proxy.restore();
      await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, 15_000);

      const [first, second] = await Promise.all([
        post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token }),
        post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token }),
      ]);
      assert.equal(first.status, 200);
      assert.equal(second.status, 200);
      assert.equal(first.body.refresh_token, second.body.refresh_token);
      const [counts] = await queryRows(
        database,
        "select count(*) as tokens, count(parent_id) as successors, count(used_at) as used from refresh_tokens",
      );
      assert.deepEqual(
        { tokens: Number(counts?.tokens), successors: Number(counts?.successors), used: Number(counts?.used) },
        { tokens: 2, successors: 1, used: 1 },
      );
    });

    it("answers requests in flight when the database goes away with 200 or 503, never 500, and keeps running", async () => {
      const users = await Promise.all(
        ["inflight1", "inflight2", "inflight3", "inflight4"].map((name) => registerAndLogin(server.url, name)),
      );
      const burst = users.flatMap((tokens) => [
        post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token }),
        fetch(`${server.url}/auth/sessions`, { headers: { authorization: `Bearer ${tokens.access_token}` } }).then(
          (r) => ({ status: r.status, body: {} }),
        ),
        fetch(`${server.url}/readyz`).then((r) => ({ status: r.status, body: {} })),
      ]);
      await new Promise((resolve) => setImmediate(resolve));
      await proxy.cut();
      const statuses = (await Promise.all(burst)).map((answer) => answer.status);
      assert.ok(
        statuses.every((status) => status === 200 || status === 503),
        `statuses ${statuses.join(",")}`,
      );
      await proxy.restore();
      await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, 15_000);
      // A refresh whose answer was lost is retried with the same token: within the grace window
      // it gets the same successor whether or not the first attempt was committed.
      for (const tokens of users) {
        const again = await post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token });
        assert.equal(again.status, 200);
      }
    });

    it("recovers when connections drop while the database stays reachable", async () => {
      const tokens = await registerAndLogin(server.url, "dropped");
      // Every pooled connection dies at once; the next requests must open new ones.
      await proxy.cut();
      await proxy.restore();
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => fetch(`${server.url}/readyz`).then((r) => r.status)),
      );
      assert.ok(
        answers.every((status) => status === 200 || status === 503),
        `statuses ${answers.join(",")}`,
      );
      await waitFor(async () => (await fetch(`${server.url}/readyz`)).status === 200, 15_000);
      const refreshed = await post(`${server.url}/auth/refresh`, { refresh_token: tokens.refresh_token });
      assert.equal(refreshed.status, 200);
    });
  });
}
