// `npm run cluster -- --instances 3 --database postgres://…`: N Tessera server processes on
// loopback ports against one database and one Redis, sharing TESSERA_SECRET and the issuer.
// Prints their URLs and stops them all on Ctrl-C or SIGTERM. The fault tests start clusters
// through the functions exported here.
import { randomBytes } from "node:crypto";
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

/** The compiled CLI every instance runs (`npm run build` makes it). */
export const SERVER_ENTRY = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));

/** Options of {@link startInstance}. */
export interface InstanceOptions {
  /** Shown in logs and messages, e.g. `instance 2`. */
  readonly name: string;
  /** `TESSERA_*` variables (and `TZ`); `TESSERA_LOG_LEVEL` is forced to at least `info`. */
  readonly env: Readonly<Record<string, string>>;
  /** File the process's stdout and stderr go to. */
  readonly logPath: string;
  /** Run the server under this command, e.g. `["ip", "netns", "exec", "ns1"]`. Default none. */
  readonly wrapper?: readonly string[];
  /** How long to wait for "Server listening", in milliseconds. Default 30 000. */
  readonly startTimeoutMs?: number;
}

/** One Tessera server process. */
export interface TesseraInstance {
  readonly name: string;
  /** e.g. `http://127.0.0.1:41234`, as the server printed it. */
  readonly url: string;
  readonly pid: number;
  readonly logPath: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True until the process has exited. */
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** `kill -9`; resolves once it has exited. */
  kill(): Promise<void>;
  /** The last `chars` characters of its log. */
  logTail(chars?: number): string;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

// A test or script that dies must not leave servers behind: kill whatever is still running.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

function readTail(path: string, chars: number, from = 0): string {
  try {
    const text = readFileSync(path).subarray(from).toString("utf8");
    return text.slice(-chars);
  } catch {
    return "";
  }
}

const LISTENING = /"msg":"Server listening at (http:\/\/[^"]+)"/;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Spawns `node dist/cli/main.js serve` with `options.env` and waits until it prints the URL it
 * listens on (so `TESSERA_PORT=0` works). Throws, with the end of its log, if it exits first
 * or does not listen in time; the process is killed then.
 */
export async function startInstance(options: InstanceOptions): Promise<TesseraInstance> {
  if (!existsSync(SERVER_ENTRY)) throw new Error(`${SERVER_ENTRY} is missing: run \`npm run build\` first`);
  installExitHook();
  const log = openSync(options.logPath, "a");
  // The log may hold earlier runs: look for the URL only in what this process writes.
  const offset = statSync(options.logPath).size;
  const [command, ...prefix] = [...(options.wrapper ?? []), process.execPath];
  const level = options.env.TESSERA_LOG_LEVEL;
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/",
    TZ: "UTC",
    ...options.env,
    // The URL is read from the "Server listening" line, logged at info.
    TESSERA_LOG_LEVEL: level === "debug" || level === "trace" ? level : "info",
  };
  const child = spawn(command, [...prefix, SERVER_ENTRY, "serve"], { env, stdio: ["ignore", log, log] });
  closeSync(log);
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = async () => {
    if (alive()) child.kill("SIGKILL");
    await exited;
  };
  const stop = async (graceMs = 5000) => {
    if (!alive()) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  let url: string | undefined;
  while (url === undefined) {
    url = LISTENING.exec(readTail(options.logPath, 1 << 20, offset))?.[1];
    if (url !== undefined) break;
    if (!alive() || Date.now() > deadline) {
      await kill();
      throw new Error(
        `${options.name} did not start (${alive() ? "timeout" : "exited"}); log ${options.logPath}:\n${readTail(options.logPath, 3000, offset)}`,
      );
    }
    await delay(25);
  }
  return {
    name: options.name,
    url,
    pid: child.pid!,
    logPath: options.logPath,
    exited,
    alive,
    stop,
    kill,
    logTail: (chars = 3000) => readTail(options.logPath, chars),
  };
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Number of instances. Default 3. */
  readonly instances?: number;
  readonly databaseUrl: string;
  /** Shared Redis (rate limits, revocation push). Default none. */
  readonly redisUrl?: string;
  /** Shared `TESSERA_SECRET`. Default: a random one for this run. */
  readonly secret?: string;
  /** Shared issuer. Default `http://127.0.0.1:{first port}`, or `http://127.0.0.1` with port 0. */
  readonly issuer?: string;
  readonly host?: string;
  /** First port; the others follow it. 0 (default) lets each instance take a free port. */
  readonly port?: number;
  /** More `TESSERA_*` variables for every instance; the options above win over them. */
  readonly env?: Readonly<Record<string, string>>;
  /** Variables for single instances, by index. */
  readonly envOf?: (index: number) => Readonly<Record<string, string>>;
  /** A command to run single instances under, by index (e.g. `ip netns exec …`). */
  readonly wrapperOf?: (index: number) => readonly string[] | undefined;
  /** Where the instances' logs go. Default a new temporary directory. */
  readonly logDir?: string;
}

/** Instances sharing one database, Redis, secret and issuer. */
export interface Cluster {
  /** In the order of their indexes (`envOf`, `wrapperOf`). */
  readonly instances: TesseraInstance[];
  readonly logDir: string;
  /** The environment shared by all instances (with the secret). */
  readonly env: Readonly<Record<string, string>>;
  /** Starts one more instance (e.g. to replace a killed one); it is added to the end of `instances`. */
  addInstance(extra?: Readonly<Record<string, string>>, wrapper?: readonly string[]): Promise<TesseraInstance>;
  /** Stops every instance still running (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
}

/**
 * Starts `instances` servers on one database. The first starts alone (it migrates the schema
 * and creates the signing key); the others start together. If any fails, all are stopped.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const count = options.instances ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 64)
    throw new TypeError("instances must be a whole number from 1 to 64");
  const port = options.port ?? 0;
  const host = options.host ?? "127.0.0.1";
  const logDir = options.logDir ?? mkdtempSync(join(tmpdir(), "tessera-cluster-"));
  mkdirSync(logDir, { recursive: true });
  const env: Record<string, string> = {
    ...options.env,
    TESSERA_DATABASE_URL: options.databaseUrl,
    TESSERA_SECRET: options.secret ?? randomBytes(32).toString("base64url"),
    TESSERA_ISSUER: options.issuer ?? (port === 0 ? `http://${host}` : `http://${host}:${port}`),
    TESSERA_HOST: host,
    ...(options.redisUrl ? { TESSERA_REDIS_URL: options.redisUrl } : {}),
  };
  const instances: TesseraInstance[] = [];
  let next = 0;
  const addInstance = async (extra: Readonly<Record<string, string>> = {}, wrapper?: readonly string[]) => {
    const index = next;
    next += 1;
    const wrapped = wrapper ?? options.wrapperOf?.(index);
    const instance = await startInstance({
      name: `instance ${index + 1}`,
      env: { ...env, TESSERA_PORT: String(port === 0 ? 0 : port + index), ...options.envOf?.(index), ...extra },
      logPath: join(logDir, `instance-${index + 1}.log`),
      ...(wrapped ? { wrapper: wrapped } : {}),
    });
    instances[index] = instance;
    return instance;
  };
  const stop = async () => {
    await Promise.all(instances.filter(Boolean).map((instance) => instance.stop()));
  };
  try {
    await addInstance();
    const rest = await Promise.allSettled(Array.from({ length: count - 1 }, () => addInstance()));
    const failed = rest.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
  } catch (error) {
    await stop();
    throw error;
  }
  return { instances, logDir, env, addInstance, stop };
}

/** `url` with its password replaced by `***`, for printing. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url;
  }
}

const USAGE = `Usage: npm run cluster -- [options]

Starts N Tessera instances on loopback ports against one database (and one Redis), prints
their URLs and stops them all on Ctrl-C. Needs \`npm run build\` (the npm script runs it).

  --instances <n>    how many (default 3)
  --database <url>   TESSERA_DATABASE_URL (default that variable, else sqlite:./data/tessera.db)
  --redis <url>      TESSERA_REDIS_URL (default that variable, else none: rate limits per instance)
  --port <n>         first port, the others follow (default 3000; 0 = free ports)
  --host <host>      interface (default 127.0.0.1)
  --issuer <url>     shared issuer (default http://{host}:{port}: put a load balancer there)
  --log-dir <dir>    instance logs (default a new temporary directory)

TESSERA_SECRET is shared by all instances; without it a random one is used for this run only
(a database whose keys were sealed with another secret then refuses to start: set it).
Other TESSERA_* variables in the environment are passed to every instance.`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      instances: { type: "string", default: "3" },
      database: { type: "string" },
      redis: { type: "string" },
      port: { type: "string", default: "3000" },
      host: { type: "string", default: "127.0.0.1" },
      issuer: { type: "string" },
      "log-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!/^\d+$/.test(values.instances) || !/^\d+$/.test(values.port))
    throw new TypeError("--instances and --port must be whole numbers");
  const databaseUrl = values.database ?? process.env.TESSERA_DATABASE_URL ?? "sqlite:./data/tessera.db";
  const redisUrl = values.redis ?? process.env.TESSERA_REDIS_URL;
  const passed = Object.fromEntries(
    Object.entries(process.env).filter(([name, value]) => name.startsWith("TESSERA_") && value !== undefined),
  ) as Record<string, string>;
  if (!process.env.TESSERA_SECRET)
    process.stderr.write("TESSERA_SECRET is not set: using a random secret for this run only.\n");

  // A signal during start-up exits at once; the exit hook kills what had started.
  const state: { cluster?: Cluster; stopping: boolean } = { stopping: false };
  const shutdown = (signal: string) => {
    if (state.stopping) return;
    state.stopping = true;
    process.stdout.write(`${signal}: stopping ${state.cluster?.instances.length ?? 0} instances…\n`);
    void (state.cluster?.stop() ?? Promise.resolve()).then(() => process.exit(0));
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));

  const cluster = await startCluster({
    instances: Number(values.instances),
    databaseUrl,
    ...(redisUrl ? { redisUrl } : {}),
    ...(process.env.TESSERA_SECRET ? { secret: process.env.TESSERA_SECRET } : {}),
    ...(values.issuer ? { issuer: values.issuer } : {}),
    host: values.host,
    port: Number(values.port),
    env: passed,
    ...(values["log-dir"] ? { logDir: values["log-dir"] } : {}),
  });
  state.cluster = cluster;
  process.stdout.write(
    `tessera cluster: ${cluster.instances.length} instances on ${redactUrl(databaseUrl)}, Redis ${redisUrl ? redactUrl(redisUrl) : "none"}\n`,
  );
  process.stdout.write(`issuer ${cluster.env.TESSERA_ISSUER}; logs in ${cluster.logDir}\n`);
  for (const instance of cluster.instances)
    process.stdout.write(`  ${instance.name}  ${instance.url}  pid ${instance.pid}\n`);
  process.stdout.write("Ctrl-C stops them all.\n");
  for (const instance of cluster.instances) {
    void instance.exited.then(({ code, signal }) => {
      if (state.stopping) return;
      process.stderr.write(
        `${instance.name} (${instance.url}) exited with ${signal ?? code}; log ${instance.logPath}\n`,
      );
      if (cluster.instances.every((other) => !other.alive())) process.exit(1);
    });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`cluster: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
