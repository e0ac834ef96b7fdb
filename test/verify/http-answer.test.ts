import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { after, before, describe, it } from "node:test";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import { Hono } from "hono";
import { TesseraError } from "../../src/core/errors.js";
import { createServer } from "../../src/http/server.js";
import * as expressAdapter from "../../src/verify/express-adapter.js";
import * as fastifyAdapter from "../../src/verify/fastify-adapter.js";
import * as honoAdapter from "../../src/verify/hono-adapter.js";
import { createVerifier, type JsonWebKeySet, type Verifier } from "../../src/verify/index.js";
import { type ServiceFixture, serviceFixture } from "../support/service.js";

/** What a client sees of a refusal, compared byte for byte. */
interface Seen {
  readonly status: number;
  readonly body: string;
  readonly "www-authenticate": string | undefined;
  readonly "cache-control": string | undefined;
  readonly "retry-after": string | undefined;
}

type Header = string | string[] | number | undefined;

function seen(status: number, body: string, header: (name: string) => Header): Seen {
  const one = (name: string) => {
    const value = header(name);
    return value === undefined ? undefined : String(value);
  };
  return {
    status,
    body,
    "www-authenticate": one("www-authenticate"),
    "cache-control": one("cache-control"),
    "retry-after": one("retry-after"),
  };
}

/** An API behind one adapter: `/hello` checks tokens with the working verifier, `/offline` with one without keys. */
interface Api {
  get(path: string, authorization?: string): Promise<Seen>;
  close(): Promise<void>;
}

function headersOf(authorization: string | undefined): Record<string, string> {
  return authorization === undefined ? {} : { authorization };
}

async function seenOfFetch(response: Response): Promise<Seen> {
  const body = await response.text();
  return seen(response.status, body, (name) => response.headers.get(name) ?? undefined);
}

async function expressApi(verifier: Verifier, offline: Verifier): Promise<Api> {
  const app = express();
  app.get("/hello", expressAdapter.tesseraAuth({ verifier }), (req, res) => void res.json(req.auth));
  app.get("/offline", expressAdapter.tesseraAuth({ verifier: offline }), (req, res) => void res.json(req.auth));
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    get: async (path, authorization) => {
      return seenOfFetch(await fetch(`${url}${path}`, { headers: headersOf(authorization) }));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function fastifyApi(verifier: Verifier, offline: Verifier): Promise<Api> {
  const app = Fastify();
  await app.register(async (api) => {
    await api.register(fastifyAdapter.tesseraAuth, { verifier });
    api.get("/hello", (request) => request.auth);
  });
  await app.register(async (api) => {
    await api.register(fastifyAdapter.tesseraAuth, { verifier: offline });
    api.get("/offline", (request) => request.auth);
  });
  return {
    get: async (path, authorization) => {
      const response = await app.inject({ url: path, headers: headersOf(authorization) });
      return seen(response.statusCode, response.body, (name) => response.headers[name]);
    },
    close: () => app.close(),
  };
}

function honoApi(verifier: Verifier, offline: Verifier): Promise<Api> {
  const app = new Hono();
  app.get("/hello", honoAdapter.tesseraAuth({ verifier }), (c) => c.json(c.get("auth")));
  app.get("/offline", honoAdapter.tesseraAuth({ verifier: offline }), (c) => c.json(c.get("auth")));
  return Promise.resolve({
    get: async (path, authorization) => seenOfFetch(await app.request(path, { headers: headersOf(authorization) })),
    close: () => Promise.resolve(),
  });
}

const adapters = [
  { name: "tessera/verify/express", start: expressApi },
  { name: "tessera/verify/fastify", start: fastifyApi },
  { name: "tessera/verify/hono", start: honoApi },
];

describe("the verify adapters and the standalone server", () => {
  const issuer = "https://issuer.test";
  let fixture: ServiceFixture;
  let server: FastifyInstance;
  let verifier: Verifier;
  let offline: Verifier;
  let accessToken: string;
  let forged: string;

  const fromServer = async (url: string, authorization?: string): Promise<Seen> => {
    const response = await server.inject({ url, headers: headersOf(authorization) });
    return seen(response.statusCode, response.body, (name) => response.headers[name]);
  };

  before(async () => {
    fixture = await serviceFixture({ issuer });
    server = await createServer({ services: fixture.services, rateLimitPerMinute: 0, logger: false });
    // The server throws this code nowhere itself; a route of its own shows how its handler answers it.
    server.get("/keys-unavailable", () => {
      throw new TesseraError("verification_keys_unavailable", "the issuer's JWK Set could not be loaded");
    });
    const credentials = { username: "parity-user", password: "correct horse battery staple" };
    const registered = await server.inject({ method: "POST", url: "/auth/register", payload: credentials });
    assert.equal(registered.statusCode, 201);
    const login = await server.inject({ method: "POST", url: "/auth/login", payload: credentials });
    accessToken = login.json<{ access_token: string }>().access_token;
    const [header, payload] = accessToken.split(".");
    forged = `${header}.${payload}.${"A".repeat(86)}`;
    const jwks = (await server.inject({ url: "/.well-known/jwks.json" })).json<JsonWebKeySet>();
    const common = { issuer, audience: "tessera", algorithms: ["ES256"] as const, clock: fixture.clock };
    verifier = createVerifier({ ...common, jwks });
    offline = createVerifier({
      ...common,
      jwksUri: `${issuer}/.well-known/jwks.json`,
      fetch: () => Promise.reject(new TypeError("fetch failed")),
      logger: { warn: () => undefined },
    });
  });
  after(async () => {
    await verifier.close();
    await offline.close();
    await server.close();
    await fixture.close();
  });

  for (const adapter of adapters) {
    describe(adapter.name, () => {
      let api: Api;
      before(async () => {
        api = await adapter.start(verifier, offline);
      });
      after(() => api.close());

      it("answers a request without a token as the server does", async () => {
        assert.deepEqual(await api.get("/hello"), await fromServer("/auth/me"));
      });

      it("answers a malformed or forged token as the server does", async () => {
        for (const authorization of ["Bearer a b", "Bearer not-a-jwt", `Bearer ${forged}`]) {
          const expected = await fromServer("/auth/me", authorization);
          assert.deepEqual(await api.get("/hello", authorization), expected, authorization);
        }
      });

      it("answers verification_keys_unavailable as the server does", async () => {
        const answer = await api.get("/offline", `Bearer ${accessToken}`);
        assert.equal(answer.status, 503);
        assert.deepEqual(answer, await fromServer("/keys-unavailable"));
      });

      it("answers an expired token as the server does", async (t) => {
        const before = fixture.clock.now();
        fixture.clock.advance(3600);
        t.after(() => fixture.clock.advance((before.getTime() - fixture.clock.now().getTime()) / 1000));
        const answer = await api.get("/hello", `Bearer ${accessToken}`);
        assert.match(answer["www-authenticate"] ?? "", /error_description="The access token has expired\."/);
        assert.deepEqual(answer, await fromServer("/auth/me", `Bearer ${accessToken}`));
      });
    });
  }
});
