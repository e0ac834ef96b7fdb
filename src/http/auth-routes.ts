import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { isTesseraError, TesseraError } from "../core/errors.js";
import { HTTP_ERRORS } from "../core/http-errors.js";
import type { AccountService } from "../service/account-service.js";
import type { AuthService } from "../service/auth-service.js";
import type { MfaService } from "../service/mfa-service.js";
import { normalizeUsername } from "../service/credential-policy.js";
import { type RefreshCookie, refreshTokenOf } from "./cookie-mode.js";
import type { RateLimits } from "./rate-limits.js";
import { arrivalContextOf, bearerGuard, contextOf, onlyMediaType, sendTokens, sessionJson } from "./request-context.js";
import { AUTH_BODY_LIMIT, authCookieSchemas, authSchemas } from "./schemas.js";

interface Credentials {
  username: string;
  password: string;
}

interface Registration extends Credentials {
  email?: string;
}

interface RefreshTokenBody {
  /** Required unless cookie mode is on and the cookie carries the token. */
  refresh_token?: string;
}

/** Options of {@link registerAuthRoutes}. */
export interface AuthRoutesOptions {
  readonly auth: AuthService;
  readonly limits: RateLimits;
  /** Cookie mode's refresh-token cookie; `null` (default) when cookie mode is off. */
  readonly cookie?: RefreshCookie | null;
  /** The user's own account, for `/auth/me`'s email and capabilities; default none. */
  readonly account?: AccountService | null;
  /** The second factor, for `/auth/me`'s `mfa`; default none. */
  readonly mfa?: MfaService | null;
}

/** Registers the `/auth/*` routes of DESIGN.md's HTTP contract. */
export function registerAuthRoutes(
  app: FastifyInstance,
  { auth, limits, cookie = null, account = null, mfa = null }: AuthRoutesOptions,
): void {
  const perClient = limits.perClient ? { onRequest: limits.perClient } : {};
  const jsonOnly = onlyMediaType("application/json");
  const schemas = cookie === null ? authSchemas : authCookieSchemas;

  /** The refresh token of a refresh or logout: the body's, or in cookie mode the cookie's. */
  const presentedToken = (request: FastifyRequest<{ Body: RefreshTokenBody }>): string | null =>
    cookie === null
      ? (request.body.refresh_token ?? null)
      : refreshTokenOf(cookie.read(request), request.body.refresh_token);

  app.post<{ Body: Registration }>(
    "/auth/register",
    { schema: schemas.register, bodyLimit: AUTH_BODY_LIMIT, ...perClient, preParsing: jsonOnly },
    async (request, reply) => {
      const { username, password, email } = request.body;
      const options = email === undefined ? {} : { email };
      const user = await auth.register(username, password, contextOf(request), options);
      return reply.code(201).send({ id: user.id, username: user.username });
    },
  );

  app.post<{ Body: Credentials }>(
    "/auth/login",
    { schema: schemas.login, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly },
    async (request, reply) => {
      const { username, password } = request.body;
      const result = await limits.login(request.ip, normalizeUsername(username), () =>
        auth.signIn(username, password, contextOf(request)),
      );
      if (result.kind === "tokens") return sendTokens(reply, result.tokens, cookie);
      // The shape Auth0 uses: an error body carrying the second step's token, and no cookie.
      return reply.code(HTTP_ERRORS.mfa_required.status).header("cache-control", "no-store").send({
        error: HTTP_ERRORS.mfa_required.error,
        error_description: HTTP_ERRORS.mfa_required.description,
        mfa_token: result.challenge.mfaToken,
        expires_in: result.challenge.expiresIn,
      });
    },
  );

  app.post<{ Body: RefreshTokenBody }>(
    "/auth/refresh",
    { schema: schemas.refresh, bodyLimit: AUTH_BODY_LIMIT, ...perClient, preParsing: jsonOnly },
    async (request, reply) => {
      const token = presentedToken(request);
      if (token === null) throw new TesseraError("refresh_token_missing", "neither the cookie nor the body has one");
      // A client that sent the token in the body without the cookie holds it itself: the successor
      // goes back the same way.
      const answerBy = cookie !== null && cookie.read(request) !== null ? cookie : null;
      try {
        return sendTokens(reply, await auth.refresh(token, arrivalContextOf(request)), answerBy);
      } catch (error) {
        // A refused refresh token will never work again: drop the browser's copy with the refusal.
        if (answerBy !== null && isTesseraError(error) && HTTP_ERRORS[error.code].error === "invalid_grant")
          answerBy.clear(reply);
        throw error;
      }
    },
  );

  app.post<{ Body: RefreshTokenBody }>(
    "/auth/logout",
    { schema: schemas.logout, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly },
    async (request, reply) => {
      const token = presentedToken(request);
      if (token !== null) await auth.logout(token, contextOf(request));
      cookie?.clear(reply);
      return reply.code(204).send();
    },
  );

  const { preValidation, principalOf } = bearerGuard(auth);
  const bearer = { preValidation };

  app.post(
    "/auth/logout-all",
    { schema: schemas.logoutAll, bodyLimit: AUTH_BODY_LIMIT, ...bearer },
    async (request, reply) => {
      await auth.logoutAll(principalOf(request), contextOf(request));
      cookie?.clear(reply);
      return reply.code(204).send();
    },
  );

  app.post(
    "/auth/logout-others",
    {
      schema: schemas.logoutOthers,
      bodyLimit: AUTH_BODY_LIMIT,
      // No body at all is the same as `{}`: the schema then checks that nothing else came.
      preValidation: [
        preValidation,
        (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
          request.body ??= {};
          done();
        },
      ],
    },
    async (request) => ({ revoked: await auth.logoutOthers(principalOf(request), contextOf(request)) }),
  );

  app.get("/auth/me", { schema: schemas.me, ...bearer }, async (request) => {
    const principal = principalOf(request);
    const user = await auth.me(principal);
    const second = mfa === null ? {} : { mfa: { totp: await mfa.isEnabled(principal.userId) } };
    if (account === null) return { ...user, ...second };
    const status = await account.emailStatus(principal);
    return {
      ...user,
      email: status.email,
      email_verified: status.emailVerified,
      capabilities: { email: status.mailEnabled },
      ...second,
    };
  });

  app.get("/auth/sessions", { schema: schemas.sessions, ...bearer }, async (request) => {
    const sessions = await auth.listSessions(principalOf(request));
    return {
      sessions: sessions.map((session) => ({ ...sessionJson(session), current: session.current })),
    };
  });

  app.delete<{ Params: { id: string } }>(
    "/auth/sessions/:id",
    { schema: schemas.revokeSession, ...bearer },
    async (request, reply) => {
      await auth.revokeSession(principalOf(request), request.params.id, contextOf(request));
      return reply.code(204).send();
    },
  );
}
