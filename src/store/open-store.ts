import { chmodSync, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isMainThread } from "node:worker_threads";
import BetterSqlite3 from "better-sqlite3";
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, type SqliteDatabase } from "kysely";
import { createPool as createMysqlPool } from "mysql2";
import pg from "pg";
import { KyselyStore } from "./kysely-store.js";
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
}

/** The file path of a `sqlite:` URL, or `:memory:`. */
function sqlitePathOf(url: string): string {
  const rest = url.slice(url.indexOf(":") + 1);
  if (rest === ":memory:" || rest === "") return ":memory:";
  return rest.startsWith("//") ? rest.slice(2) : rest;
}

/** A Kysely instance and how to let go of it. */
interface OpenedDatabase {
  readonly db: Kysely<Database>;
  readonly release: () => Promise<void>;
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
const sqliteFiles = new Map<string, { db: Kysely<Database>; users: number }>();

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

function connectSqlite(path: string): Kysely<Database> {
  const database = new BetterSqlite3(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  enableWal(database);
  database.pragma("synchronous = NORMAL");
  database.pragma("foreign_keys = ON");
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
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
    const db = connectSqlite(path);
    return { db, release: () => db.destroy() };
  }
  const file = resolve(path);
  let entry = sqliteFiles.get(file);
  if (!entry) {
    const db = withPrivateUmask(() => {
      mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
      return connectSqlite(file);
    });
    try {
      makeFilesPrivate(file);
    } catch (error) {
      void db.destroy();
      throw error;
    }
    entry = { db, users: 0 };
    sqliteFiles.set(file, entry);
  }
  entry.users += 1;
  const shared = entry;
  let released = false;
  return {
    db: shared.db,
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

function openPostgres(url: string, poolSize: number, onPoolError: (error: Error) => void): OpenedDatabase {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5000 });
  // Idle clients report a lost connection through the pool's "error" event.
  pool.on("error", onPoolError);
  // A checked-out client has no pool listener: its lost connection would be an unhandled
  // "error" event and crash the process. The query running on it rejects with the same error,
  // which reaches the caller as store_unavailable; this listener only keeps the process up.
  pool.on("connect", (client) => client.on("error", () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, release: () => db.destroy() };
}

function openMysql(url: string, poolSize: number, onPoolError: (error: Error) => void): OpenedDatabase {
  const parsed = new URL(url.replace(/^mariadb:/i, "mysql:"));
  const pool = createMysqlPool({
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : 3306,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.slice(1)),
    connectionLimit: poolSize,
    connectTimeout: 5000,
    // DATETIME has no zone: always write and read it as UTC.
    timezone: "Z",
    dateStrings: false,
    charset: "utf8mb4",
  });
  pool.on("connection", (connection) => {
    connection.on("error", onPoolError);
    // DATETIME itself has no zone, but NOW() and any TIMESTAMP column would follow the server's.
    connection.query("SET time_zone = '+00:00'", (error: Error | null) => {
      if (error) onPoolError(error);
    });
  });
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
  return { db, release: () => db.destroy() };
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
  return new KyselyStore(kind, opened.db, opened.release);
}
