import formbody from "@fastify/formbody";
import rateLimit from "@fastify/rate-limit";
import { Ajv } from "ajv";
import { Redis } from "ioredis";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import type { AuthService } from "../service/auth-service.js";
import { createAuthService } from "../service/create-auth-service.js";
import type { TesseraOptions } from "../service/config.js";
import { rateLimitsOf, registerAuthRoutes } from "./auth-routes.js";
import { answerError } from "./error-handler.js";
import { registerOAuthRoutes } from "./oauth-routes.js";
import { registerRevocationRoutes } from "./revocation-routes.js";

const KEY_RELOAD_INTERVAL_MS = 60_000;

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

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * JSON bodies must be UTF-8 (RFC 8259 §8.1). Fastify's parser would let U+FFFD stand in for
 * bad bytes, making different byte strings one password; refuse them with 400 instead.
 */
function useStrictUtf8Json(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    let text: string;
    try {
      text = strictUtf8.decode(body as Buffer);
    } catch {
      done(Object.assign(new Error("the body is not valid UTF-8"), { statusCode: 400 }), undefined);
      return;
    }
    void parseJson(request, text, done);
  });
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

  // Pick up keys rotated by another instance or `tessera keys rotate`.
  const keyReload = setInterval(() => {
    service.reloadKeys().catch((error: unknown) => app.log.warn({ err: error instanceof Error ? error.message : "unknown" }, "key reload failed"));
  }, KEY_RELOAD_INTERVAL_MS);
  keyReload.unref();
  app.addHook("onClose", (_instance, done) => {
    clearInterval(keyReload);
    done();
  });

  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  if (!app.hasRequestDecorator("tesseraErrorCode")) app.decorateRequest("tesseraErrorCode", null);
  if (!app.hasContentTypeParser("application/x-www-form-urlencoded")) await app.register(formbody);
  useStrictUtf8Json(app);
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

  app.setErrorHandler(answerError);

  // Answers carrying tokens or personal data must never be cached (RFC 6749 §5.1).
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (!reply.hasHeader("cache-control")) void reply.header("cache-control", "no-store");
    done(null, payload);
  });

  const limit = rateLimitsOf(config.rateLimitPerMinute);
  const baseUrl = (options.baseUrl ?? config.issuer).replace(/\/+$/, "");
  registerAuthRoutes(app, { service, rateLimit: limit });
  registerOAuthRoutes(app, { service, rateLimit: limit, baseUrl });
  registerRevocationRoutes(app, { service, redisUrl: config.redisUrl });
};
