import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer as createNetServer } from "node:net";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { temporaryDirectory } from "../support/server.js";

const CLI = resolve("dist/cli/main.js");

async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/**
 * The README's walk-through, over a real socket, against `tessera serve` started the way a
 * newcomer starts it (built CLI, default SQLite under ./data/), in a time zone far from UTC.
 */
describe("the README walk-through against `tessera serve`", () => {
  let child: ChildProcess;
  let base: string;
  let dir: ReturnType<typeof temporaryDirectory>;
  let output = "";

  before(async () => {
    dir = temporaryDirectory();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [CLI, "serve"], {
      cwd: dir.path,
      env: { PATH: process.env.PATH, TZ: "Pacific/Chatham", TESSERA_PORT: String(port), TESSERA_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    for (let attempt = 0; attempt < 100; attempt += 1) {
      try {
        if ((await fetch(`${base}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((done) => setTimeout(done, 100));
    }
    throw new Error(`server did not start:\n${output}`);
  });

  after(async () => {
    child.kill("SIGTERM");
    if (child.exitCode === null) await once(child, "exit");
    dir.remove();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  it("registers, logs in, calls /auth/me, refreshes, rejects a replay by revoking the session, and logs out", async () => {
    const credentials = { username: "alice", password: "correct horse battery staple" };
    assert.equal((await post("/auth/register", credentials)).status, 201);

    const loginStarted = Math.floor(Date.now() / 1000);
    const login = await post("/auth/login", credentials);
    assert.equal(login.status, 200);
    const tokens = (await login.json()) as { access_token: string; refresh_token: string; expires_in: number };
    const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1]!, "base64url").toString()) as {
      iat: number;
      exp: number;
    };
    // Expiry is UTC epoch seconds whatever the server's zone: 15 minutes from now.
    assert.ok(Math.abs(claims.iat - loginStarted) <= 2, `iat ${claims.iat} vs now ${loginStarted}`);
    assert.equal(claims.exp - claims.iat, 900);

    const me = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(me.status, 200);
    assert.equal(((await me.json()) as { username: string }).username, "alice");

    const sessions = (await (
      await fetch(`${base}/auth/sessions`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
    ).json()) as {
      sessions: Array<{ created_at: string; expires_at: string }>;
    };
    const [session] = sessions.sessions;
    assert.ok(Math.abs(Date.parse(session!.created_at) - loginStarted * 1000) < 3000, "created_at is UTC now");
    assert.equal(Date.parse(session!.expires_at) - Date.parse(session!.created_at), 3 * 86400 * 1000);

    const refreshed = await post("/auth/refresh", { refresh_token: tokens.refresh_token });
    assert.equal(refreshed.status, 200);
    const next = (await refreshed.json()) as { access_token: string; refresh_token: string };

    // Let the grace window pass? Not needed: using the successor first makes any replay reuse.
    assert.equal((await post("/auth/refresh", { refresh_token: next.refresh_token })).status, 200);
    const replay = await post("/auth/refresh", { refresh_token: tokens.refresh_token });
    assert.equal(replay.status, 401);
    assert.equal(((await replay.json()) as { error: string }).error, "invalid_grant");
    const afterReplay = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${next.access_token}` } });
    assert.equal(afterReplay.status, 401, "the whole session is revoked");

    const again = (await (await post("/auth/login", credentials)).json()) as { refresh_token: string };
    assert.equal((await post("/auth/logout", { refresh_token: again.refresh_token })).status, 204);
    assert.equal((await post("/auth/refresh", { refresh_token: again.refresh_token })).status, 401);
  });

  it("keeps its data in ./data/tessera.db", () => {
    assert.ok(existsSync(join(dir.path, "data", "tessera.db")));
  });

  it("logged the development mode loudly and never logged a token or password", () => {
    assert.match(output, /DEVELOPMENT MODE/);
    assert.doesNotMatch(output, /tsr_|correct horse|eyJ/);
  });
});
