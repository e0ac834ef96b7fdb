// One protected route, GET /protected answering {"sub": …} from the verified claims, served by
// one framework with one verifier; started by the route group, one process per variant, pinned
// to the server core. Prints {"port": N} once it listens on 127.0.0.1.
//
//   node --import tsx bench/servers/route-server.ts <fastify|express|hono> <auth> [cache-on|cache-off]
//   auth: none | floor | fastify-jwt | fast-jwt-cached | jsonwebtoken | hono-jwt | tessera
//   BENCH_TOKEN_MATERIAL: the TokenMaterial (JSON) of the algorithm.
// Frameworks are imported only by the variant that uses them: 25 of these processes start per run.
import type { AddressInfo } from "node:net";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { FastifyPluginCallback, FastifyRequest } from "fastify";
import type { MiddlewareHandler } from "hono";
import type { TokenMaterial } from "../lib/access-tokens.js";
import {
  fastJwtVerifier,
  floorVerifier,
  honoKeyOf,
  importTessera,
  jsonwebtokenVerifier,
  pemOf,
  tesseraVerifier,
} from "../lib/verifiers.js";

const FRAMEWORKS = ["fastify", "express", "hono"] as const;
const AUTHS = ["none", "floor", "fastify-jwt", "fast-jwt-cached", "jsonwebtoken", "hono-jwt", "tessera"] as const;
type Framework = (typeof FRAMEWORKS)[number];
type Auth = (typeof AUTHS)[number];

const [framework, auth, cacheArgument = "cache-on"] = process.argv.slice(2) as [Framework, Auth, string?];
if (!FRAMEWORKS.includes(framework) || !AUTHS.includes(auth))
  throw new TypeError(`usage: route-server.ts <${FRAMEWORKS.join("|")}> <${AUTHS.join("|")}> [cache-on|cache-off]`);
const cache = cacheArgument === "cache-on";
const material = JSON.parse(process.env.BENCH_TOKEN_MATERIAL ?? "null") as TokenMaterial | null;
if (auth !== "none" && material === null) throw new TypeError("BENCH_TOKEN_MATERIAL is required");

type SyncVerify = (token: string) => { sub?: unknown };

/** The bearer token of an Authorization header, or null. */
function bearer(header: string | undefined): string | null {
  return header !== undefined && header.startsWith("Bearer ") ? header.slice(7) : null;
}

const UNAUTHORIZED = { error: "invalid_token" };

function syncVerifierFor(kind: Auth): SyncVerify {
  if (kind === "floor") return floorVerifier(material!);
  if (kind === "fast-jwt-cached") return fastJwtVerifier(material!, true);
  if (kind === "jsonwebtoken") {
    const verify = jsonwebtokenVerifier(material!);
    if (!verify) throw new TypeError(`jsonwebtoken cannot verify ${material!.alg}`);
    return verify;
  }
  throw new TypeError(`${kind} has no synchronous verifier`);
}

async function startFastify(): Promise<AddressInfo> {
  const { default: Fastify } = await import("fastify");
  const app = Fastify({ logger: false });
  const claimsOf = (request: FastifyRequest) =>
    request as unknown as { auth?: { sub?: unknown }; user?: { sub?: unknown } };
  if (auth === "none") {
    app.get("/protected", () => ({ hello: "world" }));
  } else if (auth === "tessera") {
    const { tesseraAuth } = await importTessera<{ tesseraAuth: FastifyPluginCallback<{ verifier: unknown }> }>(
      "verify/fastify",
    );
    const verifier = await tesseraVerifier(material!, cache);
    await app.register(async (api) => {
      await api.register(tesseraAuth, { verifier });
      api.get("/protected", (request) => ({ sub: claimsOf(request).auth?.sub }));
    });
  } else if (auth === "fastify-jwt") {
    const { default: fastifyJwt } = await import("@fastify/jwt");
    await app.register(fastifyJwt, {
      secret: material!.secret ?? { public: pemOf(material!) },
      verify: {
        algorithms: [material!.alg],
        allowedIss: material!.issuer,
        allowedAud: material!.audience,
        checkTyp: "at+jwt",
      },
    });
    app.addHook("onRequest", async (request, reply) => {
      try {
        await request.jwtVerify();
      } catch {
        return reply.code(401).send(UNAUTHORIZED);
      }
    });
    app.get("/protected", (request) => ({ sub: claimsOf(request).user?.sub }));
  } else {
    const verify = syncVerifierFor(auth);
    app.decorateRequest("auth", null);
    app.addHook("onRequest", (request, reply, done) => {
      const token = bearer(request.headers.authorization);
      try {
        if (token === null) throw new Error("no bearer token");
        (request as unknown as { auth: unknown }).auth = verify(token);
      } catch {
        void reply.code(401).send(UNAUTHORIZED);
        return;
      }
      done();
    });
    app.get("/protected", (request) => ({ sub: claimsOf(request).auth?.sub }));
  }
  await app.listen({ host: "127.0.0.1", port: 0 });
  return app.server.address() as AddressInfo;
}

async function startExpress(): Promise<AddressInfo> {
  const { default: express } = await import("express");
  const app = express();
  if (auth === "tessera") {
    const { tesseraAuth } = await importTessera<{ tesseraAuth: (options: { verifier: unknown }) => RequestHandler }>(
      "verify/express",
    );
    app.use(tesseraAuth({ verifier: await tesseraVerifier(material!, cache) }));
  } else if (auth !== "none") {
    const verify = syncVerifierFor(auth);
    app.use((request: Request, response: Response, next: NextFunction) => {
      const token = bearer(request.headers.authorization);
      try {
        if (token === null) throw new Error("no bearer token");
        (request as unknown as { auth: unknown }).auth = verify(token);
      } catch {
        response.status(401).json(UNAUTHORIZED);
        return;
      }
      next();
    });
  }
  app.get("/protected", (request, response) => {
    const claims = (request as unknown as { auth?: { sub?: unknown } }).auth;
    response.json(auth === "none" ? { hello: "world" } : { sub: claims?.sub });
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", resolve));
  return server.address() as AddressInfo;
}

async function startHono(): Promise<AddressInfo> {
  const { Hono } = await import("hono");
  const { serve } = await import("@hono/node-server");
  const app = new Hono<{ Variables: { auth: { sub?: unknown }; jwtPayload: { sub?: unknown } } }>();
  if (auth === "tessera") {
    const { tesseraAuth } = await importTessera<{ tesseraAuth: (options: { verifier: unknown }) => MiddlewareHandler }>(
      "verify/hono",
    );
    app.use("/protected", tesseraAuth({ verifier: await tesseraVerifier(material!, cache) }));
    app.get("/protected", (c) => c.json({ sub: c.get("auth").sub }));
  } else if (auth === "hono-jwt") {
    const { jwt: honoJwt } = await import("hono/jwt");
    app.use(
      "/protected",
      honoJwt({
        secret: honoKeyOf(material!),
        alg: material!.alg,
        verification: { iss: material!.issuer, aud: material!.audience, typ: "at+jwt" },
      }),
    );
    app.get("/protected", (c) => c.json({ sub: c.get("jwtPayload").sub }));
  } else if (auth === "none") {
    app.get("/protected", (c) => c.json({ hello: "world" }));
  } else {
    throw new TypeError(`${auth} is not benchmarked on Hono`);
  }
  return new Promise((resolve) => {
    serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, resolve);
  });
}

const address =
  framework === "fastify" ? await startFastify() : framework === "express" ? await startExpress() : await startHono();
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
process.once("SIGTERM", () => process.exit(0));
