// A redis-server of the test's own on a free loopback port, which a test can kill and start
// again on the same port, without touching the machine's shared Redis.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { delay, freePort } from "./cluster.js";

/** `null` when redis-server is installed, otherwise why not; thrown under `CI=true`. */
export function privateRedisUnavailable(): string | null {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { stdio: "ignore" }).status === 0;
  const reason = found ? null : "redis-server is not installed";
  if (reason !== null && process.env.CI === "true") throw new Error(`CI=true: ${reason}`);
  return reason;
}

const live = new Set<PrivateRedis>();
process.once("exit", () => {
  for (const server of live) server.destroySync();
});

/** A private, persistence-free redis-server on 127.0.0.1. */
export class PrivateRedis {
  readonly port: number;
  readonly #dir: string;
  #child: ChildProcess | null = null;

  private constructor(dir: string, port: number) {
    this.#dir = dir;
    this.port = port;
  }

  static async create(): Promise<PrivateRedis> {
    const server = new PrivateRedis(mkdtempSync(join(tmpdir(), "tessera-redis-")), await freePort());
    live.add(server);
    try {
      await server.start();
      return server;
    } catch (error) {
      server.destroySync();
      throw error;
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server on its port and waits for PONG. */
  async start(): Promise<void> {
    if (this.#child) throw new Error("Redis is already running");
    const child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.#dir],
      {
        stdio: "ignore",
      },
    );
    this.#child = child;
    child.once("exit", () => {
      if (this.#child === child) this.#child = null;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const client = new Redis(this.url, {
        lazyConnect: true,
        connectTimeout: 500,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      client.on("error", () => undefined);
      try {
        await client.connect();
        if ((await client.ping()) === "PONG") return;
      } catch {
        if (this.#child !== child) throw new Error("redis-server exited while starting");
        if (Date.now() > deadline) throw new Error("redis-server did not start within 15 s");
        await delay(50);
      } finally {
        client.disconnect();
      }
    }
  }

  /** Kills the server at once (SIGKILL): every connection drops, nothing is flushed. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await exited;
    this.#child = null;
  }

  destroySync(): void {
    if (!live.delete(this)) return;
    this.#child?.kill("SIGKILL");
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
