// The refresh path, written on each driver: a refresh runs these statements and nothing else
// of the store, so they skip query building and are prepared once per connection.
import type BetterSqlite3 from "better-sqlite3";
import type { Kysely, Selectable } from "kysely";
import type * as Mysql2 from "mysql2/promise";
import type * as Pg from "pg";
import type { Clock } from "../core/clock.js";
import { lookupOf, toRefreshToken } from "./kysely-store.js";
import type { Database, RefreshTokensTable } from "./schema.js";
import { isTransientConflict } from "./store-errors.js";
import type { RefreshTokenLookup, RefreshTokenRecord, RotationWrite } from "./store.js";

/** The three statements of a refresh, as {@link Store} describes them. */
export interface RotationStatements {
  findRefreshToken(tokenHash: string): Promise<RefreshTokenLookup | null>;
  findSuccessor(parentId: string): Promise<RefreshTokenRecord | null>;
  rotateRefreshToken(write: RotationWrite): Promise<boolean>;
}

/** How often a rotation aborted by a deadlock or serialization failure is tried in all. */
const ROTATION_ATTEMPTS = 4;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `work` again when the database aborted it whole to break a deadlock. */
async function retryingConflicts<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= ROTATION_ATTEMPTS || !isTransientConflict(error)) throw error;
      await delay(attempt * 5 + Math.random() * 10);
    }
  }
}

/** The lookup's columns, aliased by table as {@link lookupOf} reads them. */
const LOOKUP_COLUMNS = [
  ...["id", "session_id", "token_hash", "parent_id", "created_at", "expires_at", "used_at"].map(
    (c) => `t.${c} as t_${c}`,
  ),
  ...[
    "id",
    "user_id",
    "created_at",
    "last_used_at",
    "expires_at",
    "idle_expires_at",
    "revoked_at",
    "revoked_reason",
    "user_agent",
    "ip",
    "amr",
  ].map((c) => `s.${c} as s_${c}`),
  ...["id", "username", "username_key", "password_hash", "roles", "created_at", "disabled_at"].map(
    (c) => `u.${c} as u_${c}`,
  ),
].join(", ");

/** The lookup: a token by its hash, joined with its session and user; `now` reads the database's clock. */
const findSql = (now: string, placeholder: string) =>
  `select ${LOOKUP_COLUMNS}, ${now} as read_at from refresh_tokens t join sessions s on s.id = t.session_id ` +
  `join users u on u.id = s.user_id where t.token_hash = ${placeholder}`;

const SUCCESSOR_COLUMNS = "id, session_id, token_hash, parent_id, created_at, expires_at, used_at";

/**
 * SQLite: better-sqlite3 statements, prepared on first use (the tables exist only after
 * `migrate()`); the rotation is one synchronous transaction. `db` is the Kysely instance over the
 * same connection: each call holds its connection lock, so it never runs inside one of Kysely's
 * transactions, which await between their statements.
 */
export function sqliteRotationStatements(
  database: BetterSqlite3.Database,
  db: Kysely<Database>,
  clock: Clock,
): RotationStatements {
  let prepared: ReturnType<typeof prepare> | undefined;
  function prepare() {
    const find = database.prepare(findSql("?", "?"));
    const successor = database.prepare(`select ${SUCCESSOR_COLUMNS} from refresh_tokens where parent_id = ?`);
    // Lock order as everywhere: the session row first ("where not revoked"), then the token.
    const touchSession = database.prepare(
      "update sessions set last_used_at = ?, idle_expires_at = ? where id = ? and revoked_at is null",
    );
    const markUsed = database.prepare(
      "update refresh_tokens set used_at = ? where id = ? and session_id = ? and used_at is null",
    );
    const insert = database.prepare(
      "insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at, used_at) " +
        "values (?, ?, ?, ?, ?, ?, null)",
    );
    const rotate = database.transaction(({ presentedId, sessionId, successor: next, now }: RotationWrite): boolean => {
      if (touchSession.run(now.toISOString(), next.expiresAt.toISOString(), sessionId).changes === 0) return false;
      // The single check-and-act; losing it rolls the session's update back.
      if (markUsed.run(clock.now().toISOString(), presentedId, sessionId).changes === 0) throw LOST;
      insert.run(
        next.id,
        sessionId,
        next.tokenHash,
        next.parentId,
        next.createdAt.toISOString(),
        next.expiresAt.toISOString(),
      );
      return true;
    });
    return { find, successor, rotate };
  }
  const statements = () => {
    prepared ??= prepare();
    return prepared;
  };
  const locked = <T>(work: () => T): Promise<T> => db.connection().execute(() => Promise.resolve().then(work));
  return {
    findRefreshToken: (tokenHash) =>
      locked(() => {
        const row = statements().find.get(clock.now().toISOString(), tokenHash) as Record<string, unknown> | undefined;
        return row ? lookupOf(row) : null;
      }),
    findSuccessor: (parentId) =>
      locked(() => {
        const row = statements().successor.get(parentId) as Selectable<RefreshTokensTable> | undefined;
        return row ? toRefreshToken(row) : null;
      }),
    rotateRefreshToken: (write) =>
      locked(() => {
        try {
          // IMMEDIATE: take the write lock at BEGIN, where busy_timeout waits for other processes.
          return statements().rotate.immediate(write);
        } catch (error) {
          if (error === LOST) return false;
          throw error;
        }
      }),
  };
}

/** Thrown inside a SQLite rotation to roll it back when another request used the token first. */
const LOST = new Error("lost rotation");

/**
 * PostgreSQL: named statements (parsed and planned once per connection), and the rotation as one
 * statement, so it holds its locks for a single round trip and commits on its own. Its first CTE
 * locks the session row unless it is revoked (a concurrent revocation is waited for and then
 * seen); the token is marked used only where it is not used yet, which PostgreSQL re-checks on
 * the newest row version after waiting, so of racing rotations exactly one updates it; the
 * session's times advance and the successor is inserted only if it did.
 */
export function postgresRotationStatements(pool: Pg.Pool): RotationStatements {
  const find = findSql("now()", "$1");
  const successor = `select ${SUCCESSOR_COLUMNS} from refresh_tokens where parent_id = $1`;
  const rotate =
    "with s as (select id from sessions where id = $2 and revoked_at is null for no key update), " +
    "t as (update refresh_tokens set used_at = now() where id = $1 and session_id = $2 and used_at is null " +
    "and exists (select 1 from s) returning id), " +
    "u as (update sessions set last_used_at = $3::timestamptz, idle_expires_at = $7::timestamptz " +
    "where id = $2 and exists (select 1 from t)) " +
    "insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at, used_at) " +
    "select $4::varchar, $2::varchar, $5::varchar, t.id, $6::timestamptz, $7::timestamptz, null from t";
  return {
    async findRefreshToken(tokenHash) {
      const result = await pool.query({ name: "tessera_find_refresh_token", text: find, values: [tokenHash] });
      const row = result.rows[0] as Record<string, unknown> | undefined;
      return row ? lookupOf(row) : null;
    },
    async findSuccessor(parentId) {
      const result = await pool.query({ name: "tessera_find_successor", text: successor, values: [parentId] });
      const row = result.rows[0] as Selectable<RefreshTokensTable> | undefined;
      return row ? toRefreshToken(row) : null;
    },
    rotateRefreshToken: ({ presentedId, sessionId, successor: next, now }) =>
      retryingConflicts(async () => {
        const result = await pool.query({
          name: "tessera_rotate_refresh_token",
          text: rotate,
          values: [presentedId, sessionId, now, next.id, next.tokenHash, next.createdAt, next.expiresAt],
        });
        return result.rowCount === 1;
      }),
  };
}

/**
 * MySQL/MariaDB: server-side prepared statements (`execute`, cached per connection); the rotation
 * is one transaction of two statements. The first locks the session row and the token together
 * in one multi-table update ("where not revoked", "where not used"), so of racing rotations
 * exactly one matches; the second inserts the successor.
 */
export function mysqlRotationStatements(pool: Mysql2.Pool, timeoutMs: number): RotationStatements {
  const find = findSql("now(3)", "?");
  const successor = `select ${SUCCESSOR_COLUMNS} from refresh_tokens where parent_id = ?`;
  const consume =
    "update sessions s join refresh_tokens t on t.session_id = s.id " +
    "set s.last_used_at = ?, s.idle_expires_at = ?, t.used_at = now(3) " +
    "where s.id = ? and s.revoked_at is null and t.id = ? and t.used_at is null";
  const insert =
    "insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at, used_at) " +
    "values (?, ?, ?, ?, ?, ?, null)";
  /** Runs `work` on a connection of its own, destroyed rather than reused if anything failed on it. */
  const using = async <T>(work: (connection: Mysql2.PoolConnection) => Promise<T>): Promise<T> => {
    const connection = await pool.getConnection();
    let healthy = false;
    try {
      const result = await work(connection);
      healthy = true;
      return result;
    } finally {
      // A connection left inside a transaction, or still waiting for an answer, is not reused.
      if (healthy) connection.release();
      else connection.destroy();
    }
  };
  const firstRow = (sql: string, values: Mysql2.ExecuteValues[]) =>
    using(async (connection) => {
      const [result] = await connection.execute({ sql, timeout: timeoutMs }, values);
      return (result as Record<string, unknown>[])[0];
    });
  return {
    async findRefreshToken(tokenHash) {
      const row = await firstRow(find, [tokenHash]);
      return row ? lookupOf(row) : null;
    },
    async findSuccessor(parentId) {
      const row = (await firstRow(successor, [parentId])) as Selectable<RefreshTokensTable> | undefined;
      return row ? toRefreshToken(row) : null;
    },
    rotateRefreshToken: ({ presentedId, sessionId, successor: next, now }) =>
      retryingConflicts(() =>
        using(async (connection) => {
          await connection.query({ sql: "start transaction", timeout: timeoutMs });
          const [consumed] = await connection.execute<Mysql2.ResultSetHeader>({ sql: consume, timeout: timeoutMs }, [
            now,
            next.expiresAt,
            sessionId,
            presentedId,
          ]);
          if (consumed.affectedRows === 0) {
            await connection.query({ sql: "rollback", timeout: timeoutMs });
            return false;
          }
          await connection.execute({ sql: insert, timeout: timeoutMs }, [
            next.id,
            sessionId,
            next.tokenHash,
            next.parentId,
            next.createdAt,
            next.expiresAt,
          ]);
          await connection.query({ sql: "commit", timeout: timeoutMs });
          return true;
        }),
      ),
  };
}
