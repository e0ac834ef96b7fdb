import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CSRF_HEADER, createAuthClient, memoryStorage, type AuthClient } from "../../src/client/index.js";
import { CSRF_HEADER as SERVER_CSRF_HEADER } from "../../src/http/cookie-mode.js";
import { registerAndLogin, startServer, type RunningServer } from "../support/server.js";
import { shiftedClock } from "./recording-fetch.js";

const PASSWORD = "correct horse battery staple";
const ORIGIN = "https://issuer.test";

/** One request as it left the client, and what came back. */
interface Exchange {
  readonly path: string;
  readonly credentials: RequestCredentials | undefined;
  readonly csrf: string | null;
  readonly sentCookie: boolean;
  readonly requestBody: string;
  readonly status: number;
  readonly responseBody: string;
}

/**
 * A `fetch` that behaves as a browser page on {@link ORIGIN} would towards Tessera: it keeps the
 * cookies the server sets (honouring Max-Age=0), sends them only with `credentials: "include"`,
 * and adds the page's Origin. Shared by clients to stand for tabs or reloads of one browser.
 */
function browserJar() {
  const cookies = new Map<string, string>();
  const exchanges: Exchange[] = [];
  const fetchImpl = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const headers = new Headers(request.headers);
    headers.set("origin", ORIGIN);
    const sendCookies = init?.credentials === "include" && cookies.size > 0;
    if (sendCookies) headers.set("cookie", [...cookies].map(([name, value]) => `${name}=${value}`).join("; "));
    const requestBody = request.method === "GET" ? "" : await request.text();
    const response = await fetch(request.url, {
      method: request.method,
      headers,
      body: requestBody === "" ? undefined : requestBody,
    });
    if (init?.credentials === "include") {
      for (const line of response.headers.getSetCookie()) {
        const [pair = ""] = line.split(";");
        const name = pair.slice(0, pair.indexOf("="));
        const value = pair.slice(pair.indexOf("=") + 1);
        if (value === "" || /max-age=0\b/i.test(line)) cookies.delete(name);
        else cookies.set(name, value);
      }
    }
    const responseBody = await response.text();
    exchanges.push({
      path: new URL(request.url).pathname,
      credentials: init?.credentials,
      csrf: headers.get("x-tessera-csrf"),
      sentCookie: sendCookies,
      requestBody,
      status: response.status,
      responseBody,
    });
    return new Response(response.status === 204 ? null : responseBody, {
      status: response.status,
      headers: response.headers,
    });
  };
  return {
    fetch: fetchImpl,
    cookies,
    exchanges,
    count: (path: string) => exchanges.filter((exchange) => exchange.path === path).length,
  };
}

describe("createAuthClient({ cookieMode: true })", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ accessTokenTtl: "60s", cookieMode: true });
  });
  after(() => server.close());

  function client(jar: ReturnType<typeof browserJar>, clock = shiftedClock()): AuthClient {
    return createAuthClient({ baseUrl: server.url, cookieMode: true, fetch: jar.fetch, now: clock.now });
  }

  it("sends the very header the server checks (the client cannot import the server's constant)", () => {
    assert.equal(CSRF_HEADER.toLowerCase(), SERVER_CSRF_HEADER);
  });

  it("refuses a storage: the access token stays in memory", () => {
    assert.throws(
      () => createAuthClient({ baseUrl: server.url, cookieMode: true, storage: memoryStorage() }),
      /storage/,
    );
    assert.throws(
      () => createAuthClient({ baseUrl: server.url, cookieMode: "yes" as unknown as boolean }),
      /cookieMode/,
    );
  });

  it("logs in with credentials and X-Tessera-CSRF, and never sees a refresh token", async () => {
    await registerAndLogin(server.url, "carol");
    const jar = browserJar();
    const auth = client(jar);
    await auth.login("carol", PASSWORD);
    const login = jar.exchanges.at(-1)!;
    assert.equal(login.path, "/auth/login");
    assert.equal(login.credentials, "include");
    assert.equal(login.csrf, "1");
    assert.equal(login.status, 200);
    assert.equal(JSON.parse(login.responseBody).refresh_token, undefined);
    const cookie = jar.cookies.get("__Host-tessera_refresh");
    assert.match(cookie ?? "", /^tsr_/);
    const me = await auth.fetch(`${server.url}/auth/me`);
    assert.equal(me.status, 200);
    assert.equal(((await me.json()) as { username: string }).username, "carol");
    for (const exchange of jar.exchanges)
      assert.ok(!exchange.requestBody.includes("tsr_"), "no refresh token sent in a body");
    // Its own /auth routes get X-Tessera-CSRF through fetch() too, as the server wants from a browser.
    const loggedOutEverywhere = await auth.fetch(`${server.url}/auth/logout-all`, { method: "POST" });
    assert.equal(loggedOutEverywhere.status, 204);
    assert.equal(jar.exchanges.at(-1)?.csrf, "1");
  });

  it("logoutOthers() ends every other session, one opened after this one too, and keeps the cookie", async () => {
    const otherLogin = async (): Promise<string> => {
      const answer = await fetch(`${server.url}/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "olga", password: PASSWORD }),
      });
      assert.equal(answer.status, 200);
      return answer.headers.getSetCookie()[0]!.split(";")[0]!;
    };
    await registerAndLogin(server.url, "olga");
    const before = await otherLogin();
    const jar = browserJar();
    const auth = client(jar);
    await auth.login("olga", PASSWORD);
    const after = await otherLogin();

    const revoked = await auth.logoutOthers();
    assert.equal(revoked.length, 3);
    assert.equal(new Set(revoked).size, 3);
    const call = jar.exchanges.at(-1)!;
    assert.equal(call.path, "/auth/logout-others");
    assert.equal(call.csrf, "1");
    assert.equal(call.status, 200);
    assert.match(jar.cookies.get("__Host-tessera_refresh") ?? "", /^tsr_/, "this browser's cookie stays");

    const refresh = (cookie?: string) =>
      fetch(`${server.url}/auth/refresh`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          origin: ORIGIN,
          "x-tessera-csrf": "1",
          ...(cookie === undefined ? {} : { cookie }),
        },
        body: "{}",
      });
    for (const cookie of [before, after]) assert.equal((await refresh(cookie)).status, 401);
    assert.equal((await auth.fetch(`${server.url}/auth/me`)).status, 200);
    const own = await jar.fetch(`${server.url}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tessera-csrf": "1" },
      body: "{}",
      credentials: "include",
    });
    assert.equal(own.status, 200, "this session still refreshes");
    assert.deepEqual(await auth.logoutOthers(), []);
  });

  it("refreshes through the cookie when the access token is due, once for 50 concurrent calls", async () => {
    await registerAndLogin(server.url, "dave");
    const jar = browserJar();
    const clock = shiftedClock();
    const auth = client(jar, clock);
    await auth.login("dave", PASSWORD);
    const before = jar.cookies.get("__Host-tessera_refresh");
    const first = await auth.getAccessToken();
    clock.advance(59_000);
    const statuses = await Promise.all(
      Array.from({ length: 50 }, async () => (await auth.fetch(`${server.url}/auth/me`)).status),
    );
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(jar.count("/auth/refresh"), 1);
    const refresh = jar.exchanges.find((exchange) => exchange.path === "/auth/refresh")!;
    assert.ok(refresh.sentCookie);
    assert.equal(refresh.requestBody, "{}");
    assert.notEqual(jar.cookies.get("__Host-tessera_refresh"), before, "the cookie was rotated");
    assert.notEqual(await auth.getAccessToken(), first);
  });

  it("picks the session up from the cookie after a reload, and finds none without it", async () => {
    await registerAndLogin(server.url, "erin");
    const jar = browserJar();
    await client(jar).login("erin", PASSWORD);
    const reloaded = client(jar);
    const [a, b] = await Promise.all([reloaded.getAccessToken(), reloaded.getAccessToken()]);
    assert.ok(a !== null && a === b, "one access token from the cookie");
    assert.equal(jar.count("/auth/refresh"), 1);
    const me = await reloaded.fetch(`${server.url}/auth/me`);
    assert.equal(me.status, 200);

    const stranger = browserJar();
    const anonymous = client(stranger);
    assert.equal(await anonymous.getAccessToken(), null);
    assert.equal(await anonymous.getAccessToken(), null);
    await assert.rejects(anonymous.fetch(`${server.url}/auth/me`), { code: "not_authenticated" });
    assert.equal(stranger.count("/auth/refresh"), 1, "asked the server once");
  });

  it("logs out through the cookie, which the server clears, even after a reload", async () => {
    await registerAndLogin(server.url, "frank");
    const jar = browserJar();
    await client(jar).login("frank", PASSWORD);
    const reloaded = client(jar);
    const events: string[] = [];
    reloaded.on("logged_out", (event) => events.push(event.type));
    await reloaded.logout();
    assert.equal(jar.exchanges.at(-1)?.path, "/auth/logout");
    assert.equal(jar.exchanges.at(-1)?.status, 204);
    assert.equal(jar.cookies.size, 0, "the cookie was cleared");
    assert.deepEqual(events, ["logged_out"]);
    assert.equal(await client(jar).getAccessToken(), null);
  });

  it("reports session_expired when the cookie's session was revoked", async () => {
    await registerAndLogin(server.url, "gina");
    const jar = browserJar();
    const clock = shiftedClock();
    const auth = client(jar, clock);
    await auth.login("gina", PASSWORD);
    const access = await auth.getAccessToken();
    const revoked = await fetch(`${server.url}/auth/logout-all`, {
      method: "POST",
      headers: { authorization: `Bearer ${access}` },
    });
    assert.equal(revoked.status, 204);
    clock.advance(59_000);
    await assert.rejects(auth.fetch(`${server.url}/auth/me`), { code: "session_expired" });
    assert.equal(await auth.getAccessToken(), null);
  });
});
