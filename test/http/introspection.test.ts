import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { createServer } from "../../src/http/server.js";
import { type ServiceFixture, serviceFixture } from "../support/service.js";
import { totpCodeOf } from "../support/totp.js";

const PASSWORD = "correct horse battery staple";
const INTROSPECTION_SECRET = "introspection-secret-0123456789-abcdefgh";
const context = { ip: "127.0.0.1", userAgent: "test" };

let fixture: ServiceFixture;
let app: FastifyInstance;
let callerToken: string;
let counter = 0;

before(async () => {
  fixture = await serviceFixture({ introspectionSecret: INTROSPECTION_SECRET });
  app = await createServer({ services: fixture.services, rateLimitPerMinute: 0, logger: false });
  await fixture.service.register("resource-server", PASSWORD, context);
  await fixture.services.admin.setUserRoles("resource-server", ["introspect"]);
  callerToken = (await fixture.service.login("resource-server", PASSWORD, context)).accessToken;
});
after(async () => {
  await app.close();
  await fixture.close();
});

async function loggedIn() {
  counter += 1;
  const username = `person${counter}`;
  await fixture.service.register(username, PASSWORD, context);
  return { username, tokens: await fixture.service.login(username, PASSWORD, context) };
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`;
}

function introspect(token: string, authorization: string | null = `Bearer ${callerToken}`, extra = "") {
  return app.inject({
    method: "POST",
    url: "/oauth/introspect",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(authorization === null ? {} : { authorization }),
    },
    payload: `token=${encodeURIComponent(token)}${extra}`,
  });
}

function assertInactive(response: LightMyRequestResponse) {
  assert.equal(response.statusCode, 200, response.body);
  assert.deepEqual(response.json(), { active: false });
  assert.equal(response.headers["cache-control"], "no-store");
}

describe("POST /oauth/introspect", () => {
  it("describes an active access token", async () => {
    const { username, tokens } = await loggedIn();
    const response = await introspect(tokens.accessToken);
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.headers["cache-control"], "no-store");
    const body = response.json();
    assert.equal(body.active, true);
    assert.equal(body.token_type, "Bearer");
    assert.equal(body.sub, tokens.userId);
    assert.equal(body.sid, tokens.sessionId);
    assert.equal(body.username, username);
    assert.equal(body.client_id, "tessera");
    assert.equal(body.iss, "https://issuer.test");
    assert.equal(body.aud, "tessera");
    assert.equal(typeof body.jti, "string");
    assert.equal(body.exp - body.iat, tokens.accessTokenExpiresIn);
  });

  it("describes an active refresh token", async () => {
    const { tokens } = await loggedIn();
    const response = await introspect(tokens.refreshToken, undefined, "&token_type_hint=refresh_token");
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.active, true);
    assert.equal(body.token_type, "refresh_token");
    assert.equal(body.sub, tokens.userId);
    assert.equal(body.sid, tokens.sessionId);
    assert.equal(body.client_id, "tessera");
    assert.equal(body.exp - body.iat, tokens.refreshTokenExpiresIn);
    assert.ok(!response.body.includes(tokens.refreshToken), "the token is not echoed");
  });

  it("gives the methods of the login as amr: pwd for a password login, pwd and otp after a second factor", async () => {
    const { username, tokens } = await loggedIn();
    for (const token of [tokens.accessToken, tokens.refreshToken])
      assert.deepEqual((await introspect(token)).json().amr, ["pwd"]);

    const principal = await fixture.service.authenticate(tokens.accessToken);
    const { uri } = await fixture.services.mfa.enrollTotp(principal);
    await fixture.services.mfa.confirmTotp(principal, totpCodeOf(uri, 0, fixture.clock.now()), context);
    const signedIn = await fixture.service.signIn(username, PASSWORD, context);
    assert.equal(signedIn.kind, "mfa_required");
    if (signedIn.kind !== "mfa_required") return;
    const code = totpCodeOf(uri, 1, fixture.clock.now());
    const second = await fixture.service.completeMfaLogin(signedIn.challenge.mfaToken, { code }, context);
    const rotated = await fixture.service.refresh(second.refreshToken, context);
    for (const token of [second.accessToken, rotated.accessToken, rotated.refreshToken])
      assert.deepEqual((await introspect(token)).json().amr, ["pwd", "otp"]);
  });

  it("answers active: false for both tokens of a revoked session", async () => {
    const { tokens } = await loggedIn();
    await fixture.service.logout(tokens.refreshToken, context);
    assertInactive(await introspect(tokens.accessToken));
    assertInactive(await introspect(tokens.refreshToken));
  });

  it("answers active: false for a used refresh token, even within the grace window", async () => {
    const { tokens } = await loggedIn();
    const next = await fixture.service.refresh(tokens.refreshToken, context);
    assertInactive(await introspect(tokens.refreshToken));
    assert.equal((await introspect(next.refreshToken)).json().active, true);
  });

  it("answers active: false once the tokens have expired", async () => {
    const { tokens } = await loggedIn();
    fixture.clock.advance(tokens.accessTokenExpiresIn);
    try {
      assertInactive(await introspect(tokens.accessToken, basic("introspection", INTROSPECTION_SECRET)));
      assert.equal(
        (await introspect(tokens.refreshToken, basic("introspection", INTROSPECTION_SECRET))).json().active,
        true,
      );
      fixture.clock.advance(tokens.refreshTokenExpiresIn);
      assertInactive(await introspect(tokens.refreshToken, basic("introspection", INTROSPECTION_SECRET)));
    } finally {
      fixture.clock.advance(-tokens.accessTokenExpiresIn - tokens.refreshTokenExpiresIn);
    }
  });

  it("answers active: false for garbage and unknown tokens", async () => {
    assertInactive(await introspect("garbage"));
    assertInactive(await introspect("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
    const { tokens } = await loggedIn();
    const unknown = `${tokens.refreshToken.slice(0, 10)}${tokens.refreshToken.slice(10).split("").reverse().join("")}`;
    assertInactive(await introspect(unknown));
  });

  it("admits HTTP Basic with the configured client secret", async () => {
    const { tokens } = await loggedIn();
    const response = await introspect(tokens.accessToken, basic("introspection", INTROSPECTION_SECRET));
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().active, true);
  });

  it("refuses a wrong client secret or client id with 401 invalid_client and a Basic challenge", async () => {
    const { tokens } = await loggedIn();
    for (const authorization of [
      basic("introspection", `${INTROSPECTION_SECRET}x`),
      basic("someone-else", INTROSPECTION_SECRET),
      "Basic !!!",
    ]) {
      const response = await introspect(tokens.accessToken, authorization);
      assert.equal(response.statusCode, 401, response.body);
      assert.equal(response.json().error, "invalid_client");
      assert.equal(response.headers["www-authenticate"], 'Basic realm="tessera"');
    }
  });

  it("answers 401 with a Bearer challenge to an unauthenticated caller", async () => {
    const { tokens } = await loggedIn();
    const response = await introspect(tokens.accessToken, null);
    assert.equal(response.statusCode, 401, response.body);
    assert.equal(response.json().error, "invalid_token");
    assert.equal(response.headers["www-authenticate"], 'Bearer realm="tessera"');
    assert.ok(!response.body.includes(tokens.accessToken));
  });

  it("answers 401 invalid_token to a caller whose own token is invalid", async () => {
    const response = await introspect("anything", "Bearer not-a-token");
    assert.equal(response.statusCode, 401, response.body);
    assert.match(String(response.headers["www-authenticate"]), /error="invalid_token"/);
  });

  it("answers 403 insufficient_scope to a caller without the introspect role", async () => {
    const { tokens } = await loggedIn();
    const response = await introspect(tokens.accessToken, `Bearer ${tokens.accessToken}`);
    assert.equal(response.statusCode, 403, response.body);
    assert.equal(response.json().error, "insufficient_scope");
    assert.match(String(response.headers["www-authenticate"]), /error="insufficient_scope"/);
  });

  it("answers 403 as soon as the caller's introspect role is taken away, whatever its token says", async () => {
    await fixture.service.register("former-resource-server", PASSWORD, context);
    await fixture.services.admin.setUserRoles("former-resource-server", ["introspect"]);
    const token = (await fixture.service.login("former-resource-server", PASSWORD, context)).accessToken;
    const { tokens } = await loggedIn();
    assert.equal((await introspect(tokens.accessToken, `Bearer ${token}`)).statusCode, 200);
    await fixture.services.admin.setUserRoles("former-resource-server", ["user"]);
    const refused = await introspect(tokens.accessToken, `Bearer ${token}`);
    assert.equal(refused.statusCode, 403, refused.body);
    assert.equal(refused.json().error, "insufficient_scope");
  });

  it("requires the token parameter and form encoding", async () => {
    const missing = await app.inject({
      method: "POST",
      url: "/oauth/introspect",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Bearer ${callerToken}` },
      payload: "token_type_hint=access_token",
    });
    assert.equal(missing.statusCode, 400);
    const json = await app.inject({
      method: "POST",
      url: "/oauth/introspect",
      headers: { "content-type": "application/json", authorization: `Bearer ${callerToken}` },
      payload: JSON.stringify({ token: "x" }),
    });
    assert.equal(json.statusCode, 415);
  });

  it("answers over a real socket", async () => {
    const { tokens } = await loggedIn();
    const server = await createServer({ services: fixture.services, rateLimitPerMinute: 0, logger: false });
    await server.listen({ host: "127.0.0.1", port: 0 });
    try {
      const { port } = server.server.address() as { port: number };
      const response = await fetch(`http://127.0.0.1:${port}/oauth/introspect`, {
        method: "POST",
        headers: { authorization: basic("introspection", INTROSPECTION_SECRET) },
        body: new URLSearchParams({ token: tokens.refreshToken }),
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("cache-control"), "no-store");
      const body = (await response.json()) as { active: boolean; sid: string };
      assert.equal(body.active, true);
      assert.equal(body.sid, tokens.sessionId);
    } finally {
      await server.close();
    }
  });
});

describe("RFC 8414 metadata", () => {
  it("lists the introspection endpoint and how callers authenticate", async () => {
    const response = await app.inject({ method: "GET", url: "/.well-known/oauth-authorization-server" });
    const body = response.json();
    assert.equal(body.introspection_endpoint, "https://issuer.test/oauth/introspect");
    assert.deepEqual(body.introspection_endpoint_auth_methods_supported, ["client_secret_basic", "bearer"]);
  });
});
