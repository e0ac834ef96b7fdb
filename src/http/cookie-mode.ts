import { timingSafeEqual } from "node:crypto";
import cookie from "@fastify/cookie";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { TesseraError } from "../core/errors.js";
import { isLoopbackHost } from "../core/http-url.js";
import type { CookieModeConfig } from "./server-config.js";

/** The header a cookie request must carry with the value `1`: a cross-site form cannot send it, and it forces a CORS preflight. */
export const CSRF_HEADER = "x-tessera-csrf";

/** The refresh-token cookie's name over http; over https it is `__Host-` + this. */
export const REFRESH_COOKIE_BASE_NAME = "tessera_refresh";

/** How long browsers may cache an answered CORS preflight, in seconds. */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Where the refresh-token cookie lives, derived from the URL the routes are reached under. */
export interface RefreshCookieShape {
  /** `__Host-tessera_refresh` over https, `tessera_refresh` over http. */
  readonly name: string;
  /** `/` over https (as `__Host-` requires), `<base path>/auth` over http. */
  readonly path: string;
}

/**
 * The cookie's name and path for routes reached under `baseUrl` (or, when it has no path, under
 * the plugin's `prefix`). Over https the `__Host-` prefix makes browsers refuse the cookie unless
 * it is `Secure`, host-only and `Path=/`, so a sibling subdomain cannot plant or shadow it; over
 * http (development) it is scoped to the `/auth` routes.
 */
export function refreshCookieShapeOf(baseUrl: string, prefix = ""): RefreshCookieShape {
  const url = new URL(baseUrl);
  if (url.protocol === "https:") return Object.freeze({ name: `__Host-${REFRESH_COOKIE_BASE_NAME}`, path: "/" });
  const basePath = url.pathname.replace(/\/+$/, "") || prefix;
  return Object.freeze({ name: REFRESH_COOKIE_BASE_NAME, path: `${basePath}/auth` });
}

/** The cookie side of the `/auth` routes in cookie mode. */
export interface RefreshCookie extends RefreshCookieShape {
  /** The refresh token the request's cookie carries, or `null`. */
  read(request: FastifyRequest): string | null;
  /** Sets the cookie to `token`, expiring with it (`maxAgeSeconds`: the refresh token's lifetime). */
  set(reply: FastifyReply, token: string, maxAgeSeconds: number): void;
  /** Tells the browser to drop the cookie. */
  clear(reply: FastifyReply): void;
}

/** Options of {@link registerCookieMode}. */
export interface CookieModeOptions {
  readonly config: CookieModeConfig;
  /** Absolute URL the routes are reached under (the issuer unless the plugin was given `baseUrl`). */
  readonly baseUrl: string;
}

/**
 * Turns on cookie mode in the plugin's scope: parses cookies, refuses state-changing `/auth/*`
 * requests that carry the cookie or come from a browser (an `Origin` header) unless the origin is
 * allowed and `X-Tessera-CSRF: 1` is present (`csrf_check_failed`), and answers CORS for allowed
 * origins other than the base URL's. Returns the cookie the auth routes read and write.
 */
export async function registerCookieMode(app: FastifyInstance, options: CookieModeOptions): Promise<RefreshCookie> {
  const { baseUrl } = options;
  const shape = refreshCookieShapeOf(baseUrl, app.prefix);
  const base = new URL(baseUrl);
  const allowed = new Set(options.config.cookieOrigins ?? [base.origin]);
  const crossOrigins = new Set([...allowed].filter((origin) => origin !== base.origin));
  if (base.protocol === "http:" && !isLoopbackHost(base.hostname)) {
    app.log.warn(
      "cookie mode over plain http: the refresh cookie is Secure, so browsers keep it only from https pages " +
        "(and from http://localhost); serve Tessera behind TLS and set an https issuer",
    );
  }
  if (!app.hasRequestDecorator("cookies")) await app.register(cookie);

  const authPrefix = `${app.prefix}/auth/`;
  const isAuthRoute = (request: FastifyRequest): boolean =>
    (request.routeOptions.url ?? "").startsWith(authPrefix) || request.routeOptions.url === `${app.prefix}/auth`;

  app.addHook("onRequest", async (request, reply) => {
    if (!isAuthRoute(request)) return;
    const origin = request.headers.origin;
    if (crossOrigins.size > 0) void reply.header("vary", "Origin");
    if (typeof origin === "string" && crossOrigins.has(origin)) {
      void reply
        .header("access-control-allow-origin", origin)
        .header("access-control-allow-credentials", "true")
        .header("access-control-expose-headers", "WWW-Authenticate, Retry-After, X-Request-Id");
    }
    if (SAFE_METHODS.has(request.method)) return;
    const carriesCookie = readCookie(request, shape.name) !== null;
    if (!carriesCookie && origin === undefined) return; // not a browser: nothing to forge
    // A browser sends Origin with every CORS and every POST request; SameSite=Strict alone does not
    // stop another origin of the same site (another port or subdomain), so check it here.
    if (typeof origin !== "string" || !allowed.has(origin)) {
      throw new TesseraError("csrf_check_failed", "the request's Origin is not allowed to use the cookie");
    }
    if (request.headers[CSRF_HEADER] !== "1") {
      throw new TesseraError("csrf_check_failed", `the ${CSRF_HEADER} header is missing`);
    }
  });

  if (crossOrigins.size > 0) {
    // Preflights for every /auth path, answered only for the allowed origins, never with `*`.
    const preflightPaths = new Set<string>();
    app.addHook("onRoute", (route) => {
      const methods = [route.method].flat();
      if (methods.includes("OPTIONS") || !route.url.startsWith(authPrefix) || preflightPaths.has(route.url)) return;
      preflightPaths.add(route.url);
      // route.url carries the prefix, which app.options() adds again.
      app.options(route.url.slice(app.prefix.length), { schema: { hide: true } }, async (request, reply) => {
        const origin = request.headers.origin;
        if (typeof origin !== "string" || !crossOrigins.has(origin)) {
          throw new TesseraError("csrf_check_failed", "preflight from an origin that is not allowed");
        }
        return reply
          .code(204)
          .header("access-control-allow-methods", "GET, POST, DELETE")
          .header("access-control-allow-headers", `Authorization, Content-Type, X-Request-Id, X-Tessera-CSRF`)
          .header("access-control-max-age", String(PREFLIGHT_MAX_AGE_SECONDS))
          .send();
      });
    });
  }

  const attributes = { path: shape.path, httpOnly: true, secure: true, sameSite: "strict" } as const;
  return Object.freeze({
    ...shape,
    read: (request: FastifyRequest) => readCookie(request, shape.name),
    set: (reply: FastifyReply, token: string, maxAgeSeconds: number) => {
      void reply.setCookie(shape.name, token, { ...attributes, maxAge: maxAgeSeconds });
    },
    clear: (reply: FastifyReply) => {
      void reply.clearCookie(shape.name, attributes);
    },
  });
}

function readCookie(request: FastifyRequest, name: string): string | null {
  const value = request.cookies?.[name];
  return typeof value === "string" && value !== "" ? value : null;
}

/**
 * The refresh token of a cookie-mode request: the cookie's or the body's. When both are present
 * they must be the same token (compared in constant time); otherwise the request is refused
 * with `invalid_request` and neither is used. `null` when neither is present.
 */
export function refreshTokenOf(fromCookie: string | null, fromBody: string | undefined): string | null {
  if (fromCookie === null) return fromBody ?? null;
  if (fromBody === undefined) return fromCookie;
  const a = Buffer.from(fromCookie);
  const b = Buffer.from(fromBody);
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new TesseraError("invalid_request", "the refresh_token in the body is not the one in the cookie");
  }
  return fromCookie;
}
