// A fresh database per server and per run: a SQLite file in the run's directory, or a newly
// created PostgreSQL / MariaDB database (dropped at the end, also when the run fails).
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import mysql from "mysql2/promise";
import pg from "pg";
import type { BenchStore } from "./bench-context.js";

/** Admin connections; override with BENCH_POSTGRES_URL / BENCH_MYSQL_URL (or the test suite's TESSERA_TEST_* variables). */
export const ADMIN_URLS = Object.freeze({
  postgres:
    process.env.BENCH_POSTGRES_URL ||
    process.env.TESSERA_TEST_POSTGRES_URL ||
    "postgres://postgres@127.0.0.1:5432/test",
  mysql: process.env.BENCH_MYSQL_URL || process.env.TESSERA_TEST_MYSQL_URL || "mysql://root@127.0.0.1:3306/test",
});

/** A database of its own. */
export interface BenchDatabase {
  readonly store: BenchStore;
  /** TESSERA_DATABASE_URL for it. */
  readonly url: string;
  /** What the floor server takes: the SQLite file, or the same URL. */
  readonly location: string;
  drop(): Promise<void>;
}

const open = new Set<BenchDatabase>();

/** Drops every database still open (end of run, SIGINT). */
export async function dropAllDatabases(): Promise<void> {
  await Promise.all([...open].map((database) => database.drop().catch(() => undefined)));
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function onAdmin(store: "postgres" | "mysql", statement: string): Promise<void> {
  if (store === "postgres") {
    const client = new pg.Client({ connectionString: ADMIN_URLS.postgres, connectionTimeoutMillis: 3000 });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  } else {
    const client = await mysql.createConnection({ uri: ADMIN_URLS.mysql, connectTimeout: 3000 });
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  }
}

/** Creates a fresh database for `store`; `workDir` holds SQLite files. */
export async function createBenchDatabase(store: BenchStore, label: string, workDir: string): Promise<BenchDatabase> {
  const name = `tessera_bench_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}_${label}`
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, "_");
  let database: BenchDatabase;
  if (store === "sqlite") {
    const file = join(workDir, `${name}.db`);
    database = { store, url: `sqlite:${file}`, location: file, drop: () => Promise.resolve() };
  } else {
    await onAdmin(store, `create database ${name}`);
    const url = withDatabase(ADMIN_URLS[store], name);
    let dropped: Promise<void> | null = null;
    database = {
      store,
      url,
      location: url,
      drop: () =>
        (dropped ??= onAdmin(
          store,
          store === "postgres" ? `drop database if exists ${name} with (force)` : `drop database if exists ${name}`,
        )),
    };
  }
  open.add(database);
  const dropOnce = database.drop.bind(database);
  return {
    ...database,
    drop: async () => {
      open.delete(database);
      await dropOnce();
    },
  };
}

/** Why `store` cannot be used (its server unreachable), or null. */
export async function unreachable(store: BenchStore): Promise<string | null> {
  if (store === "sqlite") return null;
  try {
    await onAdmin(store, "select 1");
    return null;
  } catch (error) {
    return `${ADMIN_URLS[store]}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** The server's version string, e.g. `PostgreSQL 15.20`, or "" when unreachable. */
export async function serverVersion(store: "postgres" | "mysql"): Promise<string> {
  try {
    if (store === "postgres") {
      const client = new pg.Client({ connectionString: ADMIN_URLS.postgres, connectionTimeoutMillis: 3000 });
      await client.connect();
      try {
        return `PostgreSQL ${(await client.query<{ server_version: string }>("show server_version")).rows[0]?.server_version ?? "?"}`;
      } finally {
        await client.end();
      }
    }
    const client = await mysql.createConnection({ uri: ADMIN_URLS.mysql, connectTimeout: 3000 });
    try {
      const [rows] = await client.query("select version() as version");
      return `MySQL/MariaDB ${(rows as { version: string }[])[0]?.version ?? "?"}`;
    } finally {
      await client.end();
    }
  } catch {
    return "";
  }
}
