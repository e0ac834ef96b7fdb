// A MariaDB server of the test's own (mariadb-install-db + mariadbd, its own port, socket and
// data directory in a temporary directory, no option files read), so a test can kill and
// restart it without touching the machine's shared server.
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { delay, freePort } from "./cluster.js";

const run = promisify(execFile);

function onPath(program: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" }).status === 0;
}

/**
 * `null` when a private MariaDB can be started here, otherwise why not. Under `CI=true` the
 * reason is thrown: CI must not pass by skipping.
 */
export function privateMariadbUnavailable(): string | null {
  const missing = ["mariadb-install-db", "mariadbd"].filter(
    (program) => !onPath(program) && !onPath(`/usr/sbin/${program}`),
  );
  const reason = missing.length > 0 ? `MariaDB server programs are not installed (${missing.join(", ")})` : null;
  if (reason !== null && process.env.CI === "true") throw new Error(`CI=true: ${reason}`);
  return reason;
}

const live = new Set<PrivateMariadb>();
process.once("exit", () => {
  for (const server of live) server.destroySync();
});

/** A private MariaDB server; root without a password on 127.0.0.1 only. */
export class PrivateMariadb {
  readonly port: number;
  readonly #dir: string;
  #child: ChildProcess | null = null;

  private constructor(dir: string, port: number) {
    this.#dir = dir;
    this.port = port;
  }

  /** Creates a data directory, starts the server and creates the database `tessera`. */
  static async create(): Promise<PrivateMariadb> {
    const dir = mkdtempSync(join(tmpdir(), "tessera-mariadb-"));
    const server = new PrivateMariadb(dir, await freePort());
    live.add(server);
    try {
      await run(
        "mariadb-install-db",
        [
          "--no-defaults",
          `--datadir=${join(dir, "data")}`,
          `--user=${userInfo().username}`,
          "--auth-root-authentication-method=normal",
          "--skip-test-db",
        ],
        { timeout: 120_000 },
      );
      await server.start();
      const connection = await mysql.createConnection({ socketPath: server.#socket, user: "root" });
      try {
        await connection.query("CREATE DATABASE tessera CHARACTER SET utf8mb4");
      } finally {
        await connection.end();
      }
      return server;
    } catch (error) {
      server.destroySync();
      throw error;
    }
  }

  get #socket(): string {
    return join(this.#dir, "mysqld.sock");
  }

  /** `TESSERA_DATABASE_URL` of the `tessera` database. */
  get url(): string {
    return `mysql://root@127.0.0.1:${this.port}/tessera`;
  }

  /** Starts `mariadbd` and waits until it answers on its socket. */
  async start(): Promise<void> {
    if (this.#child) throw new Error("MariaDB is already running");
    const log = openSync(join(this.#dir, "server.log"), "a");
    const child = spawn(
      "mariadbd",
      [
        "--no-defaults",
        `--datadir=${join(this.#dir, "data")}`,
        `--socket=${this.#socket}`,
        `--port=${this.port}`,
        "--bind-address=127.0.0.1",
        `--pid-file=${join(this.#dir, "mysqld.pid")}`,
        `--user=${userInfo().username}`,
        "--innodb-buffer-pool-size=64M",
        "--max-connections=100",
      ],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    this.#child = child;
    child.once("exit", () => {
      if (this.#child === child) this.#child = null;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const connection = await mysql.createConnection({
          socketPath: this.#socket,
          user: "root",
          connectTimeout: 1000,
        });
        await connection.end();
        return;
      } catch (error) {
        if (this.#child !== child) throw new Error(`mariadbd exited while starting: ${String(error)}`);
        if (Date.now() > deadline) throw new Error("mariadbd did not start within 60 s");
        await delay(50);
      }
    }
  }

  /** Stops the server: SIGTERM shuts down cleanly; SIGKILL is a crash (InnoDB recovers at the next start). */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
    this.#child = null;
  }

  /** Runs one statement on a short-lived connection to `tessera`. */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const connection = await mysql.createConnection({
      socketPath: this.#socket,
      user: "root",
      database: "tessera",
      dateStrings: true,
    });
    try {
      const [rows] = await connection.query(sql);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    } finally {
      await connection.end();
    }
  }

  /** Kills the server (if running) and deletes its directory. Safe to call twice. */
  destroySync(): void {
    if (!live.delete(this)) return;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      // Wait for the kill to land before deleting the directory it writes to.
      spawnSync("sh", ["-c", `while kill -0 ${child.pid} 2>/dev/null; do sleep 0.05; done`], { timeout: 10_000 });
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
