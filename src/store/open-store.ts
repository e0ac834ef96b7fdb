import { chmodSync, mkdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { isMainThread } from "node:worker_threads";
import BetterSqlite3 from "better-sqlite3";
import {
  Kysely,
  MysqlDialect,
  type MysqlPool,
  PostgresDialect,
  type PostgresPool,
  SqliteDialect,
  type SqliteDatabase,
} from "kysely";
import type * as Mysql2 from "mysql2";
import type * as Pg from "pg";
import { type Clock, systemClock } from "../core/clock.js";
import { KyselyStore } from "./kysely-store.js";
import {
  mysqlRotationStatements,
  postgresRotationStatements,
  type RotationStatements,
  sqliteRotationStatements,
} from "./rotation-statements.js";
import type { Database } from "./schema.js";
import { type Store, storeKindOf } from "./store.js";

export { storeKindOf };

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** `sqlite:./data/tessera.db`, `sqlite::memory:`, `postgres://…` or `mysql://…`. */
  readonly url: string;
  /** Most connections to PostgreSQL or MySQL per process. Default 10. */
  readonly poolSize?: number;
  /** Called with errors of idle pooled connections (for logging); they never crash the process. */
  readonly onPoolError?: (error: Error) => void;
  /**
   * The clock of an SQLite database, which has none of its own but the host's: it stamps a
   * refresh token's first use and dates each lookup (see {@link Store}). Default: the system
   * clock. PostgreSQL and MySQL use the database server's clock and ignore this.
   */
  readonly clock?: Clock;
}

/**
 * Deadlines of PostgreSQL and MySQL/MariaDB work, in milliseconds. A database that stops
 * answering (a partition, a stalled server) turns into `store_unavailable` within
 * `statementMs` instead of a request that hangs until TCP gives up; a client that dies in the
 * middle of a transaction loses its session, and with it its row locks, after
 * `idleInTransactionMs`. Migrations run without them.
 */
export const STORE_DEADLINES = Object.freeze({
  /** Connecting, or waiting for a pooled connection. */
  connectMs: 2000,
  /** The client stops waiting for one statement's answer and discards the connection. */
  statementMs: 2000,
  /** The server cancels a statement (lock waits included) that runs this long. */
  serverStatementMs: 1500,
  /** The server ends a session that sits this long inside a transaction, rolling it back. */
  idleInTransactionMs: 1000,
});

// The drivers of the network databases load only when such a store is opened: a server on
// SQLite never pays for them.
const requireDriver = createRequire(import.meta.url);

/** The file path of a `sqlite:` URL, or `:memory:`. */
function sqlitePathOf(url: string): string {
  const rest = url.slice(url.indexOf(":") + 1);
  if (rest === ":memory:" || rest === "") return ":memory:";
  return rest.startsWith("//") ? rest.slice(2) : rest;
}

/** A Kysely instance and how to let go of it. */
interface OpenedDatabase {
  readonly db: Kysely<Database>;
  /** The refresh path on the same database's driver. */
  readonly rotation: (clock: Clock) => RotationStatements;
  readonly release: () => Promise<void>;
  /** A Kysely instance for migrations, destroyed after them; absent: `db`. */
  readonly migrationDb?: () => Kysely<Database>;
}

/** How many prepared statements a SQLite connection keeps for reuse. */
const SQLITE_STATEMENT_CACHE_SIZE = 256;

/**
 * better-sqlite3 behind a bounded LRU cache of prepared statements. Kysely prepares every query
 * anew, and preparing costs more than running the small statements of a refresh.
 */
function withStatementCache(database: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement) {
        cache.delete(sql);
      } else {
        statement = database.prepare(sql);
        if (cache.size >= SQLITE_STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, statement);
      return statement;
    },
  };
}

// One connection per SQLite file per process. better-sqlite3 is synchronous: a second
// connection waiting for the write lock would block the very event loop that must finish the
// first one's transaction, stalling for busy_timeout. Sharing one connection (and Kysely's
// connection mutex) serializes the writers of this process instead.
const sqliteFiles = new Map<string, SqliteConnection & { users: number }>();

/** One SQLite connection: Kysely over it, and the driver's handle for the refresh path. */
interface SqliteConnection {
  readonly db: Kysely<Database>;
  readonly database: BetterSqlite3.Database;
}

const SQLITE_BUSY_TIMEOUT_MS = 5000;

// Switching a file to WAL takes an exclusive lock without consulting the busy handler, so a
// process that opens the file while another is reading it gets SQLITE_BUSY at once. Retry,
// briefly and synchronously (this runs once per file, before the server listens).
function enableWal(database: BetterSqlite3.Database): void {
  const deadline = Date.now() + SQLITE_BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      database.pragma("journal_mode = WAL");
      return;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const busy = typeof code === "string" && code.startsWith("SQLITE_BUSY");
      if (!busy || Date.now() >= deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10 + Math.random() * 40);
    }
  }
}

function connectSqlite(path: string): SqliteConnection {
  const database = new BetterSqlite3(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  enableWal(database);
  database.pragma("synchronous = NORMAL");
  database.pragma("foreign_keys = ON");
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  return { db, database };
}

/** Mode of a data directory Tessera creates: the owner's alone. */
const PRIVATE_DIRECTORY_MODE = 0o700;
/** Mode of every SQLite file: the database holds sealed keys, in development mode the secret too. */
const PRIVATE_FILE_MODE = 0o600;

// The umask makes the directory and every file SQLite creates (db, -wal, -shm) private from their
// first byte. It is process-wide: this runs synchronously, so no other JavaScript sees it. Worker
// threads may not set it; there makeFilesPrivate() below closes the gap right after the open.
function withPrivateUmask<T>(work: () => T): T {
  if (!isMainThread) return work();
  const previous = process.umask(0o077);
  try {
    return work();
  } finally {
    process.umask(previous);
  }
}

/**
 * Makes the database file and its `-wal` and `-shm` files 0600 where another mode let group or
 * others in (files from before, or made under another umask). Throws when that is not possible.
 */
function makeFilesPrivate(file: string): void {
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    let mode: number;
    try {
      mode = statSync(path).mode & 0o777;
    } catch (error) {
      if ((error as { code?: unknown }).code === "ENOENT") continue;
      throw error;
    }
    if ((mode & ~PRIVATE_FILE_MODE) === 0) continue;
    try {
      chmodSync(path, PRIVATE_FILE_MODE);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `${path} has mode ${mode.toString(8)}, open to other users, and cannot be made 600 (${reason}); ` +
          "make it owned by the user running Tessera, or run chmod 600 on it",
        { cause: error },
      );
    }
  }
}

function openSqlite(url: string): OpenedDatabase {
  const path = sqlitePathOf(url);
  if (path === ":memory:") {
    const { db, database } = connectSqlite(path);
    return { db, release: () => db.destroy(), rotation: (clock) => sqliteRotationStatements(database, db, clock) };
  }
  const file = resolve(path);
  let entry = sqliteFiles.get(file);
  if (!entry) {
    const connection = withPrivateUmask(() => {
      mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
      return connectSqlite(file);
    });
    try {
      makeFilesPrivate(file);
    } catch (error) {
      void connection.db.destroy();
      throw error;
    }
    entry = { ...connection, users: 0 };
    sqliteFiles.set(file, entry);
  }
  entry.users += 1;
  const shared = entry;
  let released = false;
  return {
    db: shared.db,
    rotation: (clock) => sqliteRotationStatements(shared.database, shared.db, clock),
    release: async () => {
      if (released) return;
      released = true;
      shared.users -= 1;
      if (shared.users === 0) {
        sqliteFiles.delete(file);
        await shared.db.destroy();
      }
    },
  };
}

/** True when `error` is a driver giving up on an answer: its connection may still carry the statement. */
function isClientTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "PROTOCOL_SEQUENCE_TIMEOUT" || (error instanceof Error && /^Query read timeout$/.test(error.message));
}

/**
 * `pool` as Kysely sees it, discarding a connection whose statement timed out on the client: the
 * statement may still be in flight on it, and the next one would queue behind it.
 */
function discardingTimedOut(pool: Pg.Pool): PostgresPool {
  const wrappers = new WeakMap<Pg.PoolClient, Pg.PoolClient>();
  return {
    connect: async () => {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) {
        let timedOut = false;
        wrapper = Object.assign(Object.create(client) as Pg.PoolClient, {
          query: (...args: Parameters<Pg.PoolClient["query"]>) =>
            (client.query as (...a: unknown[]) => Promise<unknown>)(...args).catch((error: unknown) => {
              if (isClientTimeout(error)) timedOut = true;
              throw error;
            }),
          release: (destroy?: boolean | Error) => {
            const discard = timedOut || destroy === true || destroy instanceof Error;
            timedOut = false;
            client.release(discard);
          },
        });
        wrappers.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
  };
}

function openPostgres(url: string, poolSize: number, onPoolError: (error: Error) => void): OpenedDatabase {
  const pg = requireDriver("pg") as typeof Pg;
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: STORE_DEADLINES.connectMs,
    query_timeout: STORE_DEADLINES.statementMs,
    statement_timeout: STORE_DEADLINES.serverStatementMs,
    idle_in_transaction_session_timeout: STORE_DEADLINES.idleInTransactionMs,
  });
  // Idle clients report a lost connection through the pool's "error" event.
  pool.on("error", onPoolError);
  // A checked-out client has no pool listener: its lost connection would be an unhandled
  // "error" event and crash the process. The query running on it rejects with the same error,
  // which reaches the caller as store_unavailable; this listener only keeps the process up.
  pool.on("connect", (client) => client.on("error", () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: discardingTimedOut(pool) }) });
  return {
    db,
    release: () => db.destroy(),
    rotation: () => postgresRotationStatements(pool),
    // Migrations wait for each other's lock and may build indexes: no deadlines, one connection.
    migrationDb: () =>
      new Kysely<Database>({
        dialect: new PostgresDialect({
          pool: new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 30_000 }),
        }),
      }),
  };
}

/** The settings of every MySQL/MariaDB connection, as one statement. */
const MYSQL_SESSION_SETTINGS =
  // DATETIME itself has no zone, but NOW() and any TIMESTAMP column would follow the server's.
  "SET time_zone = '+00:00', SESSION innodb_lock_wait_timeout = " +
  `${Math.max(1, Math.floor(STORE_DEADLINES.serverStatementMs / 1000))}` +
  // MariaDB only (an executable comment, which MySQL skips): a statement deadline, and the end
  // of a session left idle inside a transaction (whole seconds, at least one).
  ` /*M!, SESSION max_statement_time = ${STORE_DEADLINES.serverStatementMs / 1000}` +
  `, SESSION idle_transaction_timeout = ${Math.max(1, Math.round(STORE_DEADLINES.idleInTransactionMs / 1000))} */`;

/**
 * `pool` as Kysely sees it, with a client-side deadline on every statement; a connection whose
 * statement timed out is destroyed rather than returned, as it may still carry the statement.
 */
function withStatementDeadline(pool: Mysql2.Pool): MysqlPool {
  type Callback = (error: Mysql2.QueryError | null, result?: unknown) => void;
  return {
    getConnection: (callback: (error: unknown, connection: Mysql2.PoolConnection) => void) =>
      pool.getConnection((error, connection) => {
        if (error) return callback(error, connection);
        let timedOut = false;
        const wrapper = Object.assign(Object.create(connection) as Mysql2.PoolConnection, {
          query: (sqlText: string, parameters: unknown[], done: Callback) =>
            connection.query({ sql: sqlText, timeout: STORE_DEADLINES.statementMs }, parameters, (failure, result) => {
              if (failure && isClientTimeout(failure)) timedOut = true;
              done(failure, result);
            }),
          release: () => (timedOut ? connection.destroy() : connection.release()),
        });
        callback(null, wrapper);
      }),
    end: (callback: (error: unknown) => void) => pool.end(callback),
  };
}

function mysqlPoolOptions(url: string) {
  const parsed = new URL(url.replace(/^mariadb:/i, "mysql:"));
  return {
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : 3306,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.slice(1)),
    // DATETIME has no zone: always write and read it as UTC.
    timezone: "Z",
    dateStrings: false,
    charset: "utf8mb4",
  } as const;
}

function openMysql(url: string, poolSize: number, onPoolError: (error: Error) => void): OpenedDatabase {
  const mysql = requireDriver("mysql2") as typeof Mysql2;
  const pool = mysql.createPool({
    ...mysqlPoolOptions(url),
    connectionLimit: poolSize,
    connectTimeout: STORE_DEADLINES.connectMs,
  });
  pool.on("connection", (connection) => {
    connection.on("error", onPoolError);
    // Queued before any other statement of the connection.
    connection.query(MYSQL_SESSION_SETTINGS, (error: Error | null) => {
      if (error) onPoolError(error);
    });
  });
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: withStatementDeadline(pool) }) });
  return {
    db,
    release: () => db.destroy(),
    rotation: () => mysqlRotationStatements(pool.promise(), STORE_DEADLINES.statementMs),
    migrationDb: () => {
      const single = mysql.createPool({ ...mysqlPoolOptions(url), connectionLimit: 1, connectTimeout: 30_000 });
      single.on("connection", (connection) => {
        connection.query("SET time_zone = '+00:00'", (error: Error | null) => {
          if (error) onPoolError(error);
        });
      });
      return new Kysely<Database>({ dialect: new MysqlDialect({ pool: single }) });
    },
  };
}

/** Opens the store a database URL names. Does not migrate; call `migrate()`. */
export function openStore(options: OpenStoreOptions): Store {
  const kind = storeKindOf(options.url);
  const poolSize = options.poolSize ?? 10;
  const onPoolError = options.onPoolError ?? (() => undefined);
  const opened =
    kind === "sqlite"
      ? openSqlite(options.url)
      : kind === "postgres"
        ? openPostgres(options.url, poolSize, onPoolError)
        : openMysql(options.url, poolSize, onPoolError);
  const clock = options.clock ?? systemClock;
  return new KyselyStore(kind, opened.db, {
    release: opened.release,
    rotation: opened.rotation(clock),
    ...(opened.migrationDb ? { migrationDb: opened.migrationDb } : {}),
  });
}
