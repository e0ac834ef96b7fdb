import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { temporaryDirectory } from "../support/server.js";

const CLI = resolve("dist/cli/main.js");

interface Served {
  readonly child: ChildProcess;
  readonly port: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code and the milliseconds since `since`. */
  exited(since: number): Promise<{ code: number | null; elapsedMs: number }>;
}

/** Runs `tessera serve` on a free port (stdout a pipe, not a terminal) and waits until it listens. */
async function serve(database: string, env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--database", database], {
    env: {
      PATH: process.env.PATH ?? "",
      TESSERA_SECRET: "serve-test-secret-0123456789-abcdefghijklm",
      TESSERA_RATE_LIMIT: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  const exit = once(child, "exit") as Promise<[number | null]>;
  const port = await new Promise<number>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not listen: ${text}`)), 30_000);
    const check = () => {
      const match = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
      if (match) {
        clearTimeout(timer);
        done(Number(match[1]));
      }
    };
    child.stdout?.on("data", check);
    void exit.then(() => fail(new Error(`serve exited: ${text}`)));
  });
  return {
    child,
    port,
    output: () => text,
    exited: async (since) => {
      const [code] = await exit;
      return { code, elapsedMs: Date.now() - since };
    },
  };
}

/** Opens a socket and sends a login whose body stops short by `missing` bytes. */
async function startLogin(port: number, body: string, missing: number): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  socket.write(
    `POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, body.length - missing)}`,
  );
  return socket;
}

function answerOf(socket: Socket): Promise<string> {
  let text = "";
  socket.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  return new Promise((done) => socket.once("close", () => done(text)));
}

async function refusesConnections(port: number): Promise<boolean> {
  const socket = connect(port, "127.0.0.1");
  const [event] = await Promise.race([once(socket, "connect").then(() => ["connect"]), once(socket, "error")]);
  socket.destroy();
  return event !== "connect";
}

describe("tessera serve", () => {
  let dir: ReturnType<typeof temporaryDirectory>;
  let database: string;
  const password = "correct horse battery staple 1";

  before(async () => {
    dir = temporaryDirectory();
    database = `sqlite:${dir.path}/serve.db`;
    const server = await serve(database);
    const response = await fetch(`http://127.0.0.1:${server.port}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "drain", password }),
    });
    assert.equal(response.status, 201);
    server.child.kill("SIGTERM");
    assert.equal((await server.exited(Date.now())).code, 0);
  });
  after(() => dir.remove());

  it("on SIGTERM refuses new connections, finishes the request in flight and exits 0", async () => {
    const server = await serve(database, { TESSERA_SHUTDOWN_TIMEOUT: "8s" });
    const body = JSON.stringify({ username: "drain", password });
    const socket = await startLogin(server.port, body, 5);
    const answer = answerOf(socket);
    await sleep(200);
    const since = Date.now();
    server.child.kill("SIGTERM");
    await sleep(300);
    assert.equal(await refusesConnections(server.port), true, "a new connection is refused");
    socket.write(body.slice(body.length - 5));
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /"refresh_token":"/);
    const { code, elapsedMs } = await server.exited(since);
    assert.equal(code, 0);
    assert.ok(elapsedMs < 8000, `exited after ${elapsedMs} ms`);
    assert.match(server.output(), /"outcome":"drained"/);
  });

  it("closes a request that never finishes at TESSERA_SHUTDOWN_TIMEOUT and exits 0", async () => {
    const server = await serve(database, { TESSERA_SHUTDOWN_TIMEOUT: "1s" });
    const socket = await startLogin(server.port, JSON.stringify({ username: "drain", password }), 5);
    const answer = answerOf(socket);
    await sleep(200);
    const since = Date.now();
    server.child.kill("SIGTERM");
    const { code, elapsedMs } = await server.exited(since);
    await answer;
    assert.equal(code, 0);
    assert.ok(elapsedMs >= 900 && elapsedMs < 4000, `exited after ${elapsedMs} ms`);
    assert.match(server.output(), /"outcome":"forced"/);
  });

  it("logs JSON lines with a request id on each request's lines and no password or token", async () => {
    const server = await serve(database, { TESSERA_LOG_LEVEL: "trace" });
    const base = `http://127.0.0.1:${server.port}`;
    const secrets: string[] = [];
    const json = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
      const response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
      return { response, body: response.status === 204 ? {} : ((await response.json()) as Record<string, string>) };
    };
    const keep = (tokens: Record<string, string>) => {
      const { access_token: accessToken, refresh_token: refreshToken } = tokens;
      assert.ok(accessToken && refreshToken);
      secrets.push(accessToken, refreshToken);
      return { access_token: accessToken, refresh_token: refreshToken };
    };
    const newPassword = "another long passphrase for logs 2";
    const wrongPassword = "not the password at all 3";
    secrets.push(password, newPassword, wrongPassword);

    const registered = await json("/auth/register", { username: "logged", password: newPassword });
    assert.equal(registered.response.status, 201);
    const login = await json(
      "/auth/login",
      { username: "logged", password: newPassword },
      { "x-request-id": "abc-123" },
    );
    assert.equal(login.response.headers.get("x-request-id"), "abc-123");
    const first = keep(login.body);
    const refreshed = keep((await json("/auth/refresh", { refresh_token: first.refresh_token })).body);
    const me = await fetch(`${base}/auth/me`, {
      headers: { authorization: `Bearer ${refreshed.access_token}`, "x-request-id": "bad id\u00e9<script>" },
    });
    assert.equal(me.status, 200);
    assert.match(me.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const failed = await json("/auth/login", { username: "logged", password: wrongPassword });
    assert.equal(failed.response.status, 401);
    const malformed = "tsr_malformed-refresh-token-value-0123456789";
    secrets.push(malformed);
    assert.equal((await json("/auth/refresh", { refresh_token: malformed })).response.status, 401);
    const broken = await fetch(`${base}/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `{"username":"logged","password":"${wrongPassword}"`,
    });
    assert.equal(broken.status, 400);
    const inQuery = await fetch(`${base}/auth/me?access_token=${encodeURIComponent(refreshed.access_token)}`);
    assert.equal(inQuery.status, 401);
    const form = await fetch(`${base}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshed.refresh_token }).toString(),
    });
    assert.equal(form.status, 200);
    const third = keep((await form.json()) as Record<string, string>);
    const badBearer = await fetch(`${base}/auth/me`, { headers: { authorization: `Bearer ${first.access_token}x` } });
    assert.equal(badBearer.status, 401);
    assert.equal((await json("/auth/logout", { refresh_token: third.refresh_token })).response.status, 204);

    const since = Date.now();
    server.child.kill("SIGTERM");
    assert.equal((await server.exited(since)).code, 0);
    const log = server.output();
    for (const secret of secrets) assert.ok(!log.includes(secret), `the log holds a secret: ${secret.slice(0, 12)}…`);
    const lines = log.split("\n").filter((line) => line !== "");
    assert.ok(lines.length > 10);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const ofRequests = records.filter((record) => "req" in record || "res" in record);
    assert.ok(ofRequests.length >= 22, `${ofRequests.length} request lines`);
    for (const record of ofRequests) assert.equal(typeof record.reqId, "string", JSON.stringify(record));
    assert.ok(records.some((record) => record.reqId === "abc-123"));
  });

  // util-linux `script` gives the server a terminal for its standard output.
  const hasScript = spawnSync("script", ["--version"]).status === 0;
  it("logs human-readable lines when standard output is a terminal", { skip: !hasScript }, async () => {
    const command = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} serve --port 0 --database ${database}`;
    const child = spawn("script", ["-q", "-c", command, "/dev/null"], {
      env: { PATH: process.env.PATH ?? "", TESSERA_SECRET: "serve-test-secret-0123456789-abcdefghijklm" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let text = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
    const deadline = Date.now() + 30_000;
    while (!/listening at http/.test(text) && Date.now() < deadline && child.exitCode === null) await sleep(50);
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
    assert.match(text, /INFO/);
    assert.match(text, /listening at http/);
    assert.doesNotMatch(text, /^\{"level"/m);
  });
});
