import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AuthService, Principal } from "../service/auth-service.js";
import { normalizeUsername } from "../service/credential-policy.js";
import type { RateLimits } from "./rate-limits.js";
import { contextOf, onlyMediaType, requirePrincipal, sendTokens } from "./request-context.js";
import { AUTH_BODY_LIMIT, authSchemas } from "./schemas.js";

interface Credentials {
  username: string;
  password: string;
}

interface RefreshTokenBody {
  refresh_token: string;
}

/** Options of {@link registerAuthRoutes}. */
export interface AuthRoutesOptions {
  readonly auth: AuthService;
  readonly limits: RateLimits;
}

/** Registers the `/auth/*` routes of DESIGN.md's HTTP contract. */
export function registerAuthRoutes(app: FastifyInstance, { auth, limits }: AuthRoutesOptions): void {
  const perClient = limits.perClient ? { onRequest: limits.perClient } : {};
  const jsonOnly = onlyMediaType("application/json");

  app.post<{ Body: Credentials }>(
    "/auth/register",
    { schema: authSchemas.register, bodyLimit: AUTH_BODY_LIMIT, ...perClient, preParsing: jsonOnly },
    async (request, reply) => {
      const user = await auth.register(request.body.username, request.body.password, contextOf(request));
      return reply.code(201).send({ id: user.id, username: user.username });
    },
  );

  app.post<{ Body: Credentials }>(
    "/auth/login",
    { schema: authSchemas.login, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly },
    async (request, reply) => {
      const { username, password } = request.body;
      const tokens = await limits.login(request.ip, normalizeUsername(username), () =>
        auth.login(username, password, contextOf(request)),
      );
      return sendTokens(reply, tokens);
    },
  );

  app.post<{ Body: RefreshTokenBody }>(
    "/auth/refresh",
    { schema: authSchemas.refresh, bodyLimit: AUTH_BODY_LIMIT, ...perClient, preParsing: jsonOnly },
    async (request, reply) =>
      sendTokens(reply, await auth.refresh(request.body.refresh_token, contextOf(request, reply))),
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
