import { randomBytes } from "node:crypto";
import { join } from "node:path";
import mysql from "mysql2/promise";
import pg from "pg";
import { STORE_KINDS, type StoreKind } from "../../src/store/store.js";
import { temporaryDirectory } from "./server.js";

/** A fresh, empty database for one test run. */
export interface TestDatabase {
  readonly kind: StoreKind;
  /** A `TESSERA_DATABASE_URL` naming the database. */
  readonly url: string;
  /** The database's own name (PostgreSQL, MariaDB) or file path (SQLite). */
  readonly name: string;
  /** Drops the database (or deletes the file). Safe to call twice. */
  drop(): Promise<void>;
}

/** Where the admin connections of each server go; overridable for other hosts. */
export const ADMIN_URLS = Object.freeze({
  postgres: process.env.TESSERA_TEST_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432/test",
  mysql: process.env.TESSERA_TEST_MYSQL_URL || "mysql://root@127.0.0.1:3306/test",
});

const URL_VARIABLES = Object.freeze({ postgres: "TESSERA_TEST_POSTGRES_URL", mysql: "TESSERA_TEST_MYSQL_URL" });

/** The stores selected by `TESSERA_TEST_STORES` (comma list; default all three). */
export function selectedStoreKinds(): StoreKind[] {
  const raw = process.env.TESSERA_TEST_STORES?.trim() || STORE_KINDS.join(",");
  const kinds = raw
    .split(",")
    .map((kind) => kind.trim().toLowerCase())
    .filter(Boolean);
  for (const kind of kinds) {
    if (!(STORE_KINDS as readonly string[]).includes(kind)) {
      throw new TypeError(`TESSERA_TEST_STORES: unknown store "${kind}"; use ${STORE_KINDS.join(", ")}`);
    }
  }
  return kinds as StoreKind[];
}

function uniqueName(): string {
  return `tessera_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
}

/** `url` with its database (path) replaced by `database` and extra query parameters. */
export function withDatabase(url: string, database: string, params: Record<string, string> = {}): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  for (const [key, value] of Object.entries(params)) parsed.searchParams.set(key, value);
  return parsed.toString();
}

async function createPostgresDatabase(): Promise<TestDatabase> {
  const name = uniqueName();
  const admin = new pg.Client({ connectionString: ADMIN_URLS.postgres, connectionTimeoutMillis: 3000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  let dropped = false;
  return {
    kind: "postgres",
    name,
    url: withDatabase(ADMIN_URLS.postgres, name),
    async drop() {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client({ connectionString: ADMIN_URLS.postgres, connectionTimeoutMillis: 3000 });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

async function createMysqlDatabase(): Promise<TestDatabase> {
  const name = uniqueName();
  const admin = await mysql.createConnection({ uri: ADMIN_URLS.mysql, connectTimeout: 3000 });
  try {
    await admin.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4`);
  } finally {
    await admin.end();
  }
  let dropped = false;
  return {
    kind: "mysql",
    name,
    url: withDatabase(ADMIN_URLS.mysql, name),
    async drop() {
      if (dropped) return;
      dropped = true;
      const client = await mysql.createConnection({ uri: ADMIN_URLS.mysql, connectTimeout: 3000 });
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await client.end();
      }
    },
  };
}

function createSqliteDatabase(): Promise<TestDatabase> {
  const dir = temporaryDirectory("tessera-sqlite-");
  const path = join(dir.path, "tessera.db");
  return Promise.resolve({
    kind: "sqlite",
    name: path,
    url: `sqlite:${path}`,
    drop: () => Promise.resolve(dir.remove()),
  });
}

/** Creates a fresh, uniquely named database of `kind`. Throws when its server is unreachable. */
export function createTestDatabase(kind: StoreKind): Promise<TestDatabase> {
  switch (kind) {
    case "sqlite":
      return createSqliteDatabase();
    case "postgres":
      return createPostgresDatabase();
    case "mysql":
      return createMysqlDatabase();
  }
}

const reachability = new Map<StoreKind, Promise<string | null>>();

/**
 * `null` when a test database of `kind` can be created, otherwise the reason to skip, naming the
 * environment variable to set. Under `CI=true` an unreachable server throws instead: CI must
 * not pass by skipping.
 */
export async function unavailableReason(kind: StoreKind): Promise<string | null> {
  if (kind === "sqlite") return null;
  let pending = reachability.get(kind);
  if (!pending) {
    pending = createTestDatabase(kind).then(
      async (database) => {
        await database.drop();
        return null;
      },
      (error: unknown) => {
        const detail = error instanceof Error ? error.message : String(error);
        return `${kind} is unreachable at ${ADMIN_URLS[kind]} (${detail}); start it or set ${URL_VARIABLES[kind]}, or narrow TESSERA_TEST_STORES`;
      },
    );
    reachability.set(kind, pending);
  }
  const reason = await pending;
  if (reason !== null && process.env.CI === "true") throw new Error(`CI=true: ${reason}`);
  return reason;
}

/**
 * The selected stores with, for each, `skip`: `false` or the reason its tests are skipped.
 * Use as `for (const { kind, skip } of await storesUnderTest()) describe(kind, { skip }, …)`.
 */
export async function storesUnderTest(): Promise<{ kind: StoreKind; skip: string | false }[]> {
  return Promise.all(
    selectedStoreKinds().map(async (kind) => {
      const reason = await unavailableReason(kind);
      return { kind, skip: reason ?? false };
    }),
  );
}

/**
 * Runs one SQL statement on its own short-lived connection and returns the rows; for
 * inspecting what a store wrote. Placeholders are not supported: inline only trusted values.
 */
export async function queryRows(
  database: TestDatabase,
  text: string,
  sessionSql?: string,
): Promise<Record<string, unknown>[]> {
  switch (database.kind) {
    case "sqlite": {
      const { default: BetterSqlite3 } = await import("better-sqlite3");
      const connection = new BetterSqlite3(database.name);
      try {
        connection.pragma("busy_timeout = 5000");
        const statement = connection.prepare(text);
        return statement.reader ? (statement.all() as Record<string, unknown>[]) : (statement.run(), []);
      } finally {
        connection.close();
      }
    }
    case "postgres": {
      const client = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 3000 });
      await client.connect();
      try {
        if (sessionSql) await client.query(sessionSql);
        return (await client.query<Record<string, unknown>>(text)).rows;
      } finally {
        await client.end();
      }
    }
    case "mysql": {
      const client = await mysql.createConnection({ uri: database.url, connectTimeout: 3000, dateStrings: true });
      try {
        if (sessionSql) await client.query(sessionSql);
        const [rows] = await client.query(text);
        return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
      } finally {
        await client.end();
      }
    }
  }
}

/**
 * What `open` makes over a fresh database of `kind`, with that `database`; its `close()` then
 * drops the database, which is dropped at once when `open` throws.
 */
export async function onTestDatabase<T extends { close(): Promise<void> }>(
  kind: StoreKind,
  open: (databaseUrl: string) => Promise<T>,
): Promise<T & { readonly database: TestDatabase }> {
  const database = await createTestDatabase(kind);
  let opened: T;
  try {
    opened = await open(database.url);
  } catch (error) {
    await database.drop();
    throw error;
  }
  return {
    ...opened,
    database,
    async close() {
      await opened.close();
      await database.drop();
    },
  };
}

/**
 * Opens a transaction on a connection of its own (PostgreSQL, MariaDB), runs `text` in it (a
 * `SELECT … FOR UPDATE`, say) and keeps it open, with the locks it took, until `release()`
 * rolls it back. Placeholders are not supported: inline only trusted values.
 */
export async function holdLocks(database: TestDatabase, text: string): Promise<{ release(): Promise<void> }> {
  switch (database.kind) {
    case "sqlite":
      throw new Error("SQLite has no row locks");
    case "postgres": {
      const client = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 3000 });
      await client.connect();
      await client.query("begin");
      await client.query(text);
      return {
        async release() {
          await client.query("rollback");
          await client.end();
        },
      };
    }
    case "mysql": {
      const client = await mysql.createConnection({ uri: database.url, connectTimeout: 3000 });
      await client.query("begin");
      await client.query(text);
      return {
        async release() {
          await client.query("rollback");
          await client.end();
        },
      };
    }
  }
}

/**
 * How many statements on `database` (PostgreSQL, MariaDB) are waiting for a lock right now; on
 * MariaDB, whose lock tables miss some waits, how many statements of other sessions are running.
 */
export async function lockWaits(database: TestDatabase): Promise<number> {
  const [row] = await queryRows(
    database,
    database.kind === "postgres"
      ? "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'"
      : "select count(*) as n from information_schema.processlist " +
          "where db = database() and command = 'Query' and id <> connection_id()",
  );
  return Number(row?.n ?? 0);
}
