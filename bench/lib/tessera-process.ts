// Tessera as its users run it: the package built with `tsc -p tsconfig.build.json`, started as
// `node dist/cli/main.js serve` in its own process pinned to the server core, and spoken to
// only over HTTP. Nothing here imports Tessera's internals, so refactors of src/ don't break it.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Child, freePort, SERVER_CORE, spawnPinned, waitForHttp } from "./child-processes.js";

/** The repository (worktree) root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** TESSERA_SECRET of every benchmark server (not a real secret: loopback only, thrown away). */
const SECRET = "bench-secret-bench-secret-bench-secret-0123";
/** TESSERA_HS256_SECRET of HS256 servers. */
export const HS256_SECRET = "bench-hs256-shared-secret-0123456789abcdef";
/** TESSERA_ISSUER of every benchmark server. */
export const ISSUER = "https://issuer.bench";
export const AUDIENCE = "tessera";
export const USERNAME = "bench";
export const PASSWORD = "correct horse battery staple";

let built = false;

/** Newest modification time (ms) of the files under `dir`. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/ from src/ (`tsc -p tsconfig.build.json`) unless this benchmark built it from the
 * same sources before: the benchmark measures the code in the worktree, as users get it.
 */
export function buildTessera(): void {
  if (built) return;
  const stamp = join(ROOT, "dist", ".bench-build.json");
  const sources = String(Math.max(newestMtime(join(ROOT, "src")), statSync(join(ROOT, "tsconfig.build.json")).mtimeMs));
  const current =
    existsSync(stamp) && existsSync(join(ROOT, "dist", "cli", "main.js")) ? readFileSync(stamp, "utf8") : "";
  if (current !== sources) {
    process.stderr.write("building dist/ (tsc -p tsconfig.build.json)\n");
    execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, "-p", "tsconfig.build.json"], {
      cwd: ROOT,
      stdio: "inherit",
    });
    writeFileSync(stamp, sources);
  }
  built = true;
}

/** A running `tessera serve`. */
export interface TesseraProcess extends Child {
  readonly url: string;
}

/** Options of {@link startTessera}. */
export interface StartOptions {
  /** TESSERA_DATABASE_URL. */
  readonly databaseUrl: string;
  /** More TESSERA_* variables (signing algorithm, grace…). */
  readonly env?: Record<string, string>;
  /** Node flags before the script, e.g. `--cpu-prof`. */
  readonly nodeFlags?: readonly string[];
  /**
   * Pinned to the server core from the start (default). `false`: it starts on every core (faster
   * start-up and seeding, which are not measured); call `pin(SERVER_CORE)` before measuring.
   */
  readonly pinned?: boolean;
  readonly logFile?: string;
}

/**
 * Starts `node dist/cli/main.js serve` pinned to the server core, with rate limits off (the
 * load comes from one IP), logs at `warn` (no line per request, like the peers), and a 5-minute
 * refresh grace window (the longest allowed) so the grace-window rounds stay inside it.
 */
export async function startTessera(options: StartOptions): Promise<TesseraProcess> {
  buildTessera();
  const port = await freePort();
  const child = spawnPinned(
    options.pinned === false ? null : SERVER_CORE,
    process.execPath,
    [...(options.nodeFlags ?? []), `${ROOT}dist/cli/main.js`, "serve", "--host", "127.0.0.1", "--port", String(port)],
    {
      cwd: ROOT,
      env: {
        TESSERA_SECRET: SECRET,
        TESSERA_DATABASE_URL: options.databaseUrl,
        TESSERA_ISSUER: ISSUER,
        TESSERA_AUDIENCE: AUDIENCE,
        TESSERA_RATE_LIMIT: "0",
        TESSERA_LOG_LEVEL: "warn",
        TESSERA_REFRESH_GRACE: "5m",
        NODE_ENV: "production",
        ...options.env,
      },
      ...(options.logFile === undefined ? {} : { logFile: options.logFile }),
    },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/healthz`, child);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { ...child, url };
}

/** POSTs JSON and returns status and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const answer = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await answer.text();
  return { status: answer.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** A token response of `/auth/login` or `/auth/refresh`. */
export interface TokenResponse {
  readonly access_token: string;
  readonly refresh_token: string;
}

/** Registers the benchmark user (201, or 409 when it exists). */
export async function registerUser(url: string): Promise<void> {
  const answer = await postJson(`${url}/auth/register`, { username: USERNAME, password: PASSWORD });
  if (answer.status !== 201 && answer.status !== 409)
    throw new Error(`register answered ${answer.status}: ${JSON.stringify(answer.body)}`);
}

/** Logs the benchmark user in once. */
export async function login(url: string): Promise<TokenResponse> {
  const answer = await postJson(`${url}/auth/login`, { username: USERNAME, password: PASSWORD });
  if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body as unknown as TokenResponse;
}

/** `count` fresh sessions (logins, `concurrency` at a time); their first refresh tokens. */
export async function openSessions(url: string, count: number, concurrency = 4): Promise<string[]> {
  const tokens: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        tokens.push((await login(url)).refresh_token);
      }
    }),
  );
  return tokens;
}

/** Refreshes each token once (so each is "used, successor unused"); returns them. */
export async function useOnce(url: string, tokens: readonly string[]): Promise<string[]> {
  for (const token of tokens) {
    const answer = await postJson(`${url}/auth/refresh`, { refresh_token: token });
    if (answer.status !== 200) throw new Error(`refresh answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  }
  return [...tokens];
}
