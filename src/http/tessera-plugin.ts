import formbody from "@fastify/formbody";
import rateLimit from "@fastify/rate-limit";
import { Ajv } from "ajv";
import { Redis } from "ioredis";
import type { FastifyError, FastifyInstance, FastifyPluginAsync } from "fastify";
import { systemClock } from "../core/clock.js";
import { AuthService } from "../service/auth-service.js";
import { resolveConfig, type TesseraOptions } from "../service/config.js";
import type { ServiceLogger } from "../service/key-ring.js";
import { openStore } from "../store/open-store.js";
import { registerAuthRoutes } from "./auth-routes.js";
import { bearerChallenge, httpErrorOf } from "./error-map.js";
import { isOAuthRoute, registerOAuthRoutes } from "./oauth-routes.js";

/** Options of the {@link tessera} Fastify plugin. */
export interface TesseraPluginOptions extends TesseraOptions {
  /** A service to serve; when absent the plugin opens the store and creates one, and closes both with the app. */
  readonly service?: AuthService;
  /** Absolute URL under which these routes are reachable. Default: the issuer. */
  readonly baseUrl?: string;
}

// Strict validation regardless of the host app's Ajv settings: no type coercion, and
// `additionalProperties: false` rejects rather than strips.
const ajv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });
ajv.addFormat("date-time", true);

/** Opens the store named by the options, migrates it, and builds the service. */
export async function createAuthService(options: TesseraOptions, logger: ServiceLogger): Promise<AuthService> {
  const config = resolveConfig(options);
  const store = openStore({
    url: config.databaseUrl,
    poolSize: config.databasePoolSize,
    onPoolError: (error) => logger.warn({ err: error.message }, "database connection error"),
  });
  try {
    await store.migrate();
    return await AuthService.create({ store, config, clock: systemClock, logger });
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}

/**
 * The Fastify plugin serving Tessera's `/auth/*`, `/oauth/*` and `/.well-known/*` routes.
 * Encapsulated: its error handler, validator and hooks apply to its own routes only.
 */
export const tessera: FastifyPluginAsync<TesseraPluginOptions> = async (app: FastifyInstance, options) => {
  const ownsService = options.service === undefined;
  const service = options.service ?? (await createAuthService(options, app.log));
  if (ownsService) app.addHook("onClose", () => service.close());
  const config = service.config;

  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  app.decorateRequest("tesseraPrincipal", null);
  if (!app.hasContentTypeParser("application/x-www-form-urlencoded")) await app.register(formbody);
  if (!app.hasDecorator("rateLimit")) {
    let redis: Redis | undefined;
    if (config.redisUrl) {
      // Fail fast while Redis is away (no offline queue); limits are then skipped, not 500s.
      redis = new Redis(config.redisUrl, { connectTimeout: 1000, maxRetriesPerRequest: 1, enableOfflineQueue: false });
      redis.on("error", (error: Error) => app.log.warn({ err: error.message }, "redis (rate limits) error"));
      const client = redis;
      app.addHook("onClose", async () => {
        await client.quit().catch(() => client.disconnect());
      });
    }
    await app.register(rateLimit, {
      global: false,
      ...(redis ? { redis, nameSpace: "tessera-rate-limit:", skipOnError: true } : {}),
    });
  }

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const shape = httpErrorOf(error, isOAuthRoute(request.routeOptions.url));
    if (shape.status >= 500) request.log.error({ err: error }, "request failed");
    if (shape.bearer) void reply.header("www-authenticate", bearerChallenge(shape));
    if (shape.status === 503) void reply.header("retry-after", "5");
    return reply.code(shape.status).header("cache-control", "no-store").send({ error: shape.error, error_description: shape.description });
  });

  // Answers carrying tokens or personal data must never be cached (RFC 6749 §5.1).
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (!reply.hasHeader("cache-control")) void reply.header("cache-control", "no-store");
    done(null, payload);
  });

  const limit = config.rateLimitPerMinute > 0 ? { max: config.rateLimitPerMinute, timeWindow: "1 minute" } : false;
  const baseUrl = (options.baseUrl ?? config.issuer).replace(/\/+$/, "");
  registerAuthRoutes(app, { service, rateLimit: limit });
  registerOAuthRoutes(app, { service, rateLimit: limit, baseUrl });
  // revocation feed: registered below
};
