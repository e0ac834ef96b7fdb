import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import helmet, { type FastifyHelmetOptions } from "@fastify/helmet";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from "fastify";
import type { SwaggerOptions } from "@fastify/swagger";
import { openServices, type TesseraServices } from "../service/tessera-services.js";
import { answerError } from "./error-handler.js";
import { registerMetrics } from "./metrics.js";
import { healthSchemas, REFRESH_COOKIE_SCHEME } from "./schemas.js";
import { refreshCookieShapeOf } from "./cookie-mode.js";
import {
  refuseUnknownOptions,
  resolveConfig,
  resolveServerConfig,
  SERVER_SETTINGS,
  setsServiceOptions,
  type TesseraConfig,
  type TesseraOptions,
  type TrustedProxies,
} from "./server-config.js";
import { tessera } from "./tessera-plugin.js";

/** Options of {@link createServer}. */
export interface ServerOptions extends TesseraOptions {
  /**
   * A configuration already resolved by `resolveConfig()`; no other Tessera option may be given
   * with it. Default: resolved from the other options.
   */
  readonly config?: Readonly<TesseraConfig>;
  /**
   * Serve these services instead of opening the configured store; their configuration is the
   * service's, so only the server's own options (host, port, limits, …) may be given with them.
   */
  readonly services?: TesseraServices;
  /** Time a client has to send a whole request, in milliseconds. Default 10 000. */
  readonly requestTimeoutMs?: number;
  /** A connection silent this long is closed, in milliseconds. Default 30 000. */
  readonly idleTimeoutMs?: number;
  /**
   * pino options or `false`; default: logs at `logLevel`, JSON lines, or human-readable (`pino-pretty`)
   * when standard output is a terminal, with credentials, passwords and tokens redacted.
   */
  readonly logger?: FastifyServerOptions["logger"];
}

function openApiOptions(issuer: string, cookieMode: boolean): SwaggerOptions {
  const cookieScheme = {
    [REFRESH_COOKIE_SCHEME]: {
      type: "apiKey",
      in: "cookie",
      name: refreshCookieShapeOf(issuer).name,
      description:
        "Cookie mode: the refresh token, HttpOnly. Requests carrying it need an allowed Origin and X-Tessera-CSRF: 1.",
    },
  } as const;
  return {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Tessera",
        version: "0.1.0",
        description:
          "Authentication token service: JWT access tokens, rotating refresh tokens, revocable sessions. Errors are {error, error_description}; see docs/errors.md.",
      },
      servers: [{ url: issuer }],
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          ...(cookieMode ? cookieScheme : {}),
        },
      },
    },
  };
}

// Errors before a request exists (malformed HTTP, oversized headers, timeouts) still answer
// in the contract's {error, error_description} shape.
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, reason, description] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "Request Timeout", "The request took too long to arrive."]
      : error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "The request headers are too large."]
        : [400, "Bad Request", "The request is not valid HTTP."];
  const body = JSON.stringify({ error: "invalid_request", error_description: description });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** What's logged of a request: never the query string (a token could hide there) nor credentials. */
function requestSerializer(request: { method: string; url: string; ip?: string }) {
  return { method: request.method, url: request.url.split("?")[0], ip: request.ip };
}

/**
 * What's logged of an error: its name, message, code, stack and cause, never its other properties,
 * where drivers and parsers keep parameters and bodies (a password, a token).
 */
function errorSerializer(error: unknown): { type: string; message: string; stack: string; [key: string]: unknown } {
  if (!(error instanceof Error)) return { type: typeof error, message: "", stack: "" };
  const { code } = error as { code?: unknown };
  return {
    type: error.name,
    message: error.message,
    ...(typeof code === "string" ? { code } : {}),
    stack: error.stack ?? "",
    ...(error.cause === undefined ? {} : { cause: errorSerializer(error.cause) }),
  };
}

// Bodies and headers are never logged (see the serializers); these paths catch a credential
// passed to a log call by mistake, at the top level or one object down. A request body is
// dropped whole, and an MFA login's `code` is removed at the top level only: one object down,
// `err.code` is the error code logs keep.
const SECRET_FIELDS = [
  "authorization",
  "cookie",
  '"set-cookie"',
  "body",
  "password",
  "current_password",
  "new_password",
  "token",
  "access_token",
  "refresh_token",
  "accessToken",
  "refreshToken",
  "mfa_token",
  "mfaToken",
  "recovery_code",
  "recoveryCode",
  "recovery_codes",
  "recoveryCodes",
  "client_secret",
  "secret",
];

/** Log paths the server's default logger removes: credentials, secrets and request bodies. */
export const REDACTED_LOG_PATHS: readonly string[] = Object.freeze([
  "req.headers.authorization",
  "req.headers.cookie",
  'res.headers["set-cookie"]',
  "code",
  ...SECRET_FIELDS.map((field) => (field.startsWith('"') ? `[${field}]` : field)),
  ...SECRET_FIELDS.map((field) => (field.startsWith('"') ? `*[${field}]` : `*.${field}`)),
]);

/** The server's pino options: JSON lines, or `pino-pretty` when standard output is a terminal. */
async function defaultLogger(logLevel: string): Promise<NonNullable<FastifyServerOptions["logger"]>> {
  const options = {
    level: logLevel,
    redact: { paths: [...REDACTED_LOG_PATHS], remove: true },
    serializers: { req: requestSerializer, err: errorSerializer },
  };
  if (!process.stdout.isTTY) return options;
  // In-process and synchronous, not a worker transport: the last lines before process.exit() are kept.
  const { default: pretty } = await import("pino-pretty");
  return { ...options, stream: pretty({ sync: true, translateTime: "SYS:HH:MM:ss.l" }) };
}

// Headers of the probe's answer that are not helmet's.
const PLAIN_HEADERS = new Set(["content-type", "content-length", "date", "connection", "keep-alive"]);

/**
 * helmet's security headers for `options`, computed once: they are the same on every answer,
 * and @fastify/helmet would rebuild them (the CSP parsed again) for each one, about 40 µs per
 * request (docs/benchmarks.md). Taken from helmet itself, answering one request in a throwaway
 * instance, so they stay exactly what helmet sets.
 */
async function securityHeadersOf(options: FastifyHelmetOptions): Promise<Readonly<Record<string, string>>> {
  const probe = Fastify({ logger: false });
  try {
    await probe.register(helmet, options);
    probe.get("/", () => "");
    const response = await probe.inject({ method: "GET", url: "/" });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers))
      if (typeof value === "string" && !PLAIN_HEADERS.has(name)) headers[name] = value;
    return Object.freeze(headers);
  } finally {
    await probe.close();
  }
}

// A client's X-Request-Id is kept only when it is short and safe to print; otherwise a fresh one.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

function requestIdOf(request: IncomingMessage): string {
  const given = request.headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Closes `app` as SIGTERM asks: accepts no more connections, lets the requests in flight finish
 * for up to `timeoutSeconds`, then closes the connections still open; `close()` then runs the
 * onClose hooks (store, Redis, metrics listener). Resolves `"drained"`, or `"forced"` when the
 * bound cut requests short; rejects when a hook fails.
 */
export async function closeGracefully(app: FastifyInstance, timeoutSeconds: number): Promise<"drained" | "forced"> {
  let outcome: "drained" | "forced" = "drained";
  const timer = setTimeout(() => {
    outcome = "forced";
    app.log.warn({ timeoutSeconds }, "requests still in flight at the shutdown timeout; closing their connections");
    app.server.closeAllConnections();
  }, timeoutSeconds * 1000);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
  return outcome;
}

/**
 * The standalone Tessera server: the plugin (with the account page at `/account`) plus `/healthz`, `/readyz`, `/metrics`, the API docs,
 * security headers and JSON 404s. Call `listen()` on the result; `close()` closes the store too,
 * and the metrics listener (`app.metricsServer`) when `metricsAddress` gives it one.
 */
export async function createServer(options: ServerOptions = {}): Promise<FastifyInstance> {
  const config = configOf(options);
  const app = Fastify({
    logger: options.logger ?? (await defaultLogger(config.logLevel)),
    requestIdHeader: false,
    genReqId: requestIdOf,
    trustProxy: trustProxyOf(config.trustProxy),
    bodyLimit: 16 * 1024,
    // A client gets 10 s to send a whole request: slow senders cannot hold sockets forever.
    requestTimeout: options.requestTimeoutMs ?? 10_000,
    // Node checks request deadlines on this interval (default 30 s); check often enough to matter.
    http: { connectionsCheckingInterval: Math.min(1000, Math.max(100, (options.requestTimeoutMs ?? 10_000) / 4)) },
    // A socket silent this long is closed, also mid-body, where requestTimeout does not reach.
    connectionTimeout: options.idleTimeoutMs ?? 30_000,
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      const status = error.code === "FST_ERR_MAX_PARAM_LENGTH" ? 414 : 400;
      void reply
        .code(status)
        .header("cache-control", "no-store")
        .send({ error: "invalid_request", error_description: "The request URL is malformed." });
    },
    clientErrorHandler: answerClientError,
    routerOptions: { maxParamLength: 200 },
  });
  if (typeof config.trustProxy === "number" && !isLoopback(config.host)) {
    app.log.warn(
      "TESSERA_TRUST_PROXY is a hop count: a client that reaches this port without the proxy can choose its own IP. " +
        "List the proxies' addresses instead unless only they can reach it.",
    );
  }
  if (config.developmentMode) {
    app.log.warn(
      "DEVELOPMENT MODE: TESSERA_SECRET is not set. Private keys are sealed with a key stored next to them in the database. Set TESSERA_SECRET (32+ characters) for any real use.",
    );
  }
  // API answers get the strictest CSP; the /docs page relaxes it for its own assets only.
  const securityHeaders = await securityHeadersOf({
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    frameguard: { action: "deny" },
    // RFC 6797 §7.2: HSTS only where clients reach us over TLS, which the issuer URL tells.
    hsts: config.issuer.startsWith("https://") ? { maxAge: 31_536_000, includeSubDomains: true } : false,
  });
  app.addHook("onRequest", (request, reply, done) => {
    reply.headers(securityHeaders);
    reply.header("x-request-id", request.id);
    done();
  });
  // Once closing, each answer ends its keep-alive connection, so the drain after SIGTERM ends with
  // the last request in flight, not with the clients' idle timeouts.
  let closing = false;
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (closing) reply.header("connection", "close");
    done(null, payload);
  });
  const allowedMethodsOf = recordRoutes(app);
  const services = options.services ?? (await openServices(config, app.log));
  if (!options.services) app.addHook("onClose", () => services.close());

  // The API docs' packages are loaded only when the docs are served.
  if (config.docs)
    await app.register((await import("@fastify/swagger")).default, openApiOptions(config.issuer, config.cookieMode));
  app.decorateRequest("tesseraErrorCode", null);
  registerMetrics(app, services.revocations, config.metricsAddress, services.audit);
  await app.register(tessera, {
    services,
    rateLimitPerMinute: config.rateLimitPerMinute,
    ipLoginFailuresPerHour: config.ipLoginFailuresPerHour,
    accountFailuresBeforeDelay: config.accountFailuresBeforeDelay,
    accountMaxDelay: config.accountMaxDelaySeconds,
    cookieMode: config.cookieMode,
    ...(config.cookieOrigins === null ? {} : { cookieOrigins: config.cookieOrigins }),
    accountPage: true,
  });
  if (config.docs) {
    await app.register((await import("@fastify/swagger-ui")).default, {
      routePrefix: "/docs",
      staticCSP: true,
      transformStaticCSP: () =>
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; " +
        "frame-ancestors 'none'",
    });
    app.get("/openapi.json", { schema: { hide: true } }, (_request, reply) =>
      reply.header("cache-control", "no-cache").send(app.swagger()),
    );
  }

  app.get("/healthz", { schema: healthSchemas.liveness }, () => ({ status: "ok" }));
  app.get("/readyz", { schema: healthSchemas.readiness }, async (request, reply) => {
    try {
      await services.checkReady();
      return { status: "ready" };
    } catch (error) {
      request.log.warn({ err: error instanceof Error ? error.message : "unknown" }, "not ready");
      return reply.code(503).send({ status: "unavailable" });
    }
  });

  app.setNotFoundHandler((request, reply) => {
    const allowed = allowedMethodsOf(request.url);
    if (allowed.length === 0) return reply.code(404).send({ error: "not_found", error_description: "No such route." });
    return reply
      .code(405)
      .header("allow", allowed.join(", "))
      .send({
        error: "invalid_request",
        error_description: `${request.method} is not allowed here; use ${allowed.join(" or ")}.`,
      });
  });
  app.setErrorHandler(answerError);
  return app;
}

/** Fastify's `trustProxy` for `trusted`. */
function trustProxyOf(trusted: TrustedProxies): false | string[] | ((address: string, hop: number) => boolean) {
  if (trusted === false) return false;
  // Fastify ignores bare hop counts; this believes the nearest `trusted` hops, counted from the socket.
  if (typeof trusted === "number") return (_address, hop) => hop < trusted;
  return [...trusted];
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

const OWN_OPTIONS = ["config", "services", "requestTimeoutMs", "idleTimeoutMs", "logger"];
const SERVER_OPTION_NAMES = new Set(Object.keys(SERVER_SETTINGS));

/** The one configuration of a server: given, taken from the services given, or resolved once here. */
function configOf(options: ServerOptions): Readonly<TesseraConfig> {
  const settings = Object.fromEntries(
    Object.entries(options).filter(([name]) => !OWN_OPTIONS.includes(name)),
  ) as TesseraOptions;
  if (options.config !== undefined) {
    if (options.services !== undefined || Object.keys(settings).length > 0) {
      throw new TypeError("config: pass either a resolved config or options, not both");
    }
    return options.config;
  }
  if (options.services === undefined) return resolveConfig(settings);
  if (setsServiceOptions(settings))
    throw new TypeError("services: the service's options come from services.config; pass only server options");
  refuseUnknownOptions(settings, SERVER_OPTION_NAMES);
  return Object.freeze({ ...options.services.config, ...resolveServerConfig(settings) });
}

/**
 * Remembers every route as it is added, so that a known path asked with the wrong method can
 * answer 405 with `Allow` (RFC 9110 §15.5.6) instead of 404. Returns the lookup.
 */
function recordRoutes(app: FastifyInstance): (url: string) => string[] {
  const routes: { pattern: RegExp; methods: string[] }[] = [];
  app.addHook("onRoute", (route) => {
    const source = route.url
      .split("/")
      .map((part) =>
        part.startsWith(":") ? "[^/]+" : part === "*" ? ".*" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
      )
      .join("/");
    routes.push({ pattern: new RegExp(`^${source}$`), methods: [route.method].flat() });
  });
  return (url) => {
    const raw = url.split("?", 1)[0]!;
    let path = raw;
    try {
      path = decodeURIComponent(raw); // as the router matched it
    } catch {
      // malformed escapes: match the raw path
    }
    const methods = new Set(routes.filter((route) => route.pattern.test(path)).flatMap((route) => route.methods));
    return [...methods].sort();
  };
}
