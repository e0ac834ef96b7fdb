import type { FastifyReply, FastifyRequest } from "fastify";
import { errorAnswerOf, INSUFFICIENT_SCOPE } from "../core/http-errors.js";
import type { AuthService, Principal } from "../service/auth-service.js";
import { requirePrincipal } from "./request-context.js";

/**
 * Route options guarding a route by a bearer token that carries `role`: without a valid token
 * the answer is 401 (an `access_token_*` code), with one lacking the role 403
 * `insufficient_scope` (RFC 6750 §3.1). Authentication runs before validation, so a caller
 * without the role learns nothing about the route's body.
 *
 * The role must be in the token AND still be the user's: roles are read from the database on
 * every guarded request, so an admin whose role is taken away loses these routes at once, not
 * when their access token expires (and cannot use the token's remaining minutes to give it back).
 */
export function requireRole(auth: AuthService, role: string) {
  const principals = new WeakMap<FastifyRequest, Principal>();
  return {
    preValidation: async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const principal = await requirePrincipal(auth, request);
      if (!principal.roles.includes(role) || !(await auth.me(principal)).roles.includes(role)) {
        const answer = errorAnswerOf(INSUFFICIENT_SCOPE);
        await reply.code(answer.status).headers(answer.headers).send(answer.body);
        return;
      }
      principals.set(request, principal);
    },
    /** The principal the guard admitted for this request. */
    principalOf: (request: FastifyRequest): Principal => principals.get(request)!,
  };
}
