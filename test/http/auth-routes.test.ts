import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { createServer } from "../../src/http/server.js";
import { temporaryDirectory } from "../support/server.js";

const PASSWORD = "correct horse battery staple";
let app: FastifyInstance;
let dir: ReturnType<typeof temporaryDirectory>;

before(async () => {
  dir = temporaryDirectory();
  app = await createServer({
    databaseUrl: `sqlite:${dir.path}/t.db`,
    secret: "http-test-secret-0123456789-abcdefghijkl",
    issuer: "https://issuer.test",
    rateLimitPerMinute: 0,
    logger: false,
  });
});
after(async () => {
  await app.close();
  dir.remove();
});

function json(
  method: "POST" | "GET" | "DELETE" | "PUT",
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  return app.inject({
    method,
    url,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    payload: body === undefined ? undefined : JSON.stringify(body),
  });
}

function form(url: string, fields: string, headers: Record<string, string> = {}) {
  return app.inject({
    method: "POST",
    url,
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    payload: fields,
  });
}

function assertOAuthError(response: LightMyRequestResponse, status: number, error: string) {
  assert.equal(response.statusCode, status, response.body);
  const body = response.json();
  assert.equal(body.error, error);
  assert.equal(typeof body.error_description, "string");
  assert.ok(!/\n\s+at /.test(response.body), "no stack trace");
}

let counter = 0;
async function loggedIn() {
  counter += 1;
  const username = `person${counter}`;
  assert.equal((await json("POST", "/auth/register", { username, password: PASSWORD })).statusCode, 201);
  const login = await json("POST", "/auth/login", { username, password: PASSWORD });
  assert.equal(login.statusCode, 200);
  return { username, tokens: login.json<{ access_token: string; refresh_token: string }>() };
}

describe("POST /auth/register", () => {
  it("answers 201 {id, username}", async () => {
    const response = await json("POST", "/auth/register", { username: "Newcomer", password: PASSWORD });
    assert.equal(response.statusCode, 201);
    const body = response.json();
    assert.deepEqual(Object.keys(body).sort(), ["id", "username"]);
    assert.equal(body.username, "Newcomer", "shown as registered");
  });

  it("accepts names in any script, combining marks included, and logs them in", async () => {
    for (const username of ["राहुल", "İstanbul", "Nguyễn", "ｗｉｄｅ"]) {
      const registered = await json("POST", "/auth/register", { username, password: PASSWORD });
      assert.equal(registered.statusCode, 201, `${username}: ${registered.body}`);
      const login = await json("POST", "/auth/login", { username: username.toUpperCase(), password: PASSWORD });
      assert.equal(login.statusCode, 200, username);
    }
  });

  it("answers 409 for a taken username", async () => {
    await json("POST", "/auth/register", { username: "taken", password: PASSWORD });
    assertOAuthError(
      await json("POST", "/auth/register", { username: "TAKEN", password: PASSWORD }),
      409,
      "username_taken",
    );
  });

  it("answers 400 invalid_request for every malformed body", async () => {
    const bodies: unknown[] = [
      {},
      { username: "abc" },
      { username: "abc", password: PASSWORD, admin: true },
      { username: 12345, password: PASSWORD },
      { username: ["abc"], password: PASSWORD },
      { username: "a".repeat(65), password: PASSWORD },
      { username: "abc", password: "x".repeat(1025) },
      { username: "abc", password: "short" },
      { username: "has space", password: PASSWORD },
      { username: "...", password: PASSWORD },
      { username: "@+-_", password: PASSWORD },
      [],
      "text",
    ];
    for (const body of bodies) assertOAuthError(await json("POST", "/auth/register", body), 400, "invalid_request");
  });

  it("answers 400 for broken JSON, 415 for other media types, 413 for big bodies", async () => {
    const broken = await app.inject({
      method: "POST",
      url: "/auth/register",
      headers: { "content-type": "application/json" },
      payload: '{"username":',
    });
    assertOAuthError(broken, 400, "invalid_request");
    const poisoned = await app.inject({
      method: "POST",
      url: "/auth/register",
      headers: { "content-type": "application/json" },
      payload: '{"username":"abc","password":"correct horse","__proto__":{"x":1}}',
    });
    assertOAuthError(poisoned, 400, "invalid_request");
    const text = await app.inject({
      method: "POST",
      url: "/auth/register",
      headers: { "content-type": "text/plain" },
      payload: "hi",
    });
    assertOAuthError(text, 415, "invalid_request");
    const big = await json("POST", "/auth/register", { username: "abc", password: "x".repeat(20000) });
    assertOAuthError(big, 413, "invalid_request");
  });

  it("never lets two different passwords become one: bad UTF-8 and lone surrogates are refused", async () => {
    const raw = (path: string, bytes: number[]) =>
      app.inject({
        method: "POST",
        url: path,
        headers: { "content-type": "application/json" },
        payload: Buffer.concat([
          Buffer.from('{"username":"utf8user","password":"abcdefgh'),
          Buffer.from(bytes),
          Buffer.from('"}'),
        ]),
      });
    assertOAuthError(await raw("/auth/register", [0xff, 0xfe]), 400, "invalid_request");
    assertOAuthError(
      await json("POST", "/auth/register", { username: "utf8user", password: "abcdefgh\ud800" }),
      400,
      "invalid_request",
    );
    assertOAuthError(
      await json("POST", "/auth/register", { username: "utf8user", password: "\u{1F600}".repeat(4) }),
      400,
      "invalid_request",
    );

    assert.equal(
      (await json("POST", "/auth/register", { username: "utf8user", password: "abcdefgh\u{1F600}" })).statusCode,
      201,
    );
    assert.equal(
      (await json("POST", "/auth/login", { username: "utf8user", password: "abcdefgh\u{1F600}" })).statusCode,
      200,
    );
    assertOAuthError(await raw("/auth/login", [0xf0, 0x9f, 0x98]), 400, "invalid_request");
    assertOAuthError(
      await json("POST", "/auth/login", { username: "utf8user", password: "abcdefgh\ud83d" }),
      400,
      "invalid_request",
    );
    // 1024 characters is the limit whatever their UTF-16 length.
    const long = "\u{1F600}".repeat(1024);
    assert.equal((await json("POST", "/auth/register", { username: "utf8long", password: long })).statusCode, 201);
  });
});

describe("POST /auth/login", () => {
  it("answers an RFC 6749 §5.1 token response that is never cached", async () => {
    await json("POST", "/auth/register", { username: "shape", password: PASSWORD });
    const response = await json("POST", "/auth/login", { username: "shape", password: PASSWORD });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers["cache-control"], "no-store");
    const body = response.json();
    assert.deepEqual(Object.keys(body).sort(), [
      "access_token",
      "expires_in",
      "refresh_token",
      "refresh_token_expires_in",
      "token_type",
    ]);
    assert.equal(body.token_type, "Bearer");
    assert.equal(body.expires_in, 900);
    assert.equal(body.refresh_token_expires_in, 259200);
    assert.match(body.refresh_token, /^tsr_/);
  });

  it("answers 401 invalid_grant alike for a wrong password and an unknown user, echoing nothing", async () => {
    await json("POST", "/auth/register", { username: "victim", password: PASSWORD });
    const wrong = await json("POST", "/auth/login", { username: "victim", password: "guess-guess-guess" });
    const unknown = await json("POST", "/auth/login", { username: "ghost", password: "guess-guess-guess" });
    assertOAuthError(wrong, 401, "invalid_grant");
    assertOAuthError(unknown, 401, "invalid_grant");
    assert.equal(wrong.body, unknown.body);
    assert.ok(!wrong.body.includes("guess-guess-guess"));
  });
});

describe("POST /auth/refresh and /auth/logout", () => {
  it("rotates, repeats within grace, and revokes the session on reuse", async () => {
    const { tokens } = await loggedIn();
    const first = await json("POST", "/auth/refresh", { refresh_token: tokens.refresh_token });
    assert.equal(first.statusCode, 200);
    assert.equal(first.headers["cache-control"], "no-store");
    const repeat = await json("POST", "/auth/refresh", { refresh_token: tokens.refresh_token });
    assert.equal(repeat.json().refresh_token, first.json().refresh_token);
    const next = await json("POST", "/auth/refresh", { refresh_token: first.json().refresh_token });
    assert.equal(next.statusCode, 200);
    assertOAuthError(
      await json("POST", "/auth/refresh", { refresh_token: tokens.refresh_token }),
      401,
      "invalid_grant",
    );
    assertOAuthError(
      await json("POST", "/auth/refresh", { refresh_token: next.json().refresh_token }),
      401,
      "invalid_grant",
    );
  });

  it("answers 401 invalid_grant for junk and 400 for a missing field", async () => {
    assertOAuthError(await json("POST", "/auth/refresh", { refresh_token: "junk" }), 401, "invalid_grant");
    assertOAuthError(await json("POST", "/auth/refresh", {}), 400, "invalid_request");
  });

  it("logout answers 204, also for unknown tokens, and ends the session", async () => {
    const { tokens } = await loggedIn();
    assert.equal((await json("POST", "/auth/logout", { refresh_token: tokens.refresh_token })).statusCode, 204);
    assert.equal((await json("POST", "/auth/logout", { refresh_token: tokens.refresh_token })).statusCode, 204);
    assert.equal((await json("POST", "/auth/logout", { refresh_token: "nonsense" })).statusCode, 204);
    assertOAuthError(
      await json("POST", "/auth/refresh", { refresh_token: tokens.refresh_token }),
      401,
      "invalid_grant",
    );
    const me = await json("GET", "/auth/me", undefined, { authorization: `Bearer ${tokens.access_token}` });
    assert.equal(me.statusCode, 401);
  });
});

describe("bearer routes", () => {
  it("GET /auth/me answers the user, with any casing of the scheme", async () => {
    const { username, tokens } = await loggedIn();
    for (const scheme of ["Bearer", "bearer", "BEARER"]) {
      const response = await json("GET", "/auth/me", undefined, { authorization: `${scheme} ${tokens.access_token}` });
      assert.equal(response.statusCode, 200);
      assert.deepEqual(Object.keys(response.json()).sort(), [
        "capabilities",
        "email",
        "email_verified",
        "id",
        "mfa",
        "roles",
        "username",
      ]);
      assert.equal(response.json().username, username);
      assert.deepEqual(response.json().mfa, { totp: false });
    }
  });

  it("answers 401 with an RFC 6750 challenge: no error code without credentials", async () => {
    const response = await json("GET", "/auth/me");
    assert.equal(response.statusCode, 401);
    assert.equal(response.headers["www-authenticate"], 'Bearer realm="tessera"');
    const basic = await json("GET", "/auth/me", undefined, { authorization: "Basic dXNlcjpwYXNz" });
    assert.equal(basic.headers["www-authenticate"], 'Bearer realm="tessera"');
    // Authentication comes before any other check: an unauthenticated caller learns only 401.
    for (const [method, url] of [
      ["DELETE", `/auth/sessions/${"x".repeat(65)}`],
      ["POST", "/auth/logout-all"],
      ["POST", "/auth/logout-others"],
      ["GET", "/auth/sessions?unexpected=1"],
    ] as const) {
      const response = await json(method, url);
      assert.equal(response.statusCode, 401, `${method} ${url}`);
      assert.equal(response.headers["www-authenticate"], 'Bearer realm="tessera"');
    }
  });

  it("answers 401 invalid_token for bad tokens and never reads tokens from the query string", async () => {
    const { tokens } = await loggedIn();
    for (const header of ["Bearer nope", "Bearer a.b.c", `Bearer ${tokens.access_token}x`, "Bearer"]) {
      const response = await json("GET", "/auth/me", undefined, { authorization: header });
      assertOAuthError(response, 401, "invalid_token");
      assert.match(String(response.headers["www-authenticate"]), /^Bearer realm="tessera", error="invalid_token"/);
    }
    const query = await json("GET", `/auth/me?access_token=${tokens.access_token}`);
    assert.equal(query.statusCode, 401);
    assert.equal(query.headers["www-authenticate"], 'Bearer realm="tessera"');
  });

  it("lists sessions and revokes one; another user's session is 404", async () => {
    const { username, tokens } = await loggedIn();
    const other = await loggedIn();
    const second = (
      await json("POST", "/auth/login", { username, password: PASSWORD }, { "user-agent": "second-device" })
    ).json();
    const auth = { authorization: `Bearer ${tokens.access_token}` };
    const list = await json("GET", "/auth/sessions", undefined, auth);
    assert.equal(list.statusCode, 200);
    const sessions = list.json().sessions as Array<Record<string, unknown>>;
    assert.equal(sessions.length, 2);
    assert.deepEqual(Object.keys(sessions[0]!).sort(), [
      "created_at",
      "current",
      "expires_at",
      "id",
      "ip",
      "last_used_at",
      "user_agent",
    ]);
    assert.equal(sessions.filter((session) => session.current).length, 1);
    const target = sessions.find((session) => session.user_agent === "second-device")!;
    assert.match(String(target.created_at), /Z$/);
    const otherSession = (
      await json("GET", "/auth/sessions", undefined, { authorization: `Bearer ${other.tokens.access_token}` })
    ).json().sessions[0].id;
    assertOAuthError(await json("DELETE", `/auth/sessions/${otherSession}`, undefined, auth), 404, "not_found");
    assert.equal((await json("DELETE", `/auth/sessions/${String(target.id)}`, undefined, auth)).statusCode, 204);
    assertOAuthError(
      await json("POST", "/auth/refresh", { refresh_token: second.refresh_token }),
      401,
      "invalid_grant",
    );
    assert.equal((await json("GET", "/auth/sessions", undefined, auth)).json().sessions.length, 1);
  });

  it("POST /auth/logout-all answers 204 and ends every session", async () => {
    const { username, tokens } = await loggedIn();
    const second = (await json("POST", "/auth/login", { username, password: PASSWORD })).json();
    assert.equal(
      (await json("POST", "/auth/logout-all", undefined, { authorization: `Bearer ${tokens.access_token}` }))
        .statusCode,
      204,
    );
    assertOAuthError(
      await json("POST", "/auth/refresh", { refresh_token: second.refresh_token }),
      401,
      "invalid_grant",
    );
    assert.equal(
      (await json("POST", "/auth/logout-all", undefined, { authorization: `Bearer ${tokens.access_token}` }))
        .statusCode,
      401,
    );
  });

  it("POST /auth/logout-others ends every other session, one opened after the list was read too", async () => {
    const { username, tokens } = await loggedIn();
    const auth = { authorization: `Bearer ${tokens.access_token}` };
    const second = (await json("POST", "/auth/login", { username, password: PASSWORD })).json();
    const listed = (await json("GET", "/auth/sessions", undefined, auth)).json().sessions as Array<{
      id: string;
      current: boolean;
    }>;
    // Opened after the list above was read: ended all the same.
    const late = (await json("POST", "/auth/login", { username, password: PASSWORD })).json();
    const bystander = await loggedIn();

    const response = await json("POST", "/auth/logout-others", undefined, auth);
    assert.equal(response.statusCode, 200, response.body);
    const revoked = response.json().revoked as string[];
    assert.deepEqual(Object.keys(response.json()), ["revoked"]);
    assert.equal(revoked.length, 2);
    const listedOther = listed.find((session) => !session.current)!.id;
    assert.ok(revoked.includes(listedOther));
    assert.ok(!revoked.includes(listed.find((session) => session.current)!.id));

    for (const refreshToken of [second.refresh_token, late.refresh_token])
      assertOAuthError(await json("POST", "/auth/refresh", { refresh_token: refreshToken }), 401, "invalid_grant");
    // The caller's session stays: its refresh token rotates, its access token still works.
    assert.equal((await json("POST", "/auth/refresh", { refresh_token: tokens.refresh_token })).statusCode, 200);
    const left = (await json("GET", "/auth/sessions", undefined, auth)).json().sessions as Array<{ current: boolean }>;
    assert.deepEqual(
      left.map((session) => session.current),
      [true],
    );
    // Another user's sessions are untouched.
    assert.equal(
      (await json("POST", "/auth/refresh", { refresh_token: bystander.tokens.refresh_token })).statusCode,
      200,
    );
    // Nothing left to end: an empty list; `{}` is a body it takes, anything else is refused.
    assert.deepEqual((await json("POST", "/auth/logout-others", {}, auth)).json(), { revoked: [] });
    assertOAuthError(await json("POST", "/auth/logout-others", { all: true }, auth), 400, "invalid_request");
  });
});

describe("POST /oauth/token", () => {
  it("refreshes with grant_type=refresh_token, with or without client_id", async () => {
    const { tokens } = await loggedIn();
    const first = await form("/oauth/token", `grant_type=refresh_token&refresh_token=${tokens.refresh_token}`);
    assert.equal(first.statusCode, 200);
    assert.equal(first.headers["cache-control"], "no-store");
    const second = await form(
      "/oauth/token",
      `grant_type=refresh_token&client_id=spa&refresh_token=${first.json().refresh_token}&unknown=ignored`,
    );
    assert.equal(second.statusCode, 200);
    assert.equal(second.json().token_type, "Bearer");
  });

  it("answers RFC 6749 §5.2 errors with 400", async () => {
    const { tokens } = await loggedIn();
    assertOAuthError(await form("/oauth/token", `refresh_token=${tokens.refresh_token}`), 400, "invalid_request");
    assertOAuthError(
      await form("/oauth/token", "grant_type=password&username=a&password=b"),
      400,
      "unsupported_grant_type",
    );
    assertOAuthError(await form("/oauth/token", "grant_type=refresh_token"), 400, "invalid_request");
    assertOAuthError(
      await form("/oauth/token", "grant_type=refresh_token&refresh_token=garbage"),
      400,
      "invalid_grant",
    );
    assertOAuthError(
      await form(
        "/oauth/token",
        `grant_type=refresh_token&refresh_token=${tokens.refresh_token}&refresh_token=${tokens.refresh_token}`,
      ),
      400,
      "invalid_request",
    );
    assertOAuthError(
      await form("/oauth/token", `grant_type=refresh_token&refresh_token=${tokens.refresh_token}&scope=admin`),
      400,
      "invalid_scope",
    );
    const asJson = await json("POST", "/oauth/token", {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
    });
    assertOAuthError(asJson, 400, "invalid_request");
  });

  it("refuses client credentials with 401 invalid_client instead of ignoring them, and keeps the token", async () => {
    const { tokens } = await loggedIn();
    const grant = `grant_type=refresh_token&refresh_token=${tokens.refresh_token}`;
    for (const [fields, headers] of [
      [grant, { authorization: `Basic ${Buffer.from("spa:wrong").toString("base64")}` }],
      [grant, { authorization: "basic c3BhOg==" }],
      [`${grant}&client_id=spa&client_secret=wrong`, {}],
      [
        `${grant}&client_id=spa&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z`,
        {},
      ],
    ] as const) {
      for (const endpoint of ["/oauth/token", "/oauth/revoke"]) {
        const response = await form(
          endpoint,
          endpoint === "/oauth/token" ? fields : fields.replace("refresh_token=", "token="),
          headers,
        );
        assertOAuthError(response, 401, "invalid_client");
        assert.equal(response.headers["www-authenticate"], 'Basic realm="tessera"');
      }
    }
    // Nothing was rotated or revoked by the refused requests.
    assert.equal((await form("/oauth/token", grant)).statusCode, 200);
  });
});

describe("POST /oauth/revoke", () => {
  it("answers 200 for any token and ends the session of a valid one (RFC 7009)", async () => {
    const { tokens } = await loggedIn();
    assert.equal((await form("/oauth/revoke", "token=unknown-token")).statusCode, 200);
    assert.equal(
      (await form("/oauth/revoke", `token=${tokens.refresh_token}&token_type_hint=refresh_token`)).statusCode,
      200,
    );
    assertOAuthError(
      await form("/oauth/token", `grant_type=refresh_token&refresh_token=${tokens.refresh_token}`),
      400,
      "invalid_grant",
    );
    assertOAuthError(await form("/oauth/revoke", "token_type_hint=access_token"), 400, "invalid_request");
  });
});

describe("discovery and probes", () => {
  it("publishes a JWK Set with public keys only", async () => {
    const response = await json("GET", "/.well-known/jwks.json");
    assert.equal(response.statusCode, 200);
    const { keys } = response.json<{ keys: Array<Record<string, unknown>> }>();
    assert.equal(keys.length, 1);
    for (const key of keys) {
      for (const secret of ["d", "p", "q", "dp", "dq", "qi", "k"]) assert.equal(key[secret], undefined);
      assert.equal(key.use, "sig");
      assert.equal(key.alg, "ES256");
    }
  });

  it("publishes RFC 8414 metadata naming the issuer and endpoints", async () => {
    const body = (await json("GET", "/.well-known/oauth-authorization-server")).json();
    assert.equal(body.issuer, "https://issuer.test");
    assert.equal(body.token_endpoint, "https://issuer.test/oauth/token");
    assert.equal(body.jwks_uri, "https://issuer.test/.well-known/jwks.json");
    assert.deepEqual(body.grant_types_supported, ["refresh_token"]);
  });

  it("answers /healthz and /readyz, and a JSON 404 elsewhere", async () => {
    assert.equal((await json("GET", "/healthz")).statusCode, 200);
    assert.deepEqual((await json("GET", "/readyz")).json(), { status: "ready" });
    assertOAuthError(await json("GET", "/nope"), 404, "not_found");
    assertOAuthError(await json("GET", "/auth/sessions/x/y"), 404, "not_found");
  });

  it("in HS256 mode publishes no key: an empty JWK Set and no jwks_uri in the metadata", async () => {
    const hs = await createServer({
      databaseUrl: `sqlite:${dir.path}/hs.db`,
      secret: "x".repeat(40),
      signingAlgorithm: "HS256",
      hs256Secret: "h".repeat(40),
      issuer: "https://issuer.test",
      logger: false,
    });
    try {
      assert.deepEqual((await hs.inject({ method: "GET", url: "/.well-known/jwks.json" })).json(), { keys: [] });
      const metadata = (await hs.inject({ method: "GET", url: "/.well-known/oauth-authorization-server" })).json();
      assert.equal(metadata.issuer, "https://issuer.test");
      assert.equal("jwks_uri" in metadata, false);
    } finally {
      await hs.close();
    }
  });

  it("sends security headers, and HSTS only when the issuer is https", async () => {
    const response = await json("GET", "/.well-known/jwks.json");
    assert.equal(response.headers["x-content-type-options"], "nosniff");
    assert.equal(response.headers["x-frame-options"], "DENY");
    assert.match(String(response.headers["content-security-policy"]), /default-src 'none'/);
    assert.match(String(response.headers["strict-transport-security"]), /max-age=31536000/);
    const plain = await createServer({
      databaseUrl: `sqlite:${dir.path}/plain.db`,
      secret: "x".repeat(40),
      issuer: "http://127.0.0.1:3000",
      logger: false,
    });
    try {
      const answer = await plain.inject({ method: "GET", url: "/healthz" });
      assert.equal(answer.headers["strict-transport-security"], undefined);
      assert.equal(answer.headers["x-content-type-options"], "nosniff");
    } finally {
      await plain.close();
    }
  });

  it("answers 405 with Allow for a known path asked with the wrong method", async () => {
    for (const [method, url, allow] of [
      ["GET", "/oauth/token", "POST"],
      ["GET", "/auth/login?username=a", "POST"],
      ["PUT", "/auth/sessions/3f1c", "DELETE"],
      ["POST", "/.well-known/jwks.json", "GET, HEAD"],
      ["DELETE", "/auth/me", "GET, HEAD"],
      ["POST", "/auth/%6De", "GET, HEAD"],
    ] as const) {
      const response = await json(method, url);
      assertOAuthError(response, 405, "invalid_request");
      assert.equal(response.headers.allow, allow, `${method} ${url}`);
    }
  });
});

describe("rate limits", () => {
  it("slow down password guessing per client and username, and other routes per client", async () => {
    const limited = await createServer({
      databaseUrl: `sqlite:${dir.path}/limited.db`,
      secret: "x".repeat(40),
      rateLimitPerMinute: 3,
      logger: false,
    });
    const login = (username: string) =>
      limited.inject({
        method: "POST",
        url: "/auth/login",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ username, password: "whatever-pass" }),
      });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i += 1) {
        const response = await login(i % 2 === 0 ? "nobody" : "NOBODY");
        statuses.push(response.statusCode);
        if (response.statusCode === 429) assert.equal(response.json().error, "too_many_requests");
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429], "the same account, however it is spelled");
      assert.equal((await login("somebody-else")).statusCode, 401, "another account is not held up");
      const refreshes: number[] = [];
      for (let i = 0; i < 31; i += 1) {
        const response = await limited.inject({
          method: "POST",
          url: "/auth/refresh",
          headers: { "content-type": "application/json" },
          payload: JSON.stringify({ refresh_token: "junk" }),
        });
        refreshes.push(response.statusCode);
      }
      assert.deepEqual([refreshes[29], refreshes[30]], [401, 429], "ten times the login rate per client");
    } finally {
      await limited.close();
    }
  });
});

describe("TESSERA_REGISTRATION=closed", () => {
  it("answers POST /auth/register 403 registration_closed, and logins go on", async () => {
    const closed = await createServer({
      databaseUrl: `sqlite:${dir.path}/closed.db`,
      secret: "x".repeat(40),
      registration: "closed",
      rateLimitPerMinute: 0,
      logger: false,
    });
    try {
      const refused = await closed.inject({
        method: "POST",
        url: "/auth/register",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ username: "walk-in", password: PASSWORD }),
      });
      assertOAuthError(refused, 403, "registration_closed");
      const login = await closed.inject({
        method: "POST",
        url: "/auth/login",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ username: "walk-in", password: PASSWORD }),
      });
      assertOAuthError(login, 401, "invalid_grant");
    } finally {
      await closed.close();
    }
  });
});
