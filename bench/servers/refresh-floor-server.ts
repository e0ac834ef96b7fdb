// The store floor of the refresh group: the same rotation Tessera does, written directly on the
// driver (better-sqlite3, pg or mysql2) behind a minimal node:http server of the same shape:
// POST /auth/refresh {"refresh_token"} → 200 {token_type, refresh_token, refresh_token_expires_in}.
// Select the token (joined with its session) by SHA-256; then one transaction: mark it used where
// not used yet, insert the successor HMAC(rotation key, presented) (on SQLite all three run in
// one better-sqlite3 transaction). A used token presented again
// within the grace window, while its successor is unused, gets the same successor back. It does
// not sign an access token, keeps no users table, writes no audit: the database's own cost.
//
//   node --import tsx bench/servers/refresh-floor-server.ts <sqlite|postgres|mysql> <database url or file>
// Prints {"port": N}. POST /seed {"count": N} creates N sessions and answers their first tokens.
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import BetterSqlite3 from "better-sqlite3";
import mysql from "mysql2/promise";
import pg from "pg";

const [kind, location] = process.argv.slice(2);
if ((kind !== "sqlite" && kind !== "postgres" && kind !== "mysql") || location === undefined) {
  throw new TypeError("usage: refresh-floor-server.ts <sqlite|postgres|mysql> <database url or file>");
}
const GRACE_MS = Number(process.env.BENCH_GRACE_SECONDS ?? 300) * 1000;
const TOKEN_TTL_MS = 3 * 86_400_000;
const SESSION_TTL_MS = 30 * 86_400_000;
const ROTATION_KEY = randomBytes(32);
const TOKEN_SHAPE = /^tsr_[A-Za-z0-9_-]{49}$/;

function formatToken(secret: Buffer): string {
  const body = secret.toString("base64url");
  return `tsr_${body}${createHash("sha256").update("tsr_").update(body).digest().subarray(0, 4).toString("base64url")}`;
}
const hashOf = (token: string) => createHash("sha256").update(token).digest("hex");
const successorOf = (token: string) => formatToken(createHmac("sha256", ROTATION_KEY).update(token).digest());

/** A presented token and its session, as the select returns them. */
interface Found {
  readonly id: string;
  readonly sessionId: string;
  readonly expiresAt: Date;
  readonly usedAt: Date | null;
  readonly sessionExpiresAt: Date;
  readonly revokedAt: Date | null;
}

/** What the rotation decided: the successor to answer, or a status to refuse with. */
type Outcome = { readonly token: string; readonly expiresAt: Date } | { readonly status: number };

/** The rotation rules (Tessera's core/rotation.ts, restated): reject, repeat or rotate. */
function decide(
  found: Found | undefined,
  now: Date,
  successor: () => { usedAt: Date | null; expiresAt: Date } | undefined,
): "reject" | "repeat" | "rotate" {
  if (!found || found.revokedAt !== null || now >= found.sessionExpiresAt) return "reject";
  if (found.usedAt !== null) {
    const next = now.getTime() < found.usedAt.getTime() + GRACE_MS ? successor() : undefined;
    return next && next.usedAt === null && now < next.expiresAt ? "repeat" : "reject";
  }
  return now >= found.expiresAt ? "reject" : "rotate";
}

const SELECT = `select t.id, t.session_id, t.expires_at, t.used_at, s.expires_at as session_expires_at, s.revoked_at
  from refresh_tokens t join sessions s on s.id = t.session_id where t.token_hash = `;
const SELECT_SUCCESSOR = "select used_at, expires_at from refresh_tokens where parent_id = ";
const MARK_USED = "update refresh_tokens set used_at = $1 where id = $2 and used_at is null";
const INSERT =
  "insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at) values ($1, $2, $3, $4, $5, $6)";
const INSERT_SESSION = "insert into sessions (id, user_id, created_at, expires_at) values ($1, $2, $3, $4)";
const positional = (text: string) => text.replace(/\$\d+/g, "?");

function schema(timestamp: string): string[] {
  return [
    `create table sessions (id varchar(36) primary key, user_id varchar(36) not null, created_at ${timestamp} not null,
      expires_at ${timestamp} not null, revoked_at ${timestamp})`,
    "create index sessions_user_id_idx on sessions (user_id)",
    `create table refresh_tokens (id varchar(36) primary key,
      session_id varchar(36) not null references sessions (id) on delete cascade,
      token_hash varchar(64) not null unique, parent_id varchar(36) unique,
      created_at ${timestamp} not null, expires_at ${timestamp} not null, used_at ${timestamp})`,
    "create index refresh_tokens_session_id_idx on refresh_tokens (session_id)",
    "create index refresh_tokens_expires_at_idx on refresh_tokens (expires_at)",
  ];
}

/** One store's rotation and seeding. */
interface FloorStore {
  rotate(presented: string, now: Date): Promise<Outcome> | Outcome;
  seed(count: number): Promise<string[]>;
}

function sqliteStore(file: string): FloorStore {
  const db = new BetterSqlite3(file, { timeout: 5000 });
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  for (const statement of schema("text")) db.exec(statement);
  const select = db.prepare(`${SELECT}?`);
  const selectSuccessor = db.prepare(`${SELECT_SUCCESSOR}?`);
  const markUsed = db.prepare(positional(MARK_USED));
  const insert = db.prepare(positional(INSERT));
  const insertSession = db.prepare(positional(INSERT_SESSION));
  type Row = {
    id: string;
    session_id: string;
    expires_at: string;
    used_at: string | null;
    session_expires_at: string;
    revoked_at: string | null;
  };
  const date = (value: string | null) => (value === null ? null : new Date(value));
  const rotate = db.transaction((presented: string, now: Date): Outcome => {
    const row = select.get(hashOf(presented)) as Row | undefined;
    const found = row && {
      id: row.id,
      sessionId: row.session_id,
      expiresAt: new Date(row.expires_at),
      usedAt: date(row.used_at),
      sessionExpiresAt: new Date(row.session_expires_at),
      revokedAt: date(row.revoked_at),
    };
    let next: { usedAt: Date | null; expiresAt: Date } | undefined;
    const decision = decide(found, now, () => {
      const successor = selectSuccessor.get(found!.id) as { used_at: string | null; expires_at: string } | undefined;
      next = successor && { usedAt: date(successor.used_at), expiresAt: new Date(successor.expires_at) };
      return next;
    });
    if (decision === "reject") return { status: 401 };
    const token = successorOf(presented);
    if (decision === "repeat") return { token, expiresAt: next!.expiresAt };
    if (markUsed.run(now.toISOString(), found!.id).changes !== 1) return { status: 409 };
    const expiresAt = new Date(now.getTime() + TOKEN_TTL_MS);
    insert.run(randomUUID(), found!.sessionId, hashOf(token), found!.id, now.toISOString(), expiresAt.toISOString());
    return { token, expiresAt };
  });
  return {
    rotate: (presented, now) => rotate(presented, now),
    seed: (count) => {
      const tokens: string[] = [];
      db.transaction(() => {
        const now = new Date();
        for (let i = 0; i < count; i += 1) {
          const sessionId = randomUUID();
          const token = formatToken(randomBytes(32));
          insertSession.run(
            sessionId,
            randomUUID(),
            now.toISOString(),
            new Date(now.getTime() + SESSION_TTL_MS).toISOString(),
          );
          insert.run(
            randomUUID(),
            sessionId,
            hashOf(token),
            null,
            now.toISOString(),
            new Date(now.getTime() + TOKEN_TTL_MS).toISOString(),
          );
          tokens.push(token);
        }
      })();
      return Promise.resolve(tokens);
    },
  };
}

type Row = {
  id: string;
  session_id: string;
  expires_at: Date;
  used_at: Date | null;
  session_expires_at: Date;
  revoked_at: Date | null;
};

/** PostgreSQL and MySQL/MariaDB: the same statements on a pooled connection (10, as Tessera's default). */
interface Connection {
  query<T>(name: string, text: string, values: unknown[]): Promise<{ rows: T[]; changes: number }>;
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  release(): void;
}

function networkStore(connect: () => Promise<Connection>): FloorStore {
  const toFound = (row: Row | undefined): Found | undefined =>
    row && {
      id: row.id,
      sessionId: row.session_id,
      expiresAt: row.expires_at,
      usedAt: row.used_at,
      sessionExpiresAt: row.session_expires_at,
      revokedAt: row.revoked_at,
    };
  return {
    async rotate(presented, now) {
      const connection = await connect();
      try {
        // The select needs no transaction: the conditional update below is the check-and-act.
        // (Same round trips as a select inside it; the grace-window path then writes nothing.)
        const found = toFound((await connection.query<Row>("select", `${SELECT}$1`, [hashOf(presented)])).rows[0]);
        let next: { usedAt: Date | null; expiresAt: Date } | undefined;
        let successorRow: { used_at: Date | null; expires_at: Date } | undefined;
        if (found?.usedAt)
          successorRow = (
            await connection.query<{ used_at: Date | null; expires_at: Date }>("successor", `${SELECT_SUCCESSOR}$1`, [
              found.id,
            ])
          ).rows[0];
        const decision = decide(
          found,
          now,
          () => (next = successorRow && { usedAt: successorRow.used_at, expiresAt: successorRow.expires_at }),
        );
        if (decision === "reject") return { status: 401 };
        if (decision === "repeat") return { token: successorOf(presented), expiresAt: next!.expiresAt };
        await connection.begin();
        try {
          if ((await connection.query("mark", MARK_USED, [now, found!.id])).changes !== 1) {
            await connection.rollback();
            return { status: 409 };
          }
          const token = successorOf(presented);
          const expiresAt = new Date(now.getTime() + TOKEN_TTL_MS);
          await connection.query("insert", INSERT, [
            randomUUID(),
            found!.sessionId,
            hashOf(token),
            found!.id,
            now,
            expiresAt,
          ]);
          await connection.commit();
          return { token, expiresAt };
        } catch (error) {
          await connection.rollback().catch(() => undefined);
          throw error;
        }
      } finally {
        connection.release();
      }
    },
    async seed(count) {
      const connection = await connect();
      const tokens: string[] = [];
      try {
        await connection.begin();
        const now = new Date();
        for (let i = 0; i < count; i += 1) {
          const sessionId = randomUUID();
          const token = formatToken(randomBytes(32));
          await connection.query("session", INSERT_SESSION, [
            sessionId,
            randomUUID(),
            now,
            new Date(now.getTime() + SESSION_TTL_MS),
          ]);
          await connection.query("insert", INSERT, [
            randomUUID(),
            sessionId,
            hashOf(token),
            null,
            now,
            new Date(now.getTime() + TOKEN_TTL_MS),
          ]);
          tokens.push(token);
        }
        await connection.commit();
        return tokens;
      } finally {
        connection.release();
      }
    },
  };
}

async function postgresStore(url: string): Promise<FloorStore> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  for (const statement of schema("timestamptz")) await pool.query(statement);
  return networkStore(async () => {
    const client = await pool.connect();
    return {
      // Named statements: parsed and planned once per connection, as a driver-level floor should.
      query: async <T>(name: string, text: string, values: unknown[]) => {
        const result = await client.query({ name, text, values });
        return { rows: result.rows as T[], changes: result.rowCount ?? 0 };
      },
      begin: async () => void (await client.query("begin")),
      commit: async () => void (await client.query("commit")),
      rollback: async () => void (await client.query("rollback")),
      release: () => client.release(),
    };
  });
}

async function mysqlStore(url: string): Promise<FloorStore> {
  const pool = mysql.createPool({ uri: url, connectionLimit: 10, timezone: "Z" });
  for (const statement of schema("datetime(3)")) await pool.query(statement);
  pool.on("connection", (connection) => void connection.query("set time_zone = '+00:00'"));
  return networkStore(async () => {
    const connection = await pool.getConnection();
    return {
      // execute(): server-side prepared statements, cached per connection.
      query: async <T>(_name: string, text: string, values: unknown[]) => {
        const [result] = await connection.execute(positional(text), values as (string | Date | null)[]);
        return Array.isArray(result)
          ? { rows: result as T[], changes: 0 }
          : { rows: [], changes: (result as { affectedRows: number }).affectedRows };
      },
      begin: () => connection.beginTransaction(),
      commit: () => connection.commit(),
      rollback: () => connection.rollback(),
      release: () => connection.release(),
    };
  });
}

const store =
  kind === "sqlite"
    ? sqliteStore(location)
    : kind === "postgres"
      ? await postgresStore(location)
      : await mysqlStore(location);

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      body += chunk;
      if (body.length > 16 * 1024) request.destroy(new Error("body too large"));
    });
    request.on("end", () => resolve(body));
    request.on("error", reject);
  });
}

function answer(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

const server = createServer((request, response) => {
  void (async () => {
    try {
      const body = JSON.parse(await readBody(request)) as { refresh_token?: unknown; count?: unknown };
      if (request.method === "POST" && request.url === "/auth/refresh") {
        const presented = body.refresh_token;
        if (typeof presented !== "string" || !TOKEN_SHAPE.test(presented))
          return answer(response, 400, { error: "invalid_request" });
        const now = new Date();
        const outcome = await store.rotate(presented, now);
        if ("status" in outcome) return answer(response, outcome.status, { error: "invalid_grant" });
        return answer(response, 200, {
          token_type: "Bearer",
          refresh_token: outcome.token,
          refresh_token_expires_in: Math.floor((outcome.expiresAt.getTime() - now.getTime()) / 1000),
        });
      }
      if (request.method === "POST" && request.url === "/seed" && typeof body.count === "number")
        return answer(response, 200, { tokens: await store.seed(body.count) });
      return answer(response, 404, { error: "not_found" });
    } catch (error) {
      return answer(response, 500, {
        error: "server_error",
        error_description: error instanceof Error ? error.message : String(error),
      });
    }
  })();
});
server.keepAliveTimeout = 72_000;
server.listen(0, "127.0.0.1", () =>
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`),
);
process.once("SIGTERM", () => process.exit(0));
