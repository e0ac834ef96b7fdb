// Helpers for the fault tests: clusters of real server processes, HTTP calls that time out,
// and small statistics. Everything listens on loopback (or in a namespace a test made).
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { type Cluster, startCluster } from "../../scripts/cluster.js";

export { type Cluster, type TesseraInstance, startCluster, startInstance } from "../../scripts/cluster.js";

/** The `TESSERA_SECRET` of every test cluster. */
export const TEST_SECRET = "fault-test-secret-0123456789-abcdefghijklmn";
/** The issuer of every test cluster: the name a load balancer would have. */
export const TEST_ISSUER = "https://issuer.test";
export const PASSWORD = "correct horse battery staple";

/** A cluster for tests: no rate limits, small pools, a fixed secret and issuer; `stop()` also deletes its logs. */
export async function startTestCluster(
  databaseUrl: string,
  options: {
    instances?: number;
    redisUrl?: string;
    env?: Record<string, string>;
    envOf?: (index: number) => Record<string, string>;
    wrapperOf?: (index: number) => readonly string[] | undefined;
  } = {},
): Promise<Cluster> {
  const cluster = await startCluster({
    instances: options.instances ?? 3,
    databaseUrl,
    secret: TEST_SECRET,
    issuer: TEST_ISSUER,
    ...(options.redisUrl ? { redisUrl: options.redisUrl } : {}),
    env: { TESSERA_RATE_LIMIT: "0", TESSERA_DATABASE_POOL_SIZE: "4", ...options.env },
    ...(options.envOf ? { envOf: options.envOf } : {}),
    ...(options.wrapperOf ? { wrapperOf: options.wrapperOf } : {}),
  });
  return {
    ...cluster,
    stop: async () => {
      await cluster.stop();
      rmSync(cluster.logDir, { recursive: true, force: true });
    },
  };
}

/** An HTTP answer, with how long it took. */
export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Headers;
  readonly ms: number;
}

async function answerOf(response: Response, started: number): Promise<Answer> {
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { text };
  }
  return { status: response.status, body, headers: response.headers, ms: performance.now() - started };
}

/** POSTs JSON; rejects on a network failure or after `timeoutMs` (default 5000). */
export async function postJson(
  url: string,
  body: unknown,
  options: { timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...options.headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  });
  return answerOf(response, started);
}

/** GETs; rejects on a network failure or after `timeoutMs` (default 5000). */
export async function get(
  url: string,
  options: { timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(url, {
    headers: options.headers ?? {},
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  });
  return answerOf(response, started);
}

/** The status of `GET url`, or 0 when there was no answer within `timeoutMs`. */
export async function statusOf(url: string, timeoutMs = 2000): Promise<number> {
  try {
    return (await get(url, { timeoutMs })).status;
  } catch {
    return 0;
  }
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every `intervalMs` until true; returns the milliseconds it took. Throws after `timeoutMs`. */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what = "condition",
  intervalMs = 50,
): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await condition()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await delay(intervalMs);
  }
}

/** A TCP port free on `host` right now. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

/** The token response of a login. */
export interface TokenResponse {
  readonly access_token: string;
  readonly refresh_token: string;
}

/** Registers `username` (409 is fine) and logs in `sessions` times; returns the token responses. */
export async function registerAndLogin(url: string, username: string, sessions = 1): Promise<TokenResponse[]> {
  const registered = await postJson(`${url}/auth/register`, { username, password: PASSWORD }, { timeoutMs: 15_000 });
  if (registered.status !== 201 && registered.status !== 409)
    throw new Error(`register answered ${registered.status} ${JSON.stringify(registered.body)}`);
  const out: TokenResponse[] = [];
  for (let i = 0; i < sessions; i += 1) {
    const login = await postJson(`${url}/auth/login`, { username, password: PASSWORD }, { timeoutMs: 15_000 });
    if (login.status !== 200) throw new Error(`login answered ${login.status} ${JSON.stringify(login.body)}`);
    out.push(login.body as unknown as TokenResponse);
  }
  return out;
}

/** SHA-256 hex: how refresh tokens are stored. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The `p`-th percentile (0–100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Rounds to whole milliseconds for reports. */
export function ms(value: number): number {
  return Math.round(value);
}

/** Adds one line of measured figures to the test's output (the spec reporter shows it), for the report and docs. */
export function report(
  context: { diagnostic(message: string): void },
  label: string,
  figures: Record<string, unknown>,
): void {
  context.diagnostic(`figures ${label}: ${JSON.stringify(figures)}`);
}
