import helmet from "@fastify/helmet";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import type { AuthService } from "../service/auth-service.js";
import { resolveConfig, type TesseraOptions } from "../service/config.js";
import swagger, { type SwaggerOptions } from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { httpErrorOf } from "./error-map.js";
import { registerMetrics } from "./metrics.js";
import { healthSchemas } from "./schemas.js";
import { createAuthService, tessera } from "./tessera-plugin.js";

/** Options of {@link createServer}. */
export interface ServerOptions extends TesseraOptions {
  /** Serve this service instead of opening the configured store. */
  readonly service?: AuthService;
  /** pino options or `false`; default: JSON logs at `logLevel`, secrets redacted. */
  readonly logger?: FastifyServerOptions["logger"];
}

const KEY_RELOAD_INTERVAL_MS = 60_000;

function openApiOptions(issuer: string): SwaggerOptions {
  return {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Tessera",
        version: "0.1.0",
        description: "Authentication token service: JWT access tokens, rotating refresh tokens, revocable sessions. Errors are {error, error_description}; see docs/errors.md.",
      },
      servers: [{ url: issuer }],
      components: { securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
    },
  };
}

/** What's logged of a request: never the query string (a token could hide there) nor credentials. */
function requestSerializer(request: { method: string; url: string; ip?: string }) {
  return { method: request.method, url: request.url.split("?")[0], ip: request.ip };
}

/**
 * The standalone Tessera server: the plugin plus `/healthz`, `/readyz`, security headers and
 * JSON 404s. Call `listen()` on the result; `close()` closes the store too.
 */
export async function createServer(options: ServerOptions = {}): Promise<FastifyInstance> {
  const config = resolveConfig(options);
  const app = Fastify({
    logger:
      options.logger ?? {
        level: config.logLevel,
        redact: { paths: ["req.headers.authorization", "req.headers.cookie", 'res.headers["set-cookie"]'], remove: true },
        serializers: { req: requestSerializer },
      },
    trustProxy: config.trustProxy,
    bodyLimit: 16 * 1024,
    // Request IDs are generated, never taken from a client header into logs.
    genReqId: undefined,
    routerOptions: { maxParamLength: 200 },
  });
  if (config.developmentMode) {
    app.log.warn(
      "DEVELOPMENT MODE: TESSERA_SECRET is not set. Private keys are sealed with a key stored next to them in the database. Set TESSERA_SECRET (32+ characters) for any real use.",
    );
  }
  const service = options.service ?? (await createAuthService(options, app.log));
  // Pick up keys rotated by another instance or `tessera keys rotate`.
  const keyReload = setInterval(() => {
    service.reloadKeys().catch((error: unknown) => app.log.warn({ err: error instanceof Error ? error.message : "unknown" }, "key reload failed"));
  }, KEY_RELOAD_INTERVAL_MS);
  keyReload.unref();
  app.addHook("onClose", async () => {
    clearInterval(keyReload);
    if (!options.service) await service.close();
  });

  // API answers get the strictest CSP; the /docs page relaxes it for its own assets only.
  await app.register(helmet, { contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } });
  await app.register(swagger, openApiOptions(config.issuer));
  app.decorateRequest("tesseraErrorCode", null);
  registerMetrics(app, service);
  await app.register(tessera, { service });
  await app.register(swaggerUi, {
    routePrefix: "/docs",
    staticCSP: true,
    transformStaticCSP: () => "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
  });
  app.get("/openapi.json", { schema: { hide: true } }, (_request, reply) => reply.header("cache-control", "no-cache").send(app.swagger()));

  app.get("/healthz", { schema: healthSchemas.liveness }, () => ({ status: "ok" }));
  app.get("/readyz", { schema: healthSchemas.readiness }, async (request, reply) => {
    try {
      await service.checkReady();
      return { status: "ready" };
    } catch (error) {
      request.log.warn({ err: error instanceof Error ? error.message : "unknown" }, "not ready");
      return reply.code(503).send({ status: "unavailable" });
    }
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: "not_found", error_description: `No route ${request.method} ${request.url.split("?")[0]}.` }),
  );
  app.setErrorHandler((error, request, reply) => {
    const shape = httpErrorOf(error);
    if (shape.status >= 500) request.log.error({ err: error }, "request failed");
    return reply.code(shape.status).send({ error: shape.error, error_description: shape.description });
  });
  return app;
}
