import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import pg from "pg";
import { isTesseraError } from "../../src/core/errors.js";
import { openStore, STORE_DEADLINES } from "../../src/store/open-store.js";
import type { RefreshTokenRecord, SessionRecord, Store } from "../../src/store/store.js";
import { createTestDatabase, storesUnderTest, type TestDatabase } from "../support/databases.js";

const T0 = new Date("2026-05-01T10:00:00.000Z");
const later = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

function aToken(sessionId: string, parentId: string | null = null): RefreshTokenRecord {
  return {
    id: randomUUID(),
    sessionId,
    tokenHash: randomBytes(32).toString("hex"),
    parentId,
    createdAt: T0,
    expiresAt: later(86_400),
    usedAt: null,
  };
}

async function seed(store: Store): Promise<{ session: SessionRecord; token: RefreshTokenRecord }> {
  const userId = randomUUID();
  await store.createUser({
    id: userId,
    username: `deadline-${userId.slice(0, 8)}`,
    usernameKey: `deadline-${userId.slice(0, 8)}`,
    passwordHash: "x",
    roles: ["user"],
    createdAt: T0,
  });
  const session: SessionRecord = {
    id: randomUUID(),
    userId,
    createdAt: T0,
    lastUsedAt: T0,
    expiresAt: later(30 * 86_400),
    idleExpiresAt: later(86_400),
    revokedAt: null,
    revokedReason: null,
    userAgent: null,
    ip: null,
  };
  const token = aToken(session.id);
  await store.createSession(session, token);
  return { session, token };
}

/** A connection of the test's own that holds a session row locked until `release()`. */
async function lockSession(database: TestDatabase, sessionId: string): Promise<{ release(): Promise<void> }> {
  if (database.kind === "postgres") {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query("begin");
    await client.query("select id from sessions where id = $1 for update", [sessionId]);
    return {
      release: async () => {
        await client.query("rollback");
        await client.end();
      },
    };
  }
  const connection = await mysql.createConnection(database.url);
  await connection.query("start transaction");
  await connection.query("select id from sessions where id = ? for update", [sessionId]);
  return {
    release: async () => {
      await connection.query("rollback");
      await connection.end();
    },
  };
}

const networked = (await storesUnderTest()).filter(({ kind }) => kind !== "sqlite");

for (const { kind, skip } of networked) {
  describe(`Deadlines of the ${kind} store`, { skip }, () => {
    let database: TestDatabase;
    let store: Store;

    before(async () => {
      database = await createTestDatabase(kind);
      store = openStore({ url: database.url, poolSize: 2 });
      await store.migrate();
    });

    after(async () => {
      await store?.close();
      await database?.drop();
    });

    it("answers store_unavailable within the statement deadline while another connection holds the session's lock, then serves again", async () => {
      const { session, token } = await seed(store);
      const lock = await lockSession(database, session.id);
      const started = performance.now();
      try {
        await assert.rejects(
          store.rotateRefreshToken({
            presentedId: token.id,
            sessionId: session.id,
            successor: aToken(session.id, token.id),
            now: later(60),
          }),
          (error) => isTesseraError(error, "store_unavailable"),
        );
      } finally {
        await lock.release();
      }
      const waitedMs = performance.now() - started;
      assert.ok(waitedMs < STORE_DEADLINES.statementMs + 500, `waited ${Math.round(waitedMs)} ms`);
      // Nothing was written, and the pool's connections work (the timed-out ones were replaced).
      assert.equal((await store.findRefreshToken(token.tokenHash))?.token.usedAt, null);
      for (let i = 0; i < 3; i += 1) await store.ping();
      const successor = aToken(session.id, token.id);
      assert.equal(
        await store.rotateRefreshToken({ presentedId: token.id, sessionId: session.id, successor, now: later(61) }),
        true,
      );
      assert.deepEqual(await store.findSuccessor(token.id), successor);
    });
  });
}
