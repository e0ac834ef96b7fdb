// A PostgreSQL server of the test's own (initdb + pg_ctl, its own port and data directory in a
// temporary directory), so a test can stop and start it without touching the machine's
// shared server that the rest of the suite uses.
import { execFile, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "./cluster.js";

const run = promisify(execFile);

/** The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, or null. */
function postgresBinDir(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((name) => existsSync(join(root, name, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], "bin");
}

/** The uid and gid of the `postgres` account, when running as root (PostgreSQL refuses root). */
function postgresAccount(): { uid: number; gid: number } | null {
  if (userInfo().uid !== 0) return null;
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  const uid = id("-u");
  const gid = id("-g");
  if (!Number.isInteger(uid) || uid <= 0)
    throw new Error("running as root, but there is no postgres account to run PostgreSQL as");
  return { uid, gid };
}

/**
 * `null` when a private PostgreSQL can be started here, otherwise why not. Under `CI=true`
 * the reason is thrown: CI must not pass by skipping.
 */
export function privatePostgresUnavailable(): string | null {
  const reason =
    postgresBinDir() === null
      ? "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are not installed"
      : null;
  if (reason !== null && process.env.CI === "true") throw new Error(`CI=true: ${reason}`);
  return reason;
}

const live = new Set<PrivatePostgres>();
process.once("exit", () => {
  for (const server of live) server.destroySync();
});

/** A private PostgreSQL server; trust authentication on 127.0.0.1 only. */
export class PrivatePostgres {
  readonly port: number;
  readonly #bin: string;
  readonly #dir: string;
  readonly #account: { uid: number; gid: number } | null;
  readonly #fsync: boolean;

  private constructor(
    bin: string,
    dir: string,
    port: number,
    account: { uid: number; gid: number } | null,
    fsync: boolean,
  ) {
    this.#bin = bin;
    this.#dir = dir;
    this.port = port;
    this.#account = account;
    this.#fsync = fsync;
  }

  /**
   * Creates a cluster in a new temporary directory, starts it and creates the database `tessera`.
   * `fsync` defaults to off: the tests restart the server process, never the machine.
   */
  static async create(options: { fsync?: boolean } = {}): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    if (bin === null) throw new Error("PostgreSQL server binaries are not installed");
    const account = postgresAccount();
    const dir = mkdtempSync(join(tmpdir(), "tessera-pg-"));
    if (account) chownSync(dir, account.uid, account.gid);
    const server = new PrivatePostgres(bin, dir, await freePort(), account, options.fsync ?? false);
    live.add(server);
    try {
      await server.#command("initdb", [
        "-D",
        server.#data,
        "-A",
        "trust",
        "-U",
        "postgres",
        "-N",
        "--no-locale",
        "-E",
        "UTF8",
      ]);
      await server.start();
      const client = new pg.Client({ host: "127.0.0.1", port: server.port, user: "postgres", database: "postgres" });
      await client.connect();
      try {
        await client.query("create database tessera");
      } finally {
        await client.end();
      }
      return server;
    } catch (error) {
      server.destroySync();
      throw error;
    }
  }

  get #data(): string {
    return join(this.#dir, "data");
  }

  /** The data directory (its `postmaster.pid` names the server process). */
  get dataDirectory(): string {
    return this.#data;
  }

  /** `TESSERA_DATABASE_URL` of the `tessera` database. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/tessera`;
  }

  async #command(program: string, args: string[]): Promise<void> {
    const path = join(this.#bin, program);
    const [file, argv] = this.#account ? ["runuser", ["-u", "postgres", "--", path, ...args]] : [path, args];
    await run(file, argv, { timeout: 60_000 });
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.#dir} -c listen_addresses=127.0.0.1 -c fsync=${this.#fsync ? "on" : "off"} -c max_connections=60 -c shared_buffers=128MB`;
    await this.#command("pg_ctl", [
      "-D",
      this.#data,
      "-l",
      join(this.#dir, "server.log"),
      "-w",
      "-t",
      "30",
      "-o",
      options,
      "start",
    ]);
  }

  /** Stops the server: `fast` rolls back and disconnects; `immediate` quits at once, as a crash. */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await this.#command("pg_ctl", ["-D", this.#data, "-m", mode, "-w", "-t", "30", "stop"]);
  }

  /** Runs one statement on a short-lived connection to `tessera`. */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 3000 });
    await client.connect();
    try {
      return (await client.query<Record<string, unknown>>(sql)).rows;
    } finally {
      await client.end();
    }
  }

  /** Stops the server (if running) and deletes its directory. Safe to call twice. */
  destroySync(): void {
    if (!live.delete(this)) return;
    const path = join(this.#bin, "pg_ctl");
    const args = ["-D", this.#data, "-m", "immediate", "-w", "stop"];
    if (existsSync(join(this.#data, "postmaster.pid"))) {
      if (this.#account)
        spawnSync("runuser", ["-u", "postgres", "--", path, ...args], { stdio: "ignore", timeout: 30_000 });
      else spawnSync(path, args, { stdio: "ignore", timeout: 30_000 });
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
