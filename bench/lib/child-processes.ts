// Child processes of a benchmark run: servers pinned to the server core, each stopped when
// the run ends, also when it fails or is interrupted.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** Core of every server process; the load generator gets {@link LOAD_CORE}. */
export const SERVER_CORE = 0;
/** Core of `wrk` and of the benchmark's own HTTP clients while they measure. */
export const LOAD_CORE = 1;

/** A process started by the benchmark. */
export interface Child {
  readonly pid: number;
  readonly process: ChildProcess;
  /** Resident set size in bytes, from `/proc/<pid>/status`; 0 once the process is gone. */
  rssBytes(): number;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. Idempotent. */
  stop(): Promise<void>;
  /** Pins every thread of the process to `core` (`taskset -a -p`); threads it starts later inherit it. */
  pin(core: number): void;
}

const running = new Set<Child>();

/** Stops every child still running (called at the end of a run and on SIGINT). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop()));
}

/** Resident set size of `pid` in bytes, 0 when it is gone. */
export function rssBytesOf(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time used so far by every thread of `pid`, in nanoseconds (sum of the first field of
 * `/proc/<pid>/task/<tid>/schedstat`); 0 when the process is gone.
 */
export function cpuNanosOf(pid: number): number {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
    return total;
  } catch {
    return 0;
  }
}

/** Options of {@link spawnPinned}. */
export interface SpawnOptions {
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  /** Where stdout and stderr go; default nowhere (kept only in the last 4 KB for errors). */
  readonly logFile?: string;
}

/**
 * Starts `command args` under `taskset -c core`: the process and every thread it creates
 * (libuv's pool, V8's GC helpers) stay on that core. With `core` null it starts unpinned (to
 * start up and be seeded on every core) and is pinned later with {@link Child.pin}.
 */
export function spawnPinned(
  core: number | null,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Child & { output(): string } {
  const child = spawn(
    core === null ? command : "taskset",
    core === null ? args : ["-c", String(core), command, ...args],
    {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TZ: "UTC", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let tail = "";
  const log = options.logFile === undefined ? null : createWriteStream(options.logFile);
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      tail = (tail + chunk).slice(-4000);
      log?.write(chunk);
    });
  }
  let stopping: Promise<void> | null = null;
  const exited = once(child, "exit").catch(() => undefined);
  const handle = {
    pid: child.pid ?? -1,
    process: child,
    output: () => tail,
    rssBytes: () => rssBytesOf(child.pid ?? -1),
    pin: (target: number) => {
      execFileSync("taskset", ["-a", "-p", "-c", String(target), String(child.pid)], { stdio: "ignore" });
    },
    stop: () =>
      (stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(timer);
        }
        log?.end();
        running.delete(handle);
      })()),
  };
  running.add(handle);
  return handle;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

/** Waits until `url` answers 200, failing with the child's output if it exits or `timeoutMs` passes. */
export async function waitForHttp(url: string, child: Child & { output(): string }, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null)
      throw new Error(`${url}: the server exited with ${child.process.exitCode}: ${child.output()}`);
    try {
      const answer = await fetch(url);
      await answer.arrayBuffer();
      if (answer.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms: ${child.output()}`);
}

/** Waits for the JSON line `{"port": N}` a benchmark server prints once it listens; returns N. */
export async function waitForPortLine(child: Child & { output(): string }, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const port = /\{"port":(\d+)\}/.exec(child.output())?.[1];
    if (port !== undefined) return Number(port);
    if (child.process.exitCode !== null)
      throw new Error(`the server exited with ${child.process.exitCode}: ${child.output()}`);
    await sleep(50);
  }
  throw new Error(`the server did not listen within ${timeoutMs} ms: ${child.output()}`);
}
