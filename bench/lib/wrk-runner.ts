// Runs wrk (Debian's package, installed here if missing) pinned to the load core and reads the
// one JSON line that bench/wrk/report.lua prints when it is done.
import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpuNanosOf, LOAD_CORE } from "./child-processes.js";

/** Directory of the Lua scripts. */
export const WRK_DIR = fileURLToPath(new URL("../wrk/", import.meta.url));

/** One wrk run. Latencies in milliseconds. */
export interface WrkResult {
  /** Answers per second, all statuses. */
  readonly perSecond: number;
  /** Answers per second with a 2xx/3xx status. */
  readonly okPerSecond: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Answers that were not 2xx/3xx. */
  readonly statusErrors: number;
  /** Connect, read, write errors and timeouts. */
  readonly socketErrors: number;
  /** refresh-chain.lua / refresh-repeat.lua: answers without a successor. */
  readonly refused: number;
  /** refresh-chain.lua: requests sent while no unused token was left. */
  readonly exhausted: number;
  /** refresh-chain.lua with TOKENS_OUT: tokens written for the next run. */
  readonly tokensLeft: number;
  /** CPU seconds the `serverPid` process used during the run (NaN without one). */
  readonly serverCpuSeconds: number;
  /**
   * 2xx/3xx answers per CPU-second of the server: what it would serve with the core to itself.
   * Unlike {@link okPerSecond}, barely moved by other processes competing for the cores.
   */
  readonly okPerCpuSecond: number;
}

/** Options of {@link runWrk}. */
export interface WrkOptions {
  readonly url: string;
  readonly seconds: number;
  readonly connections: number;
  /** A script of bench/wrk/ (default `report.lua`). */
  readonly script?: string;
  readonly headers?: Record<string, string>;
  /** Environment for the Lua script (TOKENS_IN, TOKENS_OUT, LOGIN_BODY…). */
  readonly env?: Record<string, string>;
  /** The server process, to measure the CPU time it used (see {@link WrkResult.okPerCpuSecond}). */
  readonly serverPid?: number;
}

let checked = false;

/** Makes sure `wrk` and `taskset` exist, installing `wrk` with apt-get when it is missing. */
export function ensureWrk(): void {
  if (checked) return;
  const has = (command: string) => {
    try {
      execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (!has("wrk")) {
    process.stderr.write("wrk is missing: installing it with apt-get\n");
    const root = process.getuid?.() === 0;
    const run = (args: string[]) =>
      execFileSync(root ? "apt-get" : "sudo", root ? args : ["apt-get", ...args], { stdio: "inherit" });
    run(["update"]);
    run(["install", "-y", "wrk"]);
  }
  if (!has("taskset"))
    throw new Error("taskset (util-linux) is required to pin the server and the load generator to different cores");
  checked = true;
}

/** wrk's version line, e.g. `wrk debian/4.1.0-3+b2 [epoll]`. */
export function wrkVersion(): string {
  try {
    execFileSync("wrk", ["-v"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    // wrk -v prints its banner and exits with status 1
    const stdout = (error as { stdout?: unknown }).stdout;
    const output = typeof stdout === "string" ? stdout : "";
    return /^wrk .*$/m.exec(output)?.[0]?.replace(/ Copyright.*$/, "") ?? "wrk";
  }
  return "wrk";
}

/** Runs wrk with one thread pinned to the load core; rejects when it fails or prints no result. */
export function runWrk(options: WrkOptions): Promise<WrkResult> {
  ensureWrk();
  const args = [
    "-c",
    String(LOAD_CORE),
    "wrk",
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--timeout",
    "10s",
    "-s",
    `${WRK_DIR}${options.script ?? "report.lua"}`,
  ];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push("-H", `${name}: ${value}`);
  args.push(options.url);
  const cpuBefore = options.serverPid === undefined ? NaN : cpuNanosOf(options.serverPid);
  return new Promise((resolve, reject) => {
    execFile(
      "taskset",
      args,
      {
        env: { ...process.env, BENCH_WRK_DIR: WRK_DIR, ...options.env },
        maxBuffer: 4 * 1024 * 1024,
        timeout: (options.seconds + 60) * 1000,
      },
      (error, stdout, stderr) => {
        const line = /^BENCH_JSON (.*)$/m.exec(stdout)?.[1];
        if (error || line === undefined) {
          reject(new Error(`wrk ${options.url} failed: ${error?.message ?? "no result"}\n${stdout}\n${stderr}`));
          return;
        }
        const serverCpuSeconds =
          options.serverPid === undefined ? NaN : (cpuNanosOf(options.serverPid) - cpuBefore) / 1e9;
        const raw = JSON.parse(line) as Record<string, number>;
        const n = (name: string) => raw[name] ?? 0;
        const seconds = n("durationUs") / 1e6;
        resolve({
          perSecond: n("requests") / seconds,
          okPerSecond: (n("requests") - n("statusErrors")) / seconds,
          requests: n("requests"),
          p50Ms: n("p50Us") / 1000,
          p90Ms: n("p90Us") / 1000,
          p99Ms: n("p99Us") / 1000,
          maxMs: n("maxUs") / 1000,
          statusErrors: n("statusErrors"),
          socketErrors: n("connectErrors") + n("readErrors") + n("writeErrors") + n("timeouts"),
          refused: n("refused"),
          exhausted: n("exhausted"),
          tokensLeft: n("tokensLeft"),
          serverCpuSeconds,
          // When wrk stops, up to one request per connection is in flight: the server spent CPU on
          // it, wrk does not count it. Counting them keeps slow servers from looking even slower.
          okPerCpuSecond: (n("requests") - n("statusErrors") + options.connections) / serverCpuSeconds,
        });
      },
    );
  });
}
