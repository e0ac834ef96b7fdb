import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  AuthClientError,
  createAuthClient,
  isAuthClientError,
  memoryStorage,
  type AuthClientEventType,
  type AuthClient,
  type TokenStorage,
} from "../../src/client/index.js";
import { registerAndLogin, startServer, type RunningServer } from "../support/server.js";
import { startSmtpServer, type TestSmtpServer } from "../support/smtp.js";
import { recordingFetch, shiftedClock, sleep, type Intercept } from "./recording-fetch.js";

const PASSWORD = "correct horse battery staple";

function recordEvents(client: AuthClient) {
  const seen: { type: AuthClientEventType; origin: string }[] = [];
  for (const type of ["logged_in", "tokens_refreshed", "logged_out", "session_expired"] as const) {
    client.on(type, (event) => seen.push({ type, origin: event.origin }));
  }
  return { seen, count: (type: AuthClientEventType) => seen.filter((event) => event.type === type).length };
}

/** A client over `server` with its own storage, a recording fetch and a shiftable clock. */
async function loggedInClient(
  server: RunningServer,
  username: string,
  options: { intercept?: Intercept; refreshMarginSeconds?: number } = {},
) {
  await registerAndLogin(server.url, username);
  const storage = memoryStorage();
  const network = recordingFetch(options.intercept);
  const clock = shiftedClock();
  const client = createAuthClient({
    baseUrl: server.url,
    storage,
    fetch: network.fetch,
    now: clock.now,
    refreshMarginSeconds: options.refreshMarginSeconds,
  });
  const events = recordEvents(client);
  await client.login(username, PASSWORD);
  return { client, storage, network, clock, events };
}

async function stored(storage: TokenStorage) {
  const tokens = await storage.get();
  assert.ok(tokens, "expected tokens in storage");
  return tokens;
}

describe("createAuthClient()", () => {
  describe("against a server with 60 s access tokens", () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({ accessTokenTtl: "60s" });
    });
    after(() => server.close());

    it("logs in, stores the tokens and calls a protected route with Authorization: Bearer", async () => {
      const { client, storage, network, events } = await loggedInClient(server, "alice");
      const response = await client.fetch(`${server.url}/auth/me`);
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { username: string }).username, "alice");
      const tokens = await stored(storage);
      assert.equal(network.requests.at(-1)?.authorization, `Bearer ${tokens.accessToken}`);
      assert.equal(events.count("logged_in"), 1);
    });

    it("stores absolute expiry times computed from expires_in when the response arrives", async () => {
      await registerAndLogin(server.url, "bob");
      const frozen = new Date("2030-01-01T00:00:00Z");
      const storage = memoryStorage();
      const client = createAuthClient({ baseUrl: server.url, storage, now: () => frozen });
      await client.login("bob", PASSWORD);
      const tokens = await stored(storage);
      assert.equal(tokens.receivedAt, frozen.getTime());
      assert.equal(tokens.accessTokenExpiresAt, frozen.getTime() + 60_000);
      assert.ok(tokens.refreshTokenExpiresAt > tokens.accessTokenExpiresAt);
    });

    it("rejects a wrong password with invalid_credentials and stores nothing", async () => {
      await registerAndLogin(server.url, "carol");
      const storage = memoryStorage();
      const client = createAuthClient({ baseUrl: server.url, storage });
      await assert.rejects(client.login("carol", "wrong password entirely"), (error) =>
        isAuthClientError(error, "invalid_credentials"),
      );
      assert.equal(await storage.get(), null);
    });

    it("throws not_authenticated from fetch() before login, sending nothing", async () => {
      const network = recordingFetch();
      const client = createAuthClient({ baseUrl: server.url, storage: memoryStorage(), fetch: network.fetch });
      await assert.rejects(client.fetch(`${server.url}/auth/me`), (error) =>
        isAuthClientError(error, "not_authenticated"),
      );
      assert.equal(await client.getAccessToken(), null);
      assert.equal(network.requests.length, 0);
    });

    it("changePassword() changes the password, keeps this session and ends the other ones", async () => {
      const { client, network } = await loggedInClient(server, "pat");
      const elsewhere = await registerAndLogin(server.url, "pat");
      await client.changePassword(PASSWORD, "a brand new passphrase");
      const request = network.requests.find((item) => item.path === "/auth/password");
      assert.equal(request?.method, "POST");
      assert.ok(request?.authorization?.startsWith("Bearer "));
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
      const other = await fetch(`${server.url}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: elsewhere.refresh_token }),
      });
      assert.equal(other.status, 401);
      await assert.rejects(client.changePassword(PASSWORD, "yet another passphrase"), (error) =>
        isAuthClientError(error, "invalid_credentials"),
      );
      await assert.rejects(
        client.changePassword("a brand new passphrase", "short"),
        (error) => isAuthClientError(error, "unexpected_response") && error.status === 400,
      );
      const fresh = createAuthClient({ baseUrl: server.url, storage: memoryStorage() });
      await assert.rejects(fresh.changePassword(PASSWORD, "a brand new passphrase"), (error) =>
        isAuthClientError(error, "not_authenticated"),
      );
    });

    it("does not refresh while the access token is outside the refresh margin", async () => {
      const { client, network, clock } = await loggedInClient(server, "dave");
      clock.advance(53_000); // 7 s left; the default margin for a 60 s token is 6 s
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
      assert.equal(network.count("POST", "/auth/refresh"), 0);
    });

    it("refreshes before expiry once inside the default margin (10 % of a 60 s lifetime)", async () => {
      const { client, storage, network, clock, events } = await loggedInClient(server, "erin");
      const before = await stored(storage);
      clock.advance(55_000); // 5 s left
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
      assert.equal(network.count("POST", "/auth/refresh"), 1);
      const after = await stored(storage);
      assert.notEqual(after.accessToken, before.accessToken);
      assert.notEqual(after.refreshToken, before.refreshToken);
      assert.equal(network.requests.at(-1)?.authorization, `Bearer ${after.accessToken}`);
      assert.deepEqual(events.seen.at(-1), { type: "tokens_refreshed", origin: "local" });
    });

    it("honours an explicit refreshMarginSeconds", async () => {
      const { client, network, clock } = await loggedInClient(server, "frank", { refreshMarginSeconds: 20 });
      clock.advance(39_000);
      await client.getAccessToken();
      assert.equal(network.count("POST", "/auth/refresh"), 0);
      clock.advance(2_000);
      await client.getAccessToken();
      assert.equal(network.count("POST", "/auth/refresh"), 1);
    });

    it("makes one refresh for 100 concurrent getAccessToken() calls and hands all of them the same token", async () => {
      const { client, network, clock, events } = await loggedInClient(server, "grace");
      clock.advance(59_000);
      const tokens = await Promise.all(Array.from({ length: 100 }, () => client.getAccessToken()));
      assert.equal(network.count("POST", "/auth/refresh"), 1);
      assert.equal(new Set(tokens).size, 1);
      assert.equal(events.count("tokens_refreshed"), 1);
    });

    it('retries once after a 401 with error="invalid_token" and returns the retry\'s answer', async () => {
      let spoiled = 0;
      const { client, network } = await loggedInClient(server, "heidi", {
        // The first /auth/me carries a token the server cannot verify, as after a key rotation.
        intercept: (request) => {
          if (new URL(request.url).pathname !== "/auth/me" || spoiled++ > 0) return request;
          const headers = new Headers(request.headers);
          headers.set("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl");
          return new Request(request, { headers });
        },
      });
      const response = await client.fetch(`${server.url}/auth/me`);
      assert.equal(response.status, 200);
      assert.equal(network.count("GET", "/auth/me"), 2);
      assert.equal(network.count("POST", "/auth/refresh"), 1);
    });

    it("gives up after one retry when the renewed token is refused too", async () => {
      const { client, network } = await loggedInClient(server, "ivan", {
        intercept: (request) => {
          if (new URL(request.url).pathname !== "/auth/me") return request;
          const headers = new Headers(request.headers);
          headers.set("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2lnbmF0dXJl");
          return new Request(request, { headers });
        },
      });
      const response = await client.fetch(`${server.url}/auth/me`);
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
      assert.equal(network.count("GET", "/auth/me"), 2);
      assert.equal(network.count("POST", "/auth/refresh"), 1);
    });

    it("resends the request body on the retry", async () => {
      const bodies: string[] = [];
      const { client } = await loggedInClient(server, "judy", {
        intercept: async (request) => {
          if (new URL(request.url).pathname !== "/api/echo") return request;
          bodies.push(await request.text());
          if (bodies.length === 1)
            return new Response(null, {
              status: 401,
              headers: { "www-authenticate": 'Bearer realm="api", error="invalid_token"' },
            });
          return new Response("ok", { status: 200 });
        },
      });
      const response = await client.fetch(`${server.url}/api/echo`, { method: "POST", body: "payload" });
      assert.equal(response.status, 200);
      assert.deepEqual(bodies, ["payload", "payload"]);
    });

    it("does not retry a 401 whose challenge is not invalid_token, nor a 403", async () => {
      const { client, network } = await loggedInClient(server, "ken", {
        intercept: (request) => {
          const path = new URL(request.url).pathname;
          if (path === "/api/no-challenge")
            return new Response(null, { status: 401, headers: { "www-authenticate": 'Bearer realm="api"' } });
          if (path === "/api/forbidden")
            return new Response(null, {
              status: 403,
              headers: { "www-authenticate": 'Bearer error="insufficient_scope"' },
            });
          return request;
        },
      });
      assert.equal((await client.fetch(`${server.url}/api/no-challenge`)).status, 401);
      assert.equal((await client.fetch(`${server.url}/api/forbidden`)).status, 403);
      assert.equal(network.count("POST", "/auth/refresh"), 0);
    });

    it("treats a JSON body error of invalid_token as curable when CORS hides WWW-Authenticate", async () => {
      let calls = 0;
      const { client, network } = await loggedInClient(server, "liam", {
        intercept: (request) => {
          if (new URL(request.url).pathname !== "/api/cors") return request;
          calls += 1;
          if (calls === 1) return Response.json({ error: "invalid_token" }, { status: 401 });
          return new Response("ok");
        },
      });
      assert.equal((await client.fetch(`${server.url}/api/cors`)).status, 200);
      assert.equal(network.count("POST", "/auth/refresh"), 1);
    });

    it("emits session_expired once, clears storage and throws session_expired after the session is revoked", async () => {
      const { client, storage, network, events } = await loggedInClient(server, "mallory");
      assert.equal((await client.fetch(`${server.url}/auth/logout-all`, { method: "POST" })).status, 204);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => client.fetch(`${server.url}/auth/me`)));
      // Calls whose 401 arrives after the refused refresh find no session left to refresh.
      for (const result of results) {
        assert.equal(result.status, "rejected");
        assert.ok(
          isAuthClientError(result.reason, "session_expired") || isAuthClientError(result.reason, "not_authenticated"),
        );
      }
      assert.ok(
        results.some((result) => result.status === "rejected" && isAuthClientError(result.reason, "session_expired")),
      );
      assert.equal(network.count("POST", "/auth/refresh"), 1);
      assert.equal(events.count("session_expired"), 1);
      assert.equal(await storage.get(), null);
      const sent = network.requests.length;
      await assert.rejects(client.fetch(`${server.url}/auth/me`), (error) =>
        isAuthClientError(error, "not_authenticated"),
      );
      assert.equal(network.requests.length, sent);
    });

    it("keeps using a still-valid access token when a due refresh fails for a passing reason", async () => {
      const { client, storage, clock } = await loggedInClient(server, "nina", {
        intercept: (request) => {
          if (new URL(request.url).pathname === "/auth/refresh") throw new TypeError("fetch failed");
          return request;
        },
      });
      const tokens = await stored(storage);
      clock.advance(57_000);
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
      assert.equal(await client.getAccessToken(), tokens.accessToken);
      clock.advance(5_000); // now expired: the failure must surface
      await assert.rejects(client.getAccessToken(), TypeError);
      assert.deepEqual(await storage.get(), tokens);
    });

    it("logout() sends the refresh token to the server, clears storage and emits logged_out", async () => {
      const { client, storage, network, events } = await loggedInClient(server, "oscar");
      const { refreshToken } = await stored(storage);
      await client.logout();
      assert.equal(network.count("POST", "/auth/logout"), 1);
      assert.equal(await storage.get(), null);
      assert.equal(events.count("logged_out"), 1);
      const replay = await fetch(`${server.url}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      assert.equal(replay.status, 401);
      await client.logout(); // nothing left to end
      assert.equal(network.count("POST", "/auth/logout"), 1);
      assert.equal(events.count("logged_out"), 1);
    });

    it("logout() clears storage even when the server cannot be reached, then reports the failure", async () => {
      const { client, storage, events } = await loggedInClient(server, "peggy", {
        intercept: (request) => {
          if (new URL(request.url).pathname === "/auth/logout") throw new TypeError("fetch failed");
          return request;
        },
      });
      await assert.rejects(client.logout(), TypeError);
      assert.equal(await storage.get(), null);
      assert.equal(events.count("logged_out"), 1);
    });

    it("keeps a session whose refreshed tokens storage failed to keep, and stores them once it recovers", async () => {
      await registerAndLogin(server.url, "ursula");
      const inner = memoryStorage();
      const failing = { set: false, remove: false };
      const storage: TokenStorage = {
        get: () => inner.get(),
        set: (tokens) => (failing.set ? Promise.reject(new Error("quota exceeded")) : inner.set(tokens)),
        remove: () => (failing.remove ? Promise.reject(new Error("storage locked")) : inner.remove()),
      };
      const network = recordingFetch();
      const clock = shiftedClock();
      const client = createAuthClient({ baseUrl: server.url, storage, fetch: network.fetch, now: clock.now });
      const events = recordEvents(client);

      failing.set = true;
      await client.login("ursula", PASSWORD); // kept in memory
      assert.equal(await inner.get(), null);
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);

      clock.advance(55_000);
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
      assert.equal(network.count("POST", "/auth/refresh"), 1);
      failing.set = false;
      const token = await client.getAccessToken(); // written now
      assert.equal((await stored(inner)).accessToken, token);

      clock.advance(60_000);
      assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
      assert.equal(network.count("POST", "/auth/refresh"), 2);
      assert.equal(events.count("session_expired"), 0);

      // A logout whose storage.remove fails still ends the session everywhere, then reports it.
      const { refreshToken } = await stored(inner);
      failing.remove = true;
      await assert.rejects(client.logout(), /storage locked/);
      assert.equal(events.count("logged_out"), 1);
      assert.notEqual(await inner.get(), null, "storage could not be cleared");
      assert.equal(await client.getAccessToken(), null, "but its ended tokens are never used again");
      await assert.rejects(client.fetch(`${server.url}/auth/me`), (error) =>
        isAuthClientError(error, "not_authenticated"),
      );
      const replay = await fetch(`${server.url}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      assert.equal(replay.status, 401, "the server ended the session");
    });

    it("stops calling a listener once it is unsubscribed", async () => {
      const { client, clock } = await loggedInClient(server, "quinn");
      let calls = 0;
      const unsubscribe = client.on("tokens_refreshed", () => (calls += 1));
      clock.advance(55_000);
      await client.getAccessToken();
      unsubscribe();
      clock.advance(55_000);
      await client.getAccessToken();
      assert.equal(calls, 1);
    });

    it("keeps tokens out of error messages", async () => {
      const { client, storage } = await loggedInClient(server, "rupert");
      const tokens = await stored(storage);
      await fetch(`${server.url}/auth/logout`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refreshToken }),
      });
      const error = await client.fetch(`${server.url}/auth/me`).catch((caught: unknown) => caught);
      assert.ok(error instanceof AuthClientError);
      assert.ok(!error.message.includes(tokens.accessToken) && !error.message.includes(tokens.refreshToken!));
      assert.ok(!JSON.stringify(error).includes(tokens.refreshToken!));
    });
  });

  describe("against a server with 2 s access tokens", () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({ accessTokenTtl: 2 });
    });
    after(() => server.close());

    it("makes exactly one refresh for 100 concurrent fetch calls across an expiry", async () => {
      const { client, storage, network, events } = await loggedInClient(server, "sybil");
      const old = await stored(storage);
      // 20 waves of 5 simultaneous calls, 20 ms apart, around the expiry: early ones go out with
      // the old token (and may meet a 401 as the JWT's whole-second exp passes), later ones
      // find it due, and several of them at once.
      await sleep(Math.max(0, old.accessTokenExpiresAt - Date.now() - 200));
      const responses = await Promise.all(
        Array.from({ length: 100 }, async (_, index) => {
          await sleep(Math.floor(index / 5) * 20);
          return client.fetch(`${server.url}/auth/me`);
        }),
      );
      assert.deepEqual(
        responses.map((response) => response.status),
        Array.from({ length: 100 }, () => 200),
      );
      assert.equal(network.count("POST", "/auth/refresh"), 1);
      assert.equal(events.count("tokens_refreshed"), 1);
      const renewed = await stored(storage);
      const used = new Set(
        network.requests.filter((request) => request.path === "/auth/me").map((request) => request.authorization),
      );
      assert.ok(used.has(`Bearer ${renewed.accessToken}`));
      assert.ok(
        [...used].every(
          (header) => header === `Bearer ${renewed.accessToken}` || header === `Bearer ${old.accessToken}`,
        ),
      );
    });

    it("makes exactly one refresh for 100 simultaneous fetch calls after the token expired", async () => {
      const { client, storage, network } = await loggedInClient(server, "trent");
      const old = await stored(storage);
      await sleep(Math.max(0, old.accessTokenExpiresAt - Date.now() + 50));
      const responses = await Promise.all(Array.from({ length: 100 }, () => client.fetch(`${server.url}/auth/me`)));
      assert.ok(responses.every((response) => response.status === 200));
      assert.equal(network.count("POST", "/auth/refresh"), 1);
      const renewed = await stored(storage);
      const me = network.requests.filter((request) => request.path === "/auth/me");
      assert.equal(me.length, 100);
      assert.ok(me.every((request) => request.authorization === `Bearer ${renewed.accessToken}`));
    });
  });

  describe("options", () => {
    const storage = memoryStorage();
    it("throws TypeError naming the option for a bad baseUrl, storage, margin, fetch or channelName", () => {
      assert.throws(() => createAuthClient({ baseUrl: "not a url", storage }), {
        name: "TypeError",
        message: /baseUrl/,
      });
      assert.throws(() => createAuthClient({ baseUrl: "ftp://example.com", storage }), {
        name: "TypeError",
        message: /baseUrl/,
      });
      assert.throws(() => createAuthClient({ baseUrl: "https://a.test", storage: {} as TokenStorage }), {
        name: "TypeError",
        message: /storage/,
      });
      assert.throws(() => createAuthClient({ baseUrl: "https://a.test", storage, refreshMarginSeconds: -1 }), {
        name: "TypeError",
        message: /refreshMarginSeconds/,
      });
      assert.throws(() => createAuthClient({ baseUrl: "https://a.test", storage, refreshMarginSeconds: Number.NaN }), {
        name: "TypeError",
        message: /refreshMarginSeconds/,
      });
      assert.throws(() => createAuthClient({ baseUrl: "https://a.test", storage, fetch: "x" as never }), {
        name: "TypeError",
        message: /fetch/,
      });
      assert.throws(() => createAuthClient({ baseUrl: "https://a.test", storage, channelName: "" }), {
        name: "TypeError",
        message: /channelName/,
      });
    });

    it("calls the endpoints under a baseUrl with a path prefix", async () => {
      const network = recordingFetch(() => new Response(null, { status: 204 }));
      const client = createAuthClient({
        baseUrl: "https://api.test/identity/",
        storage: memoryStorage(),
        fetch: network.fetch,
      });
      await assert.rejects(client.login("u", "p"), (error) => isAuthClientError(error, "unexpected_response"));
      assert.equal(network.requests[0]?.path, "/identity/auth/login");
    });
  });
});

/** A third party on a real socket that records the headers of what reaches it and answers `status`. */
async function startThirdParty(status = 200) {
  const received: IncomingHttpHeaders[] = [];
  const server: Server = createServer((request, response) => {
    received.push(request.headers);
    const challenge = status === 401 ? { "www-authenticate": 'Bearer error="invalid_token"' } : {};
    response.writeHead(status, { "content-type": "application/json", ...challenge }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("createAuthClient() allowedOrigins", () => {
  let server: RunningServer;
  let thirdParty: Awaited<ReturnType<typeof startThirdParty>>;
  let refusing: Awaited<ReturnType<typeof startThirdParty>>;
  before(async () => {
    server = await startServer({ accessTokenTtl: "60s" });
    thirdParty = await startThirdParty();
    refusing = await startThirdParty(401);
  });
  after(async () => {
    await thirdParty.close();
    await refusing.close();
    await server.close();
  });

  it("sends the token to the baseUrl origin by default and never to another origin", async () => {
    const { client, network } = await loggedInClient(server, "origin-olga");
    assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 200);
    const response = await client.fetch(`${thirdParty.url}/collect`, { headers: { "x-trace": "1" } });
    assert.equal(response.status, 200);
    assert.equal(thirdParty.received.at(-1)?.authorization, undefined);
    assert.equal(thirdParty.received.at(-1)?.["x-trace"], "1");
    assert.equal(network.requests.at(-1)?.authorization, null);
    // Same host, other port: another origin.
    const otherPort = new URL(server.url);
    otherPort.port = new URL(thirdParty.url).port;
    await client.fetch(new Request(new URL("/x", otherPort)));
    assert.equal(thirdParty.received.at(-1)?.authorization, undefined);
  });

  it("passes requests to other origins through untouched: no refresh, no retry, no session needed", async () => {
    const { client, network, clock } = await loggedInClient(server, "origin-pete");
    clock.advance(58_000); // due for a refresh
    await client.fetch(`${thirdParty.url}/a`, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    assert.equal(thirdParty.received.at(-1)?.authorization, "Basic dXNlcjpwYXNz");
    assert.equal((await client.fetch(`${refusing.url}/b`)).status, 401);
    assert.equal(network.count("POST", "/auth/refresh"), 0);
    await client.logout();
    assert.equal((await client.fetch(`${thirdParty.url}/c`)).status, 200);
  });

  it("sends the token only to the listed origins when allowedOrigins is given", async () => {
    await registerAndLogin(server.url, "origin-quinn");
    const network = recordingFetch();
    const client = createAuthClient({
      baseUrl: server.url,
      storage: memoryStorage(),
      fetch: network.fetch,
      allowedOrigins: [`${thirdParty.url}/`],
    });
    await client.login("origin-quinn", PASSWORD);
    const tokens = await client.getAccessToken();
    await client.fetch(`${thirdParty.url}/api`);
    assert.equal(thirdParty.received.at(-1)?.authorization, `Bearer ${tokens}`);
    assert.equal((await client.fetch(`${server.url}/auth/me`)).status, 401, "the issuer is not listed");
    assert.equal(network.requests.at(-1)?.authorization, null);
  });

  it("throws TypeError for anything but a list of http(s) origins, and for unknown options", () => {
    const storage = memoryStorage();
    for (const allowedOrigins of [
      null,
      "https://a.test",
      ["*"],
      ["https://a.test/path"],
      ["https://a.test?x=1"],
      ["ftp://a.test"],
      ["https://user@a.test"],
      [42],
    ]) {
      assert.throws(
        () => createAuthClient({ baseUrl: "https://a.test", storage, allowedOrigins: allowedOrigins as never }),
        { name: "TypeError", message: /allowedOrigins/ },
        JSON.stringify(allowedOrigins),
      );
    }
    assert.throws(
      () => createAuthClient({ baseUrl: "https://a.test", storage, allowedOrigin: ["https://b.test"] } as never),
      { name: "TypeError", message: /unknown option allowedOrigin\b/ },
    );
  });
});

describe("createAuthClient() account mail", () => {
  let server: RunningServer;
  let smtp: TestSmtpServer;
  before(async () => {
    smtp = await startSmtpServer();
    server = await startServer({ accessTokenTtl: "60s", smtpUrl: smtp.url, mailFrom: "no-reply@example.test" });
  });
  after(async () => {
    await server.close();
    await smtp.close();
  });

  const linkToken = async (kind: "verify" | "reset") => {
    const mail = await smtp.next();
    const body = mail.raw
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    const token = new RegExp(`#${kind}=(tse_[A-Za-z0-9_-]{43})`).exec(body)?.[1];
    assert.ok(token, `a ${kind} link`);
    return token;
  };

  it("register() creates an account, with an address whose link it mails, without logging in", async () => {
    const client = createAuthClient({ baseUrl: server.url, storage: memoryStorage() });
    const created = await client.register("newcomer", PASSWORD, { email: "newcomer@example.test" });
    assert.deepEqual(Object.keys(created).sort(), ["id", "username"]);
    assert.equal(created.username, "newcomer");
    assert.equal(await client.getAccessToken(), null, "not logged in");
    await client.verifyEmail(await linkToken("verify"));
    await client.login("newcomer", PASSWORD);
    const me = await (await client.fetch(`${server.url}/auth/me`)).json();
    assert.deepEqual([me.id, me.email, me.email_verified], [created.id, "newcomer@example.test", true]);
    await assert.rejects(
      client.register("newcomer", PASSWORD),
      (error) => isAuthClientError(error, "unexpected_response") && error.status === 409,
    );
    await assert.rejects(
      client.register("second-comer", PASSWORD, { email: "NEWCOMER@example.test" }),
      (error) => isAuthClientError(error, "unexpected_response") && error.status === 409,
    );
    const plain = await client.register("no-address", PASSWORD);
    assert.equal(plain.username, "no-address");
  });

  it("setEmail() and verifyEmail(), forgotPassword() and resetPassword() go through the server", async () => {
    const { client } = await loggedInClient(server, "mailer-user");
    await client.setEmail("mailer-user@example.test");
    const verify = await linkToken("verify");
    await client.verifyEmail(verify);
    await assert.rejects(
      client.verifyEmail(verify),
      (error) => isAuthClientError(error, "unexpected_response") && error.status === 400,
    );
    const me = await (await client.fetch(`${server.url}/auth/me`)).json();
    assert.deepEqual([me.email, me.email_verified], ["mailer-user@example.test", true]);

    const anonymous = createAuthClient({ baseUrl: server.url, storage: memoryStorage() });
    await anonymous.forgotPassword("nobody@example.test");
    await anonymous.forgotPassword("mailer-user@example.test");
    await anonymous.resetPassword(await linkToken("reset"), "a brand new passphrase");
    await anonymous.login("mailer-user", "a brand new passphrase");
    await assert.rejects(
      anonymous.resetPassword(`tse_${"A".repeat(43)}`, "a brand new passphrase"),
      (error) => isAuthClientError(error, "unexpected_response") && error.status === 400,
    );
    await assert.rejects(
      client.setEmail("again@example.test"),
      (error) => isAuthClientError(error, "session_expired") || isAuthClientError(error, "not_authenticated"),
    );
  });
});
