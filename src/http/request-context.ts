import type { FastifyReply, FastifyRequest, RequestPayload } from "fastify";
import { readBearerToken } from "../core/bearer.js";
import { type ErrorCode, TesseraError } from "../core/errors.js";
import type { AuthService, IssuedTokens, Principal } from "../service/auth-service.js";
import type { RequestContext } from "../service/request-context.js";
import type { SessionView } from "../service/views.js";
import type { RefreshCookie } from "./cookie-mode.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The code of the TesseraError this request was refused with, for metrics. */
    tesseraErrorCode: ErrorCode | null;
  }
}

/** The client address and user agent of a request. */
export function contextOf(request: FastifyRequest): RequestContext {
  const userAgent = request.headers["user-agent"];
  return { ip: request.ip || null, userAgent: typeof userAgent === "string" ? userAgent : null };
}

/**
 * {@link contextOf} with the request's arrival time, for the refresh routes' grace judgement:
 * taken as the handler starts, once the whole body has been received and parsed. Not earlier
 * (Fastify's reply clock starts at routing, before the body): a client holding a request open
 * must not be able to date it before a token's first use.
 */
export function arrivalContextOf(request: FastifyRequest): RequestContext {
  return { ...contextOf(request), receivedAt: performance.now() };
}

/**
 * Reads the bearer token from the `Authorization` header only (never the query or body) and
 * authenticates it. Throws `access_token_missing` or an `access_token_*` code.
 */
export async function requirePrincipal(auth: AuthService, request: FastifyRequest): Promise<Principal> {
  // Node keeps the first of repeated Authorization headers and drops the rest; refuse instead.
  if (countHeader(request.raw.rawHeaders, "authorization") > 1) {
    throw new TesseraError("access_token_malformed", "more than one Authorization header");
  }
  return auth.authenticate(readBearerToken(request.headers.authorization));
}

/**
 * Route options guarding a route by a bearer token ({@link requirePrincipal}): it is checked in
 * `preValidation`, before the body, so a request without a valid one learns nothing but 401
 * (RFC 6750 §3). `principalOf` gives the principal it admitted for a request.
 */
export function bearerGuard(auth: AuthService) {
  const principals = new WeakMap<FastifyRequest, Principal>();
  return {
    preValidation: async (request: FastifyRequest): Promise<void> => {
      principals.set(request, await requirePrincipal(auth, request));
    },
    /** The principal the guard admitted for this request. */
    principalOf: (request: FastifyRequest): Principal => principals.get(request)!,
  };
}

function countHeader(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name) count += 1;
  return count;
}

/**
 * Sends an RFC 6749 §5.1 token response; never cached (§5.1: `Cache-Control: no-store`). With a
 * `cookie` (cookie mode) the refresh token goes only into it, never into the body, which keeps
 * `refresh_token_expires_in`.
 */
export function sendTokens(
  reply: FastifyReply,
  tokens: IssuedTokens,
  cookie: RefreshCookie | null = null,
): FastifyReply {
  void reply.header("cache-control", "no-store").header("pragma", "no-cache");
  if (cookie !== null) {
    cookie.set(reply, tokens.refreshToken, tokens.refreshTokenExpiresIn);
    return reply.send({
      access_token: tokens.accessToken,
      token_type: "Bearer",
      expires_in: tokens.accessTokenExpiresIn,
      refresh_token_expires_in: tokens.refreshTokenExpiresIn,
    });
  }
  return reply.send({
    access_token: tokens.accessToken,
    token_type: "Bearer",
    expires_in: tokens.accessTokenExpiresIn,
    refresh_token: tokens.refreshToken,
    refresh_token_expires_in: tokens.refreshTokenExpiresIn,
  });
}

/**
 * A `preParsing` hook admitting only bodies of `mediaType` (415, or 400 on the RFC 6749
 * routes). JSON-only routes thereby refuse HTML-form posts, which a cross-site page could
 * send without a CORS preflight; the RFC 6749 routes refuse anything but form encoding.
 */
export function onlyMediaType(mediaType: string) {
  return (
    request: FastifyRequest,
    _reply: FastifyReply,
    payload: RequestPayload,
    done: (error: Error | null, payload?: RequestPayload) => void,
  ): void => {
    const header = request.headers["content-type"];
    const actual = typeof header === "string" ? (header.split(";")[0] ?? "").trim().toLowerCase() : "";
    if (actual !== mediaType)
      return done(Object.assign(new Error(`the body must be ${mediaType}`), { statusCode: 415 }));
    done(null, payload);
  };
}

/** A session's wire form, as `/auth/sessions` (which adds `current`) and the admin API answer it. */
export function sessionJson(session: SessionView) {
  return {
    id: session.id,
    created_at: session.createdAt.toISOString(),
    last_used_at: session.lastUsedAt.toISOString(),
    expires_at: session.expiresAt.toISOString(),
    user_agent: session.userAgent,
    ip: session.ip,
  };
}
