import formbody from "@fastify/formbody";
import { Ajv } from "ajv";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { resolveServiceConfig, SERVICE_OPTION_NAMES, type ServiceOptions } from "../service/config.js";
import { KEY_RELOAD_INTERVAL } from "../service/signing-keys.js";
import { openServices, type TesseraServices } from "../service/tessera-services.js";
import { registerAccountPageRoutes } from "./account-page-routes.js";
import { registerAccountRoutes } from "./account-routes.js";
import { registerAuditRoutes } from "./audit-routes.js";
import { registerAdminRoutes } from "./admin-routes.js";
import { registerAuthRoutes } from "./auth-routes.js";
import { registerCookieMode } from "./cookie-mode.js";
import { answerError } from "./error-handler.js";
import { registerIntrospectionRoutes } from "./introspection-routes.js";
import { registerMfaRoutes } from "./mfa-routes.js";
import { registerOAuthRoutes } from "./oauth-routes.js";
import { RateLimits } from "./rate-limits.js";
import { registerRevocationRoutes } from "./revocation-routes.js";
import {
  COOKIE_OPTION_NAMES,
  type CookieModeOptions,
  RATE_LIMIT_OPTION_NAMES,
  type RateLimitOptions,
  refuseUnknownOptions,
  resolveCookieModeConfig,
  resolveRateLimitConfig,
  SERVER_SETTINGS,
  setsServiceOptions,
} from "./server-config.js";

/**
 * Options of the {@link tessera} Fastify plugin: the service's, the rate limits (as the
 * standalone server's `TESSERA_RATE_LIMIT` and the other limits; defaults alike) and these.
 */
export interface TesseraPluginOptions extends ServiceOptions, RateLimitOptions, CookieModeOptions {
  /**
   * The services to serve; no service option may be given with them. When absent the plugin
   * opens the configured store and creates them, and closes both with the app.
   */
  readonly services?: TesseraServices;
  /** Absolute URL under which these routes are reachable. Default: the issuer. */
  readonly baseUrl?: string;
  /**
   * Also serve the account page at `GET /account` (under the plugin's prefix), where mailed links
   * point. It needs `cookieMode`; without it the page answers 404. Default false.
   */
  readonly accountPage?: boolean;
}

// Fastify hands its own register() options (prefix, logLevel…) to the plugin too.
const REGISTER_OPTIONS = ["prefix", "logLevel", "logSerializers"];
const OWN_OPTIONS: readonly string[] = [
  "services",
  "baseUrl",
  "accountPage",
  ...RATE_LIMIT_OPTION_NAMES,
  ...COOKIE_OPTION_NAMES,
];
const PLUGIN_OPTION_NAMES = new Set<string>([...OWN_OPTIONS, ...SERVICE_OPTION_NAMES, ...REGISTER_OPTIONS]);

/** Opens the plugin's own services, or checks that none of their options came with given ones. */
async function servicesOf(
  app: FastifyInstance,
  options: TesseraPluginOptions,
): Promise<{ services: TesseraServices; owned: boolean }> {
  refuseUnknownOptions(options, PLUGIN_OPTION_NAMES);
  if (options.services !== undefined) {
    if (setsServiceOptions(options))
      throw new TypeError("services: the service's options come from services.config; drop the others");
    return { services: options.services, owned: false };
  }
  const settings = Object.fromEntries(
    Object.entries(options).filter(([name]) => !REGISTER_OPTIONS.includes(name) && !OWN_OPTIONS.includes(name)),
  );
  const config = resolveServiceConfig(
    settings,
    `http://${SERVER_SETTINGS.host.default}:${SERVER_SETTINGS.port.default}`,
  );
  return { services: await openServices(config, app.log), owned: true };
}

// Strict validation regardless of the host app's Ajv settings: no type coercion, and
// `additionalProperties: false` rejects rather than strips.
const ajv = new Ajv({
  allErrors: false,
  coerceTypes: false,
  removeAdditional: false,
  useDefaults: false,
  strict: false,
});
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
 * The Fastify plugin serving Tessera's `/auth/*`, `/oauth/*`, `/.well-known/*` and `/admin/*` routes.
 * Encapsulated: its error handler, validator and hooks apply to its own routes only.
 */
export const tessera: FastifyPluginAsync<TesseraPluginOptions> = async (app: FastifyInstance, options) => {
  const { services, owned } = await servicesOf(app, options);
  if (owned) app.addHook("onClose", () => services.close());
  const { config } = services;
  const limits = RateLimits.open(
    resolveRateLimitConfig(Object.fromEntries(RATE_LIMIT_OPTION_NAMES.map((name) => [name, options[name]]))),
    { redisUrl: config.redisUrl, logger: app.log },
  );
  app.addHook("onClose", () => limits.close());

  // Pick up keys rotated by another instance or `tessera keys rotate`, and advance the key
  // schedule; a random interval each round keeps instances started together from ticking together.
  let keyReload: NodeJS.Timeout | undefined;
  let closed = false;
  const scheduleKeyReload = () => {
    const { minSeconds, maxSeconds } = KEY_RELOAD_INTERVAL;
    const delayMs = (minSeconds + Math.random() * (maxSeconds - minSeconds)) * 1000;
    keyReload = setTimeout(() => {
      void services.keys
        .reload()
        .catch((error: unknown) =>
          app.log.warn({ err: error instanceof Error ? error.message : "unknown" }, "key reload failed"),
        )
        .finally(() => {
          if (!closed) scheduleKeyReload();
        });
    }, delayMs);
    keyReload.unref();
  };
  scheduleKeyReload();
  app.addHook("onClose", (_instance, done) => {
    closed = true;
    clearTimeout(keyReload);
    done();
  });

  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  if (!app.hasRequestDecorator("tesseraErrorCode")) app.decorateRequest("tesseraErrorCode", null);
  if (!app.hasContentTypeParser("application/x-www-form-urlencoded")) await app.register(formbody);
  useStrictUtf8Json(app);
  app.setErrorHandler(answerError);

  // Answers carrying tokens or personal data must never be cached (RFC 6749 §5.1).
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (!reply.hasHeader("cache-control")) void reply.header("cache-control", "no-store");
    done(null, payload);
  });

  const baseUrl = (options.baseUrl ?? config.issuer).replace(/\/+$/, "");
  const cookieMode = resolveCookieModeConfig({ cookieMode: options.cookieMode, cookieOrigins: options.cookieOrigins });
  const cookie = cookieMode.cookieMode ? await registerCookieMode(app, { config: cookieMode, baseUrl }) : null;
  registerAuthRoutes(app, { auth: services.auth, limits, cookie, account: services.account, mfa: services.mfa });
  registerMfaRoutes(app, { auth: services.auth, mfa: services.mfa, limits, cookie });
  registerAccountRoutes(app, { auth: services.auth, account: services.account, limits, cookieMode: cookie !== null });
  registerOAuthRoutes(app, { services, limits, baseUrl });
  registerIntrospectionRoutes(app, { auth: services.auth, introspection: services.introspection });
  registerRevocationRoutes(app, { revocations: services.revocations, redisUrl: config.redisUrl });
  registerAuditRoutes(app, { auth: services.auth, audit: services.audit });
  registerAdminRoutes(app, { auth: services.auth, admin: services.admin });
  const accountPage = options.accountPage ?? false;
  if (typeof accountPage !== "boolean") throw new TypeError("accountPage must be true or false");
  if (accountPage)
    await registerAccountPageRoutes(app, { cookieMode: cookie !== null, registration: config.registration });
};
