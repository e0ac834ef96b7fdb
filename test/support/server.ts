import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { createServer, type ServerOptions } from "../../src/http/server.js";

/** A real Tessera server listening on 127.0.0.1 with its own SQLite file. */
export interface RunningServer {
  readonly app: FastifyInstance;
  /** e.g. `http://127.0.0.1:41234` */
  readonly url: string;
  readonly issuer: string;
  readonly audience: string;
  close(): Promise<void>;
}

/** A loopback port free at the time of asking, for a server that must know its URL before it listens. */
export async function freePort(): Promise<number> {
  const probe = createHttpServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** A temporary directory removed by the returned function. */
export function temporaryDirectory(prefix = "tessera-test-"): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Starts a server on a free port. Defaults: a fresh SQLite file, no rate limits, silent logs,
 * issuer `https://issuer.test`, audience `tessera`, secret set (not development mode).
 */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const dir = temporaryDirectory();
  const issuer = options.issuer ?? "https://issuer.test";
  const audience = options.audience ?? "tessera";
  const app = await createServer({
    databaseUrl: `sqlite:${join(dir.path, "tessera.db")}`,
    secret: "test-secret-test-secret-test-secret-0123456789",
    rateLimitPerMinute: 0,
    logger: false,
    ...options,
    issuer,
    audience,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("server has no TCP address");
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    issuer,
    audience,
    close: async () => {
      await app.close();
      dir.remove();
    },
  };
}

/** Registers `username` and logs in over HTTP; returns the token response. */
export async function registerAndLogin(
  url: string,
  username: string,
  password = "correct horse battery staple",
): Promise<{ access_token: string; refresh_token: string; expires_in: number; refresh_token_expires_in: number }> {
  const headers = { "content-type": "application/json" };
  const body = JSON.stringify({ username, password });
  const registered = await fetch(`${url}/auth/register`, { method: "POST", headers, body });
  if (registered.status !== 201 && registered.status !== 409) throw new Error(`register answered ${registered.status}`);
  const login = await fetch(`${url}/auth/login`, { method: "POST", headers, body });
  if (login.status !== 200) throw new Error(`login answered ${login.status}`);
  return (await login.json()) as {
    access_token: string;
    refresh_token: string;
    expires_in: number;
    refresh_token_expires_in: number;
  };
}
