import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { tessera } from "../../src/http/tessera-plugin.js";
import { temporaryDirectory } from "../support/server.js";
import { totpCodeOf } from "../support/totp.js";

describe("tessera Fastify plugin in a host app", () => {
  let app: FastifyInstance;
  let dir: ReturnType<typeof temporaryDirectory>;

  before(async () => {
    dir = temporaryDirectory();
    app = Fastify();
    // The host's own lenient JSON route must keep the host's behaviour.
    app.post("/echo", (request, reply) => reply.send({ got: request.body }));
    // A host that marks its answers cacheable by default.
    app.addHook("onRequest", (_request, reply, done) => {
      void reply.header("cache-control", "public, max-age=60");
      done();
    });
    await app.register(tessera, {
      prefix: "/identity",
      databaseUrl: `sqlite:${dir.path}/plugin.db`,
      secret: "plugin-test-secret-0123456789-abcdefghij",
      issuer: "https://api.example.test/identity",
      rateLimitPerMinute: 0,
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    dir.remove();
  });

  it("serves the auth routes under the prefix and names them in its metadata", async () => {
    const body = { username: "hosted", password: "correct horse battery staple" };
    const registered = await app.inject({ method: "POST", url: "/identity/auth/register", payload: body });
    assert.equal(registered.statusCode, 201);
    const login = await app.inject({ method: "POST", url: "/identity/auth/login", payload: body });
    assert.equal(login.statusCode, 200);
    const me = await app.inject({
      method: "GET",
      url: "/identity/auth/me",
      headers: { authorization: `Bearer ${login.json().access_token}` },
    });
    assert.equal(me.json().username, "hosted");
    const metadata = (
      await app.inject({ method: "GET", url: "/identity/.well-known/oauth-authorization-server" })
    ).json();
    assert.equal(metadata.token_endpoint, "https://api.example.test/identity/oauth/token");
  });

  it("answers a TOTP secret and recovery codes with Cache-Control: no-store whatever the host sets", async () => {
    const body = { username: "hosted-totp", password: "correct horse battery staple" };
    await app.inject({ method: "POST", url: "/identity/auth/register", payload: body });
    const login = await app.inject({ method: "POST", url: "/identity/auth/login", payload: body });
    const headers = { authorization: `Bearer ${login.json().access_token}` };
    const enrolment = await app.inject({ method: "POST", url: "/identity/auth/mfa/totp", headers, payload: {} });
    assert.equal(enrolment.statusCode, 200, enrolment.body);
    assert.equal(enrolment.headers["cache-control"], "no-store");
    const code = totpCodeOf(enrolment.json<{ uri: string }>().uri);
    const confirm = await app.inject({
      method: "POST",
      url: "/identity/auth/mfa/totp/confirm",
      headers,
      payload: { code },
    });
    assert.equal(confirm.statusCode, 200, confirm.body);
    assert.equal(confirm.headers["cache-control"], "no-store");
  });

  it("keeps its strict validation and error format to its own routes", async () => {
    const bad = await app.inject({
      method: "POST",
      url: "/identity/auth/login",
      payload: { username: "x", password: "y", extra: 1 },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error, "invalid_request");
    const host = await app.inject({ method: "POST", url: "/echo", payload: { anything: 1 } });
    assert.deepEqual(host.json(), { got: { anything: 1 } });
  });
});
