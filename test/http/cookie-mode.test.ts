import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from "fastify";
import { CSRF_HEADER } from "../../src/http/cookie-mode.js";
import type { ServerOptions } from "../../src/http/server.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { tessera } from "../../src/http/tessera-plugin.js";
import { type InjectedServer, injectedServer } from "../support/inject.js";
import { temporaryDirectory } from "../support/server.js";

const PASSWORD = "correct horse battery staple";
const SECRET = "cookie-test-secret-0123456789-abcdefghijkl";

function harness(options: ServerOptions): Promise<InjectedServer> {
  return injectedServer({ secret: SECRET, cookieMode: true, ...options });
}

/** The Set-Cookie header lines of a response. */
function setCookies(response: LightMyRequestResponse): string[] {
  const header = response.headers["set-cookie"];
  return header === undefined ? [] : [header].flat();
}

/** The attributes of the one Set-Cookie line for `name`: lower-cased names → values. */
function cookieAttributes(
  response: LightMyRequestResponse,
  name: string,
): { value: string; attributes: Map<string, string> } {
  const lines = setCookies(response).filter((line) => line.startsWith(`${name}=`));
  assert.equal(lines.length, 1, `one Set-Cookie for ${name}: ${JSON.stringify(setCookies(response))}`);
  const [pair = "", ...rest] = lines[0]!.split(";").map((part) => part.trim());
  const attributes = new Map(
    rest.map((part) => {
      const [key = "", value = ""] = part.split("=");
      return [key.toLowerCase(), value] as const;
    }),
  );
  return { value: pair.slice(name.length + 1), attributes };
}

function assertError(response: LightMyRequestResponse, status: number, error: string): void {
  assert.equal(response.statusCode, status, response.body);
  assert.equal(response.json().error, error);
}

let counter = 0;

/** Registers a fresh user and logs in as a browser on `origin` would; returns the login answer. */
async function browserLogin(app: FastifyInstance, origin: string): Promise<LightMyRequestResponse> {
  counter += 1;
  const username = `browser${counter}`;
  const headers = { "content-type": "application/json", origin, [CSRF_HEADER]: "1" };
  const body = JSON.stringify({ username, password: PASSWORD });
  const registered = await app.inject({ method: "POST", url: "/auth/register", headers, payload: body });
  assert.equal(registered.statusCode, 201, registered.body);
  const login = await app.inject({ method: "POST", url: "/auth/login", headers, payload: body });
  assert.equal(login.statusCode, 200, login.body);
  return login;
}

describe("cookie mode with an http issuer", () => {
  const ORIGIN = "http://127.0.0.1:3000";
  const NAME = "tessera_refresh";
  let h: InjectedServer;
  before(async () => {
    h = await harness({ issuer: ORIGIN });
  });
  after(() => h.close());

  const post = (url: string, cookie: string | null, headers: Record<string, string>, body: unknown = {}) =>
    h.app.inject({
      method: "POST",
      url,
      headers: {
        "content-type": "application/json",
        ...(cookie === null ? {} : { cookie: `${NAME}=${cookie}` }),
        ...headers,
      },
      payload: JSON.stringify(body),
    });
  const asBrowser = { origin: ORIGIN, [CSRF_HEADER]: "1" };

  it("sets the refresh token in an HttpOnly, Secure, SameSite=Strict cookie scoped to /auth, not in the body", async () => {
    const login = await browserLogin(h.app, ORIGIN);
    const body = login.json();
    assert.equal(body.refresh_token, undefined);
    assert.equal(body.token_type, "Bearer");
    assert.equal(typeof body.access_token, "string");
    assert.equal(body.refresh_token_expires_in, 3 * 86400);
    const { value, attributes } = cookieAttributes(login, NAME);
    assert.match(value, /^tsr_[A-Za-z0-9_-]{49}$/);
    assert.equal(attributes.get("path"), "/auth");
    assert.equal(attributes.get("max-age"), String(3 * 86400));
    assert.ok(attributes.has("httponly"));
    assert.ok(attributes.has("secure"));
    assert.equal(attributes.get("samesite"), "Strict");
    assert.equal(attributes.has("domain"), false, "host-only");
    assert.equal(login.headers["cache-control"], "no-store");
  });

  it("rotates the cookie's refresh token on /auth/refresh and sets its successor", async () => {
    const first = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    const refreshed = await post("/auth/refresh", first, asBrowser);
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.equal(refreshed.json().refresh_token, undefined);
    const second = cookieAttributes(refreshed, NAME).value;
    assert.notEqual(second, first);
    const again = await post("/auth/refresh", second, asBrowser);
    assert.equal(again.statusCode, 200, again.body);
  });

  it("refuses a cookie request without an Origin, from another origin, or without X-Tessera-CSRF: 1", async () => {
    const token = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    assertError(await post("/auth/refresh", token, { [CSRF_HEADER]: "1" }), 403, "csrf_check_failed");
    assertError(
      await post("/auth/refresh", token, { origin: "http://127.0.0.1:9999", [CSRF_HEADER]: "1" }),
      403,
      "csrf_check_failed",
    );
    assertError(await post("/auth/refresh", token, { origin: "null", [CSRF_HEADER]: "1" }), 403, "csrf_check_failed");
    assertError(await post("/auth/refresh", token, { origin: ORIGIN }), 403, "csrf_check_failed");
    assertError(await post("/auth/refresh", token, { origin: ORIGIN, [CSRF_HEADER]: "0" }), 403, "csrf_check_failed");
    assertError(await post("/auth/logout", token, { origin: "http://evil.test" }), 403, "csrf_check_failed");
    // None of them touched the session.
    assert.equal((await post("/auth/refresh", token, asBrowser)).statusCode, 200);
  });

  it("refuses a browser login from another origin (login CSRF)", async () => {
    const response = await h.app.inject({
      method: "POST",
      url: "/auth/login",
      headers: { "content-type": "application/json", origin: "http://127.0.0.1:9999", [CSRF_HEADER]: "1" },
      payload: JSON.stringify({ username: "nobody", password: PASSWORD }),
    });
    assertError(response, 403, "csrf_check_failed");
    assert.deepEqual(setCookies(response), []);
  });

  it("refuses a cross-site form post carrying the cookie", async () => {
    const token = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    const crossSite = await h.app.inject({
      method: "POST",
      url: "/auth/refresh",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        cookie: `${NAME}=${token}`,
        origin: "http://evil.test",
      },
      payload: "refresh_token=x",
    });
    assertError(crossSite, 403, "csrf_check_failed");
    // Even from the allowed origin with the header, a form body is refused: JSON only.
    const form = await h.app.inject({
      method: "POST",
      url: "/auth/refresh",
      headers: { "content-type": "text/plain", cookie: `${NAME}=${token}`, ...asBrowser },
      payload: "{}",
    });
    assert.equal(form.statusCode, 415, form.body);
  });

  it("refuses a body refresh_token that differs from the cookie's, using neither", async () => {
    const a = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    const b = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    const mismatch = await post("/auth/refresh", a, asBrowser, { refresh_token: b });
    assertError(mismatch, 400, "invalid_request");
    assert.deepEqual(setCookies(mismatch), []);
    const logout = await post("/auth/logout", a, asBrowser, { refresh_token: b });
    assertError(logout, 400, "invalid_request");
    // Both sessions are intact, and the same token in both places is accepted.
    assert.equal((await post("/auth/refresh", b, asBrowser)).statusCode, 200);
    assert.equal((await post("/auth/refresh", a, asBrowser, { refresh_token: a })).statusCode, 200);
  });

  it("still serves clients without the cookie: a body refresh_token is rotated and answered in the body", async () => {
    const token = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    const response = await post("/auth/refresh", null, {}, { refresh_token: token });
    assert.equal(response.statusCode, 200, response.body);
    assert.match(response.json().refresh_token, /^tsr_/);
    assert.deepEqual(setCookies(response), [], "no cookie for a client that did not send one");
  });

  it("answers 401 refresh_token_missing when neither the cookie nor the body has a token", async () => {
    assertError(await post("/auth/refresh", null, asBrowser), 401, "invalid_grant");
    const response = await post("/auth/refresh", null, {});
    assertError(response, 401, "invalid_grant");
    assert.match(response.json().error_description, /No refresh token/);
  });

  it("logs out by the cookie and clears it; the old cookie is refused afterwards and cleared again", async () => {
    const token = cookieAttributes(await browserLogin(h.app, ORIGIN), NAME).value;
    const logout = await post("/auth/logout", token, asBrowser);
    assert.equal(logout.statusCode, 204, logout.body);
    const cleared = cookieAttributes(logout, NAME);
    assert.equal(cleared.value, "");
    assert.equal(cleared.attributes.get("path"), "/auth");
    assert.ok(cleared.attributes.get("max-age") === "0" || /1970/.test(cleared.attributes.get("expires") ?? ""));
    const refused = await post("/auth/refresh", token, asBrowser);
    assertError(refused, 401, "invalid_grant");
    assert.equal(cookieAttributes(refused, NAME).value, "", "a refused cookie is cleared");
    // Logging out without any token is harmless.
    assert.equal((await post("/auth/logout", null, asBrowser)).statusCode, 204);
  });

  it("clears the cookie on logout-all", async () => {
    const login = await browserLogin(h.app, ORIGIN);
    const token = cookieAttributes(login, NAME).value;
    const response = await h.app.inject({
      method: "POST",
      url: "/auth/logout-all",
      headers: { authorization: `Bearer ${login.json().access_token}`, cookie: `${NAME}=${token}`, ...asBrowser },
    });
    assert.equal(response.statusCode, 204, response.body);
    assert.equal(cookieAttributes(response, NAME).value, "");
    assertError(await post("/auth/refresh", token, asBrowser), 401, "invalid_grant");
  });

  it("logout-others keeps this browser's cookie and session, and wants the CSRF header", async () => {
    const login = await browserLogin(h.app, ORIGIN);
    const token = cookieAttributes(login, NAME).value;
    const username = `browser${counter}`;
    const elsewhere = await h.app.inject({
      method: "POST",
      url: "/auth/login",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ username, password: PASSWORD }),
    });
    assert.equal(elsewhere.statusCode, 200, elsewhere.body);
    const headers = { authorization: `Bearer ${login.json().access_token}`, cookie: `${NAME}=${token}` };
    const { [CSRF_HEADER]: _, ...withoutCsrf } = asBrowser;
    const forged = await h.app.inject({
      method: "POST",
      url: "/auth/logout-others",
      headers: { ...headers, ...withoutCsrf },
    });
    assertError(forged, 403, "csrf_check_failed");
    const response = await h.app.inject({
      method: "POST",
      url: "/auth/logout-others",
      headers: { ...headers, ...asBrowser },
    });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().revoked.length, 1);
    assert.deepEqual(setCookies(response), [], "the cookie stays");
    assert.equal((await post("/auth/refresh", token, asBrowser)).statusCode, 200);
  });

  it("answers no CORS preflight when only the issuer's origin is allowed", async () => {
    const preflight = await h.app.inject({
      method: "OPTIONS",
      url: "/auth/refresh",
      headers: { origin: ORIGIN, "access-control-request-method": "POST" },
    });
    assert.equal(preflight.headers["access-control-allow-origin"], undefined);
    assert.notEqual(preflight.statusCode, 204);
  });
});

describe("cookie mode with an https issuer", () => {
  const ISSUER = "https://auth.example.com";
  let h: InjectedServer;
  before(async () => {
    h = await harness({ issuer: ISSUER });
  });
  after(() => h.close());

  it("names the cookie __Host-tessera_refresh with Path=/, Secure and no Domain", async () => {
    const login = await browserLogin(h.app, ISSUER);
    const { value, attributes } = cookieAttributes(login, "__Host-tessera_refresh");
    assert.match(value, /^tsr_/);
    assert.equal(attributes.get("path"), "/");
    assert.ok(attributes.has("secure"));
    assert.ok(attributes.has("httponly"));
    assert.equal(attributes.get("samesite"), "Strict");
    assert.equal(attributes.has("domain"), false);
    const refreshed = await h.app.inject({
      method: "POST",
      url: "/auth/refresh",
      headers: {
        "content-type": "application/json",
        cookie: `__Host-tessera_refresh=${value}`,
        origin: ISSUER,
        [CSRF_HEADER]: "1",
      },
      payload: "{}",
    });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
  });

  it("describes the cookie in the OpenAPI document", async () => {
    interface Operation {
      security: Record<string, unknown>[];
      parameters: { in: string; name: string }[];
      responses: Record<string, { content: Record<string, { schema: { required: string[] } }> }>;
    }
    const document = (await h.app.inject({ method: "GET", url: "/openapi.json" })).json<{
      components: { securitySchemes: Record<string, { type: string; in: string; name: string }> };
      paths: Record<string, { post: Operation }>;
    }>();
    const scheme = document.components.securitySchemes.refreshTokenCookie;
    assert.deepEqual(
      { type: scheme?.type, in: scheme?.in, name: scheme?.name },
      { type: "apiKey", in: "cookie", name: "__Host-tessera_refresh" },
    );
    const refresh = document.paths["/auth/refresh"]!.post;
    assert.ok(refresh.security.some((entry) => "refreshTokenCookie" in entry));
    assert.ok(refresh.parameters.some((parameter) => parameter.in === "header" && parameter.name === CSRF_HEADER));
    const login = document.paths["/auth/login"]!.post;
    assert.equal(login.responses["200"]!.content["application/json"]!.schema.required.includes("refresh_token"), false);
  });
});

describe("cookie mode with allowed origins other than the issuer's", () => {
  const ISSUER = "https://auth.example.com";
  const APP = "https://app.example.com";
  let h: InjectedServer;
  before(async () => {
    h = await harness({ issuer: ISSUER, cookieOrigins: `${APP},${ISSUER}` });
  });
  after(() => h.close());

  it("answers their CORS preflights with the exact origin and credentials, for /auth routes only", async () => {
    const preflight = await h.app.inject({
      method: "OPTIONS",
      url: "/auth/refresh",
      headers: {
        origin: APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-tessera-csrf",
      },
    });
    assert.equal(preflight.statusCode, 204, preflight.body);
    assert.equal(preflight.headers["access-control-allow-origin"], APP);
    assert.equal(preflight.headers["access-control-allow-credentials"], "true");
    assert.match(String(preflight.headers["access-control-allow-headers"]), /X-Tessera-CSRF/i);
    assert.match(String(preflight.headers.vary), /Origin/);
    const other = await h.app.inject({
      method: "OPTIONS",
      url: "/auth/refresh",
      headers: { origin: "https://evil.example.com", "access-control-request-method": "POST" },
    });
    assertError(other, 403, "csrf_check_failed");
    assert.equal(other.headers["access-control-allow-origin"], undefined);
    const oauth = await h.app.inject({
      method: "OPTIONS",
      url: "/oauth/token",
      headers: { origin: APP, "access-control-request-method": "POST" },
    });
    assert.equal(oauth.headers["access-control-allow-origin"], undefined, "not for /oauth");
  });

  it("lets the allowed origin log in and refresh with credentials, echoing it exactly, never *", async () => {
    const login = await browserLogin(h.app, APP);
    assert.equal(login.headers["access-control-allow-origin"], APP);
    assert.equal(login.headers["access-control-allow-credentials"], "true");
    const token = cookieAttributes(login, "__Host-tessera_refresh").value;
    const refreshed = await h.app.inject({
      method: "POST",
      url: "/auth/refresh",
      headers: {
        "content-type": "application/json",
        cookie: `__Host-tessera_refresh=${token}`,
        origin: APP,
        [CSRF_HEADER]: "1",
      },
      payload: "{}",
    });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.equal(refreshed.headers["access-control-allow-origin"], APP);
    const evil = await h.app.inject({
      method: "POST",
      url: "/auth/refresh",
      headers: {
        "content-type": "application/json",
        cookie: `__Host-tessera_refresh=${token}`,
        origin: "https://evil.example.com",
        [CSRF_HEADER]: "1",
      },
      payload: "{}",
    });
    assertError(evil, 403, "csrf_check_failed");
    assert.notEqual(evil.headers["access-control-allow-origin"], "*");
    assert.equal(evil.headers["access-control-allow-origin"], undefined);
  });
});

describe("cookie mode's logs", () => {
  it("never carry the refresh token, its cookie or Set-Cookie, even at trace level", async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const h = await harness({ issuer: "http://127.0.0.1:3000", logger: { level: "trace", stream } });
    try {
      const login = await browserLogin(h.app, "http://127.0.0.1:3000");
      const token = cookieAttributes(login, "tessera_refresh").value;
      const refreshed = await h.app.inject({
        method: "POST",
        url: "/auth/refresh",
        headers: {
          "content-type": "application/json",
          cookie: `tessera_refresh=${token}`,
          origin: "http://127.0.0.1:3000",
          [CSRF_HEADER]: "1",
        },
        payload: "{}",
      });
      const next = cookieAttributes(refreshed, "tessera_refresh").value;
      await h.app.inject({
        method: "POST",
        url: "/auth/refresh",
        headers: { "content-type": "application/json", cookie: `tessera_refresh=${token}`, origin: "http://evil.test" },
        payload: "{}",
      });
      const log = lines.join("");
      assert.ok(lines.length > 4, "the requests were logged");
      for (const secret of [token, next, "tessera_refresh", "set-cookie", PASSWORD]) {
        assert.equal(log.toLowerCase().includes(secret.toLowerCase()), false, `logs carry ${secret.slice(0, 8)}…`);
      }
    } finally {
      await h.close();
    }
  });
});

describe("cookie-mode settings", () => {
  it("are off by default, and refuse origins that are not exact origins", () => {
    const base = { secret: SECRET };
    assert.equal(resolveConfig(base).cookieMode, false);
    assert.equal(resolveConfig({ ...base, cookieMode: true }).cookieOrigins, null);
    assert.deepEqual(
      resolveConfig({ ...base, cookieMode: true, cookieOrigins: "https://a.test, https://b.test:8443/" }).cookieOrigins,
      ["https://a.test", "https://b.test:8443"],
    );
    for (const bad of ["*", "https://a.test/app", "a.test", "ftp://a.test", "https://*.a.test", ""]) {
      assert.throws(() => resolveConfig({ ...base, cookieMode: true, cookieOrigins: bad }), /cookieOrigins/, bad);
    }
    assert.throws(() => resolveConfig({ ...base, cookieOrigins: "https://a.test" }), /cookieMode/);
  });

  it("leave the token response and cookies alone when cookie mode is off", async () => {
    const h = await harness({ issuer: "https://issuer.test", cookieMode: false });
    try {
      const login = await browserLogin(h.app, "https://issuer.test");
      assert.match(login.json().refresh_token, /^tsr_/);
      assert.deepEqual(setCookies(login), []);
    } finally {
      await h.close();
    }
  });
});

describe("cookie mode in `tessera serve`'s own logs", () => {
  it("never writes the refresh token, the Cookie or the Set-Cookie header, at trace level", async () => {
    const dir = temporaryDirectory();
    const origin = "http://127.0.0.1:3000";
    const child = spawn(
      process.execPath,
      [resolve("dist/cli/main.js"), "serve", "--port", "0", "--database", `sqlite:${dir.path}/t.db`],
      {
        env: {
          PATH: process.env.PATH ?? "",
          TESSERA_SECRET: SECRET,
          TESSERA_RATE_LIMIT: "0",
          TESSERA_ISSUER: origin,
          TESSERA_COOKIE_MODE: "on",
          TESSERA_LOG_LEVEL: "trace",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const exited = once(child, "exit");
    try {
      const deadline = Date.now() + 30_000;
      while (!/listening at http:\/\/127\.0\.0\.1:\d+/.test(output) && Date.now() < deadline) await sleep(50);
      const port = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      assert.ok(port, `serve did not listen: ${output}`);
      const url = `http://127.0.0.1:${port}`;
      const headers = { "content-type": "application/json", origin, [CSRF_HEADER]: "1" };
      const credentials = JSON.stringify({ username: "logged", password: PASSWORD });
      await fetch(`${url}/auth/register`, { method: "POST", headers, body: credentials });
      const login = await fetch(`${url}/auth/login`, { method: "POST", headers, body: credentials });
      assert.equal(login.status, 200);
      const cookie = login.headers.getSetCookie()[0]?.split(";")[0] ?? "";
      const token = cookie.slice(cookie.indexOf("=") + 1);
      assert.match(token, /^tsr_/);
      const refreshed = await fetch(`${url}/auth/refresh`, {
        method: "POST",
        headers: { ...headers, cookie },
        body: "{}",
      });
      assert.equal(refreshed.status, 200);
      const next = refreshed.headers.getSetCookie()[0]?.split(";")[0] ?? "";
      const forged = await fetch(`${url}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: "http://evil.test", cookie: next },
        body: "{}",
      });
      assert.equal(forged.status, 403);
      await sleep(200);
      assert.match(output, /"reqId"/, "requests were logged");
      for (const secret of [token, next.slice(next.indexOf("=") + 1), "tessera_refresh", "set-cookie", PASSWORD]) {
        assert.equal(output.toLowerCase().includes(secret.toLowerCase()), false, `logs carry ${secret.slice(0, 8)}…`);
      }
    } finally {
      child.kill("SIGTERM");
      await exited;
      dir.remove();
    }
  });
});

describe("cookie mode in the Fastify plugin under a prefix", () => {
  let app: FastifyInstance;
  let dir: ReturnType<typeof temporaryDirectory>;
  const ISSUER = "http://127.0.0.1:3000";
  const APP = "http://127.0.0.1:5173";

  before(async () => {
    dir = temporaryDirectory();
    app = Fastify();
    app.post("/echo", (request, reply) => reply.send({ got: request.body }));
    await app.register(tessera, {
      prefix: "/identity",
      databaseUrl: `sqlite:${dir.path}/plugin.db`,
      secret: SECRET,
      issuer: ISSUER,
      rateLimitPerMinute: 0,
      cookieMode: true,
      cookieOrigins: [APP],
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    dir.remove();
  });

  it("scopes the cookie to the prefixed /auth routes and checks and answers CORS there only", async () => {
    const headers = { "content-type": "application/json", origin: APP, [CSRF_HEADER]: "1" };
    const body = JSON.stringify({ username: "hosted", password: PASSWORD });
    await app.inject({ method: "POST", url: "/identity/auth/register", headers, payload: body });
    const login = await app.inject({ method: "POST", url: "/identity/auth/login", headers, payload: body });
    assert.equal(login.statusCode, 200, login.body);
    const { value, attributes } = cookieAttributes(login, "tessera_refresh");
    assert.equal(attributes.get("path"), "/identity/auth");
    const refresh = (extra: Record<string, string>) =>
      app.inject({
        method: "POST",
        url: "/identity/auth/refresh",
        headers: { "content-type": "application/json", cookie: `tessera_refresh=${value}`, ...extra },
        payload: "{}",
      });
    assertError(await refresh({ origin: ISSUER, [CSRF_HEADER]: "1" }), 403, "csrf_check_failed");
    const preflight = await app.inject({
      method: "OPTIONS",
      url: "/identity/auth/refresh",
      headers: { origin: APP, "access-control-request-method": "POST" },
    });
    assert.equal(preflight.statusCode, 204);
    assert.equal(preflight.headers["access-control-allow-origin"], APP);
    assert.equal((await refresh({ origin: APP, [CSRF_HEADER]: "1" })).statusCode, 200);
    const host = await app.inject({
      method: "POST",
      url: "/echo",
      headers: { "content-type": "application/json", origin: "http://evil.test", cookie: `tessera_refresh=${value}` },
      payload: "{}",
    });
    assert.equal(host.statusCode, 200, "the host's own routes are not the plugin's business");
  });
});
