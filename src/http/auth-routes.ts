import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AuthService, Principal } from "../service/auth-service.js";
import { normalizeUsername } from "../service/credential-policy.js";
import { contextOf, onlyMediaType, requirePrincipal, sendTokens } from "./request-context.js";
import { AUTH_BODY_LIMIT, authSchemas } from "./schemas.js";

interface Credentials {
  username: string;
  password: string;
}

interface RefreshTokenBody {
  refresh_token: string;
}

/** Route `config` values of @fastify/rate-limit, or `false` when limits are off. */
export type RateLimits =
  | {
      /** Login: `perMinute` attempts per client IP and username, so guessing one password is slow. */
      readonly perAccount: { rateLimit: Record<string, unknown> };
      /** Register, refresh, token: ten times `perMinute` per client IP. */
      readonly perClient: { rateLimit: Record<string, unknown> };
    }
  | false;

/** The rate limits for `perMinute` (0 turns them off). */
export function rateLimitsOf(perMinute: number): RateLimits {
  if (perMinute <= 0) return false;
  return {
    perAccount: {
      rateLimit: {
        max: perMinute,
        timeWindow: "1 minute",
        // After validation, so the key can include the username from the body.
        hook: "preHandler",
        keyGenerator: (request: FastifyRequest) => {
          const { username } = request.body as Partial<Credentials>;
          return `${request.ip}\u0000${normalizeUsername(typeof username === "string" ? username : "")}`;
        },
      },
    },
    perClient: { rateLimit: { max: perMinute * 10, timeWindow: "1 minute" } },
  };
}

/** Options of {@link registerAuthRoutes}. */
export interface AuthRoutesOptions {
  readonly auth: AuthService;
  readonly rateLimit: RateLimits;
}

/** Registers the `/auth/*` routes of DESIGN.md's HTTP contract. */
export function registerAuthRoutes(app: FastifyInstance, { auth, rateLimit }: AuthRoutesOptions): void {
  const perClient = rateLimit ? rateLimit.perClient : {};
  const perAccount = rateLimit ? rateLimit.perAccount : {};
  const jsonOnly = onlyMediaType("application/json");

  app.post<{ Body: Credentials }>(
    "/auth/register",
    { schema: authSchemas.register, bodyLimit: AUTH_BODY_LIMIT, config: perClient, preParsing: jsonOnly },
    async (request, reply) => {
      const user = await auth.register(request.body.username, request.body.password, contextOf(request));
      return reply.code(201).send({ id: user.id, username: user.username });
    },
  );

  app.post<{ Body: Credentials }>(
    "/auth/login",
    { schema: authSchemas.login, bodyLimit: AUTH_BODY_LIMIT, config: perAccount, preParsing: jsonOnly },
    async (request, reply) => {
      const tokens = await auth.login(request.body.username, request.body.password, contextOf(request));
      return sendTokens(reply, tokens);
    },
  );

  app.post<{ Body: RefreshTokenBody }>(
    "/auth/refresh",
    { schema: authSchemas.refresh, bodyLimit: AUTH_BODY_LIMIT, config: perClient, preParsing: jsonOnly },
    async (request, reply) => sendTokens(reply, await auth.refresh(request.body.refresh_token, contextOf(request))),
  );

  app.post<{ Body: RefreshTokenBody }>(
    "/auth/logout",
    { schema: authSchemas.logout, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly },
    async (request, reply) => {
      await auth.logout(request.body.refresh_token, contextOf(request));
      return reply.code(204).send();
    },
  );

  // Bearer routes authenticate before validating anything else: a request without a valid
  // token learns nothing but 401 (RFC 6750 §3).
  const principals = new WeakMap<FastifyRequest, Principal>();
  const bearer = {
    preValidation: async (request: FastifyRequest) => {
      principals.set(request, await requirePrincipal(auth, request));
    },
  };
  const principalOf = (request: FastifyRequest): Principal => principals.get(request)!;

  app.post(
    "/auth/logout-all",
    { schema: authSchemas.logoutAll, bodyLimit: AUTH_BODY_LIMIT, ...bearer },
    async (request, reply) => {
      await auth.logoutAll(principalOf(request), contextOf(request));
      return reply.code(204).send();
    },
  );

  app.get("/auth/me", { schema: authSchemas.me, ...bearer }, async (request) => auth.me(principalOf(request)));

  app.get("/auth/sessions", { schema: authSchemas.sessions, ...bearer }, async (request) => {
    const sessions = await auth.listSessions(principalOf(request));
    return {
      sessions: sessions.map((session) => ({
        id: session.id,
        created_at: session.createdAt.toISOString(),
        last_used_at: session.lastUsedAt.toISOString(),
        expires_at: session.expiresAt.toISOString(),
        user_agent: session.userAgent,
        ip: session.ip,
        current: session.current,
      })),
    };
  });

  app.delete<{ Params: { id: string } }>(
    "/auth/sessions/:id",
    { schema: authSchemas.revokeSession, ...bearer },
    async (request, reply) => {
      await auth.revokeSession(principalOf(request), request.params.id, contextOf(request));
      return reply.code(204).send();
    },
  );
}
