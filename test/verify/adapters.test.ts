import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import * as expressAdapter from "../../src/verify/express-adapter.js";
import * as fastifyAdapter from "../../src/verify/fastify-adapter.js";
import * as honoAdapter from "../../src/verify/hono-adapter.js";
import { createVerifier, type Verifier } from "../../src/verify/index.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { loginWithTotp } from "../support/totp.js";

/**
 * An API on a real socket with `/hello`, `/admin` (role admin), `/members` (role user), `/reports`
 * (scope reports:read), `/vault` (a second factor).
 */
interface Api {
  readonly url: string;
  close(): Promise<void>;
}

const REALM = "example-api";

function addressOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

async function startExpressApi(verifier: Verifier): Promise<Api> {
  const { tesseraAuth, requireRoles, requireMfa } = expressAdapter;
  const app = express();
  const auth = tesseraAuth({ verifier, realm: REALM });
  app.get("/hello", auth, (req, res) => void res.json(req.auth));
  app.get("/vault", auth, requireMfa(), (req, res) => void res.json(req.auth));
  app.get("/admin", auth, requireRoles("admin"), (req, res) => void res.json(req.auth));
  app.get("/members", auth, requireRoles("user"), (req, res) => void res.json(req.auth));
  app.get(
    "/reports",
    tesseraAuth({ verifier, realm: REALM, scopes: ["reports:read"] }),
    (req, res) => void res.json(req.auth),
  );
  app.get("/misconfigured", requireRoles("admin"), (req, res) => void res.json(req.auth));
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  return { url: addressOf(server), close: () => closeServer(server) };
}

async function startFastifyApi(verifier: Verifier): Promise<Api> {
  const { tesseraAuth, requireRoles, requireMfa } = fastifyAdapter;
  const app = Fastify();
  await app.register(async (api) => {
    await api.register(tesseraAuth, { verifier, realm: REALM });
    api.get("/hello", (request) => request.auth);
    api.get("/vault", { preHandler: requireMfa() }, (request) => request.auth);
    api.get("/admin", { preHandler: requireRoles("admin") }, (request) => request.auth);
    api.get("/members", { preHandler: requireRoles("user") }, (request) => request.auth);
  });
  await app.register(async (api) => {
    await api.register(tesseraAuth, { verifier, realm: REALM, scopes: ["reports:read"] });
    api.get("/reports", (request) => request.auth);
  });
  app.get("/public", () => ({ ok: true }));
  app.get("/misconfigured", { preHandler: requireRoles("admin") }, (request) => request.auth);
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { url: addressOf(app.server), close: () => app.close() };
}

async function startHonoApi(verifier: Verifier): Promise<Api> {
  const { tesseraAuth, requireRoles, requireMfa } = honoAdapter;
  const app = new Hono();
  const auth = tesseraAuth({ verifier, realm: REALM });
  app.get("/hello", auth, (c) => c.json(c.get("auth")));
  app.get("/vault", auth, requireMfa(), (c) => c.json(c.get("auth")));
  app.get("/admin", auth, requireRoles("admin"), (c) => c.json(c.get("auth")));
  app.get("/members", auth, requireRoles("user"), (c) => c.json(c.get("auth")));
  app.get("/reports", tesseraAuth({ verifier, realm: REALM, scopes: ["reports:read"] }), (c) => c.json(c.get("auth")));
  app.get("/misconfigured", requireRoles("admin"), (c) => c.json(c.get("auth")));
  const server = await new Promise<Server>((resolve) => {
    const listening = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(listening)) as Server;
  });
  return { url: addressOf(server), close: () => closeServer(server) };
}

const adapters = [
  { name: "Express middleware (tessera/verify/express)", start: startExpressApi, module: expressAdapter },
  { name: "Fastify plugin (tessera/verify/fastify)", start: startFastifyApi, module: fastifyAdapter },
  { name: "Hono middleware (tessera/verify/hono)", start: startHonoApi, module: honoAdapter },
];

for (const adapter of adapters) {
  void describe(adapter.name, () => {
    let tessera: RunningServer;
    let verifier: Verifier;
    let api: Api;
    let accessToken: string;

    before(async () => {
      tessera = await startServer();
      verifier = createVerifier({
        issuer: tessera.issuer,
        audience: tessera.audience,
        algorithms: ["ES256"],
        jwksUri: `${tessera.url}/.well-known/jwks.json`,
      });
      api = await adapter.start(verifier);
      accessToken = (await registerAndLogin(tessera.url, "adapter-user")).access_token;
    });
    after(async () => {
      await api.close();
      await verifier.close();
      await tessera.close();
    });

    const get = (path: string, authorization?: string) =>
      fetch(`${api.url}${path}`, authorization === undefined ? {} : { headers: { authorization } });

    void it("refuses with 500 and says so once when a guard runs without the auth middleware before it", async (t) => {
      const logged = t.mock.method(console, "error", () => undefined);
      for (let i = 0; i < 2; i += 1) {
        const response = await get("/misconfigured", `Bearer ${accessToken}`);
        assert.equal(response.status, 500);
        assert.deepEqual(await response.json(), { error: "server_error", error_description: "Internal server error." });
      }
      assert.equal(logged.mock.callCount(), 1);
      assert.match(String(logged.mock.calls[0]?.arguments[0]), /without tesseraAuth/);
    });

    void it("answers 401 with a challenge without error code when no credentials are sent", async () => {
      const response = await get("/hello");
      assert.equal(response.status, 401);
      assert.equal(response.headers.get("www-authenticate"), `Bearer realm="${REALM}"`);
      const body = (await response.json()) as { error: string; error_description: string };
      assert.equal(typeof body.error, "string");
      assert.equal(typeof body.error_description, "string");
    });

    void it("answers 401 invalid_token for a malformed or forged token, never echoing it", async () => {
      const [header, payload] = accessToken.split(".");
      const forged = `${header}.${payload}.${"A".repeat(86)}`;
      for (const authorization of ["Bearer not-a-jwt", `Bearer ${forged}`, "Bearer a b"]) {
        const response = await get("/hello", authorization);
        assert.equal(response.status, 401, authorization);
        assert.match(
          response.headers.get("www-authenticate") ?? "",
          new RegExp(`^Bearer realm="${REALM}", error="invalid_token"`),
        );
        const text = await response.text();
        assert.equal((JSON.parse(text) as { error: string }).error, "invalid_token");
        assert.ok(!text.includes(forged) && !text.includes("not-a-jwt"));
      }
    });

    void it("answers 200 with the claims of a valid token", async () => {
      const response = await get("/hello", `Bearer ${accessToken}`);
      assert.equal(response.status, 200);
      const claims = (await response.json()) as { iss: string; roles: string[]; sid: string };
      assert.equal(claims.iss, tessera.issuer);
      assert.deepEqual(claims.roles, ["user"]);
    });

    void it("lets a token through a guard for a role it carries", async () => {
      assert.equal((await get("/members", `Bearer ${accessToken}`)).status, 200);
    });

    void it("answers 403 insufficient_scope for a role the token lacks", async () => {
      const response = await get("/admin", `Bearer ${accessToken}`);
      assert.equal(response.status, 403);
      assert.equal(response.headers.get("www-authenticate"), `Bearer realm="${REALM}", error="insufficient_scope"`);
      assert.equal(((await response.json()) as { error: string }).error, "insufficient_scope");
    });

    void it("answers 403 naming the scope a token lacks", async () => {
      const response = await get("/reports", `Bearer ${accessToken}`);
      assert.equal(response.status, 403);
      assert.equal(
        response.headers.get("www-authenticate"),
        `Bearer realm="${REALM}", error="insufficient_scope", scope="reports:read"`,
      );
    });

    void it("requireMfa() answers 401 insufficient_user_authentication (RFC 9470) to a password-only token", async () => {
      const response = await get("/vault", `Bearer ${accessToken}`);
      assert.equal(response.status, 401);
      assert.equal(
        response.headers.get("www-authenticate"),
        `Bearer realm="${REALM}", error="insufficient_user_authentication", ` +
          'error_description="A second factor is required: log in again with a TOTP code."',
      );
      assert.equal(((await response.json()) as { error: string }).error, "insufficient_user_authentication");
    });

    void it("requireMfa() lets through a token of a login completed with a TOTP code, exposing its amr", async () => {
      const { access_token } = await loginWithTotp(tessera.url, "adapter-mfa-user");
      const response = await get("/vault", `Bearer ${access_token}`);
      assert.equal(response.status, 200);
      assert.deepEqual(((await response.json()) as { amr: string[] }).amr, ["pwd", "otp"]);
      const plain = (await (await get("/hello", `Bearer ${accessToken}`)).json()) as { amr: string[] };
      assert.deepEqual(plain.amr, ["pwd"]);
    });

    void it("checks its options when created", () => {
      assert.throws(() => adapter.module.requireRoles("bad role"), TypeError);
      if (adapter.module === fastifyAdapter) return;
      const create = adapter.module.tesseraAuth as (options: unknown) => unknown;
      assert.throws(() => create({}), /verifier/);
      assert.throws(() => create({ verifier, realm: 'a"b' }), /realm/);
    });
  });
}

void describe("Fastify plugin (tessera/verify/fastify) registration", () => {
  void it("fails registration without a verifier", async () => {
    const app = Fastify();
    await assert.rejects(async () => {
      await app.register(fastifyAdapter.tesseraAuth, {} as never);
      await app.ready();
    }, /verifier/);
    await app.close();
  });

  void it("protects only the scope it is registered in", async () => {
    const tessera = await startServer();
    const verifier = createVerifier({
      issuer: tessera.issuer,
      audience: tessera.audience,
      algorithms: ["ES256"],
      jwksUri: `${tessera.url}/.well-known/jwks.json`,
    });
    const api = await startFastifyApi(verifier);
    try {
      assert.equal((await fetch(`${api.url}/public`)).status, 200);
      assert.equal((await fetch(`${api.url}/hello`)).status, 401);
    } finally {
      await api.close();
      await verifier.close();
      await tessera.close();
    }
  });
});
