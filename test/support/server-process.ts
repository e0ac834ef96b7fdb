import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./server-process-main.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A Tessera server running in its own process. */
export interface ServerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** The environment every test server process shares, plus `extra`. */
export function serverEnvironment(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    TESSERA_SECRET: "test-secret-test-secret-test-secret-0123456789",
    TESSERA_DATABASE_URL: databaseUrl,
    TESSERA_RATE_LIMIT: "0",
    TESSERA_ISSUER: "https://issuer.test",
    ...extra,
  };
}

/** Spawns `node --import tsx test/support/server-process-main.ts` and waits until it listens. */
export async function spawnServer(env: Record<string, string>, timeoutMs = 30_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", SCRIPT], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TZ: process.env.TZ ?? "UTC", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not start within ${timeoutMs} ms: ${stderr}`)),
        timeoutMs,
      );
      let stdout = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
        const line = stdout.split("\n").find((l) => l.startsWith("{"));
        if (line) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}: ${stderr}`));
      });
    });
    return { url: `http://127.0.0.1:${port}`, child, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Starts one server per environment, all at once. If any fails to start, the others are
 * stopped before the error is thrown: a server left running would keep the test file's process
 * (and the whole test run) alive.
 */
export async function spawnServers(envs: readonly Record<string, string>[]): Promise<ServerProcess[]> {
  const started = await Promise.allSettled(envs.map((env) => spawnServer(env)));
  const servers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const failure = started.find((result) => result.status === "rejected");
  if (failure) {
    await Promise.all(servers.map((server) => server.stop()));
    throw failure.reason;
  }
  return servers;
}
