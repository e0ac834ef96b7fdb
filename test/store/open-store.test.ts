import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import BetterSqlite3 from "better-sqlite3";
import { openStore } from "../../src/store/open-store.js";
import { registerAndLogin, startServer, temporaryDirectory } from "../support/server.js";

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe("openStore() on SQLite files", () => {
  let dir: ReturnType<typeof temporaryDirectory>;
  let umask: number;

  before(() => {
    dir = temporaryDirectory();
    // The usual umask, which leaves new files readable by everyone: the store must not rely on it.
    umask = process.umask(0o022);
  });
  after(() => {
    process.umask(umask);
    dir.remove();
  });

  it("creates the data directory 0700 and the database, -wal and -shm files 0600 on a server's start", async () => {
    const data = join(dir.path, "fresh", "data");
    const server = await startServer({ databaseUrl: `sqlite:${join(data, "tessera.db")}` });
    try {
      await registerAndLogin(server.url, "private");
      assert.deepEqual([data, join(dir.path, "fresh")].map(modeOf), ["700", "700"]);
      assert.deepEqual(
        ["tessera.db", "tessera.db-wal", "tessera.db-shm"].map((name) => modeOf(join(data, name))),
        ["600", "600", "600"],
      );
      assert.equal(process.umask(0o022), 0o022, "the process umask is restored");
    } finally {
      await server.close();
    }
  });

  it("makes an existing database file that others may read private when it opens it", async () => {
    const file = join(dir.path, "old.db");
    new BetterSqlite3(file).close();
    chmodSync(file, 0o644);
    const store = openStore({ url: `sqlite:${file}` });
    try {
      await store.migrate();
      assert.deepEqual([file, `${file}-wal`, `${file}-shm`].map(modeOf), ["600", "600", "600"]);
    } finally {
      await store.close();
    }
  });
});

describe("openStore() and the network drivers", () => {
  it("loads pg and mysql2 only when a PostgreSQL or MySQL store is opened, never for SQLite", () => {
    const script = [
      'import { createRequire } from "node:module";',
      `const { openStore } = await import(${JSON.stringify(new URL("../../src/store/open-store.ts", import.meta.url).href)});`,
      "const loaded = (name) => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes(`/node_modules/${name}/`));",
      'const store = openStore({ url: "sqlite::memory:" });',
      "await store.migrate();",
      "await store.close();",
      'const before = { pg: loaded("pg"), mysql2: loaded("mysql2") };',
      'const postgres = openStore({ url: "postgres://nobody@127.0.0.1:1/none" });',
      "await postgres.close();",
      'console.log(JSON.stringify({ before, after: { pg: loaded("pg"), mysql2: loaded("mysql2") } }));',
    ].join("\n");
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout.trim().split("\n").at(-1)!), {
      before: { pg: false, mysql2: false },
      after: { pg: true, mysql2: false },
    });
  });
});
