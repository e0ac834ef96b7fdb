import type { FastifyInstance, FastifyRequest } from "fastify";
import { ADMIN_ROLE, type AdminActor, type AdminService } from "../service/admin-service.js";
import type { AuthService } from "../service/auth-service.js";
import type { AccountDetailsView, AccountView, ListedAccountView } from "../service/views.js";
import { adminSchemas } from "./admin-schemas.js";
import { contextOf, onlyMediaType, sessionJson } from "./request-context.js";
import { requireRole } from "./role-guard.js";
import { AUTH_BODY_LIMIT } from "./schemas.js";

/** Options of {@link registerAdminRoutes}. */
export interface AdminRoutesOptions {
  readonly auth: AuthService;
  readonly admin: AdminService;
}

interface UserParams {
  id: string;
}

interface ListQuery {
  search?: string;
  role?: string;
  disabled?: "true" | "false";
  limit?: string;
  cursor?: string;
}

function accountJson(user: AccountView) {
  return {
    id: user.id,
    username: user.username,
    roles: user.roles,
    created_at: user.createdAt.toISOString(),
    disabled_at: user.disabledAt?.toISOString() ?? null,
  };
}

function listedAccountJson(user: ListedAccountView) {
  return { ...accountJson(user), mfa: { totp: user.mfa.totp } };
}

function accountDetailsJson(user: AccountDetailsView) {
  return { ...listedAccountJson(user), open_sessions: user.openSessions };
}

/**
 * Registers the admin API, `/admin/users…`: every route needs a bearer token whose user holds
 * {@link ADMIN_ROLE} (401 without a valid token, 403 `insufficient_scope` without the role).
 */
export function registerAdminRoutes(app: FastifyInstance, { auth, admin }: AdminRoutesOptions): void {
  const guard = requireRole(auth, ADMIN_ROLE);
  const guarded = { preValidation: guard.preValidation };
  const json = { ...guarded, bodyLimit: AUTH_BODY_LIMIT, preParsing: onlyMediaType("application/json") };
  const actorOf = (request: FastifyRequest): AdminActor => ({
    by: guard.principalOf(request).userId,
    context: contextOf(request),
  });

  app.get<{ Querystring: ListQuery }>(
    "/admin/users",
    { schema: adminSchemas.listUsers, ...guarded },
    async (request) => {
      const { search, role, disabled, limit, cursor } = request.query;
      const page = await admin.listUsers({
        ...(search === undefined ? {} : { search }),
        ...(role === undefined ? {} : { role }),
        ...(disabled === undefined ? {} : { disabled: disabled === "true" }),
        ...(limit === undefined ? {} : { limit: Number(limit) }),
        ...(cursor === undefined ? {} : { cursor }),
      });
      return { users: page.users.map(listedAccountJson), next_cursor: page.nextCursor };
    },
  );

  app.post<{ Body: { username: string; password: string; roles?: string[] } }>(
    "/admin/users",
    { schema: adminSchemas.createUser, ...json },
    async (request, reply) => {
      const { username, password, roles } = request.body;
      const user = await admin.createUser(username, password, roles, actorOf(request));
      return reply.code(201).send(accountJson(user));
    },
  );

  app.get<{ Params: UserParams }>("/admin/users/:id", { schema: adminSchemas.showUser, ...guarded }, async (request) =>
    accountDetailsJson(await admin.showUser({ id: request.params.id })),
  );

  app.post<{ Params: UserParams }>(
    "/admin/users/:id/disable",
    { schema: adminSchemas.disableUser, ...guarded },
    async (request) => accountJson(await admin.disableUser({ id: request.params.id }, actorOf(request))),
  );

  app.post<{ Params: UserParams }>(
    "/admin/users/:id/enable",
    { schema: adminSchemas.enableUser, ...guarded },
    async (request) => accountJson(await admin.enableUser({ id: request.params.id }, actorOf(request))),
  );

  app.put<{ Params: UserParams; Body: { roles: string[] } }>(
    "/admin/users/:id/roles",
    { schema: adminSchemas.setRoles, ...json },
    async (request) =>
      accountJson(await admin.setUserRoles({ id: request.params.id }, request.body.roles, actorOf(request))),
  );

  app.put<{ Params: UserParams; Body: { password: string } }>(
    "/admin/users/:id/password",
    { schema: adminSchemas.setPassword, ...json },
    async (request, reply) => {
      await admin.setPassword({ id: request.params.id }, request.body.password, actorOf(request));
      return reply.code(204).send();
    },
  );

  // 204 also when TOTP was off: the user ends up without a second factor and without sessions either way.
  app.delete<{ Params: UserParams }>(
    "/admin/users/:id/mfa",
    { schema: adminSchemas.resetMfa, ...guarded },
    async (request, reply) => {
      await admin.resetMfa({ id: request.params.id }, actorOf(request));
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: UserParams }>(
    "/admin/users/:id",
    { schema: adminSchemas.deleteUser, ...guarded },
    async (request, reply) => {
      await admin.deleteUser({ id: request.params.id }, actorOf(request));
      return reply.code(204).send();
    },
  );

  app.get<{ Params: UserParams }>(
    "/admin/users/:id/sessions",
    { schema: adminSchemas.listSessions, ...guarded },
    async (request) => ({
      sessions: (await admin.listUserSessions({ id: request.params.id })).map(sessionJson),
    }),
  );

  app.delete<{ Params: UserParams & { sessionId: string } }>(
    "/admin/users/:id/sessions/:sessionId",
    { schema: adminSchemas.revokeSession, ...guarded },
    async (request, reply) => {
      const { id, sessionId } = request.params;
      await admin.revokeSession(sessionId, actorOf(request), { id });
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: UserParams }>(
    "/admin/users/:id/sessions",
    { schema: adminSchemas.revokeSessions, ...guarded },
    async (request) => ({ revoked: await admin.revokeUserSessions({ id: request.params.id }, actorOf(request)) }),
  );
}
