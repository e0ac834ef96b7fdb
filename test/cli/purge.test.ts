import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/store.js";
import { createTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DAY = 86_400_000;

async function purge(url: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "src/cli/main.ts", "purge", "--database", url, "--batch-size", "2"],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "" },
      timeout: 30_000,
    },
  );
  return stdout.trim();
}

/** Stores a session with one token; times are offsets from now in ms. */
async function seed(store: Store, times: { sessionEnds: number; tokenExpires: number; revoked?: number }) {
  const now = Date.now();
  const username = `purge-${randomBytes(4).toString("hex")}`;
  const user = {
    id: randomUUID(),
    username,
    usernameKey: username,
    passwordHash: "x",
    roles: [],
    createdAt: new Date(now - 2 * DAY),
  };
  await store.createUser(user);
  const session = {
    id: randomUUID(),
    userId: user.id,
    createdAt: new Date(now - 2 * DAY),
    lastUsedAt: new Date(now - 2 * DAY),
    expiresAt: new Date(now + times.sessionEnds),
    idleExpiresAt: new Date(now + times.sessionEnds),
    revokedAt: times.revoked === undefined ? null : new Date(now + times.revoked),
    revokedReason: times.revoked === undefined ? null : "logout",
    userAgent: null,
    ip: null,
  };
  const token = {
    id: randomUUID(),
    sessionId: session.id,
    tokenHash: randomBytes(32).toString("hex"),
    parentId: null,
    createdAt: session.createdAt,
    expiresAt: new Date(now + times.tokenExpires),
    usedAt: null,
  };
  await store.createSession(session, token);
  return { session, token };
}

for (const { kind, skip } of await storesUnderTest()) {
  describe(`tessera purge on ${kind}`, { skip }, () => {
    let database: TestDatabase;
    let store: Store;

    before(async () => {
      database = await createTestDatabase(kind);
      store = openStore({ url: database.url });
      await store.migrate();
    });

    after(async () => {
      await store?.close();
      await database?.drop();
    });

    it("deletes expired tokens, ended sessions, spent mailed links and old audit events in batches, prints the counts, and keeps live and recently revoked rows", async () => {
      for (let i = 0; i < 3; i += 1) await seed(store, { sessionEnds: -DAY, tokenExpires: -DAY });
      const live = await seed(store, { sessionEnds: 10 * DAY, tokenExpires: -DAY });
      const successor = {
        ...live.token,
        id: randomUUID(),
        tokenHash: randomBytes(32).toString("hex"),
        parentId: live.token.id,
        expiresAt: new Date(Date.now() + DAY),
      };
      assert.equal(
        await store.rotateRefreshToken({
          presentedId: live.token.id,
          sessionId: live.session.id,
          successor,
          now: new Date(),
        }),
        true,
      );
      // Revoked a minute ago: kept while access tokens naming it may still be in use.
      await seed(store, { sessionEnds: 10 * DAY, tokenExpires: DAY, revoked: -60_000 });
      await seed(store, { sessionEnds: 10 * DAY, tokenExpires: DAY });

      // TESSERA_AUDIT_RETENTION's default, 90 days: the older event goes.
      const auditEvent = (ageDays: number) => ({
        id: randomUUID(),
        type: "token_refreshed",
        userId: null,
        sessionId: null,
        ip: null,
        userAgent: null,
        details: null,
        createdAt: new Date(Date.now() - ageDays * DAY),
      });
      await store.insertAuditEvents([auditEvent(91), auditEvent(89)]);

      // Mailed links: one expired, one used, one live.
      const owner = await seed(store, { sessionEnds: 10 * DAY, tokenExpires: DAY });
      const link = (expiresInMs: number) => ({
        id: randomUUID(),
        userId: owner.session.userId,
        purpose: "password_reset",
        tokenHash: randomBytes(32).toString("hex"),
        boundTo: "fingerprint",
        createdAt: new Date(Date.now() - DAY),
        expiresAt: new Date(Date.now() + expiresInMs),
        usedAt: null,
      });
      const [expiredLink, usedLink, liveLink] = [link(-60_000), link(DAY), link(DAY)];
      for (const token of [expiredLink, usedLink, liveLink]) await store.createOneTimeToken(token);
      assert.ok(await store.consumeOneTimeToken(usedLink.tokenHash, "password_reset", new Date()));

      assert.equal(
        await purge(database.url),
        "purged 4 refresh tokens, 3 sessions, 2 one-time tokens and 1 audit events",
      );
      const links = await queryRows(database, "select id from one_time_tokens");
      assert.deepEqual(
        links.map((row) => row.id),
        [liveLink.id],
      );
      const [audit] = await queryRows(database, "select count(*) as n from audit_events");
      assert.equal(Number(audit?.n), 1);
      const [rows] = await queryRows(
        database,
        "select (select count(*) from sessions) as sessions, (select count(*) from refresh_tokens) as tokens",
      );
      assert.deepEqual({ sessions: Number(rows?.sessions), tokens: Number(rows?.tokens) }, { sessions: 4, tokens: 4 });
      assert.ok(await store.findRefreshToken(successor.tokenHash));

      assert.equal(
        await purge(database.url),
        "purged 0 refresh tokens, 0 sessions, 0 one-time tokens and 0 audit events",
      );
    });
  });
}
