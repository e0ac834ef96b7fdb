import type { FastifyPluginCallback, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import type { AccessTokenClaims } from "../core/access-token.js";
import {
  answerForError,
  type AuthAnswer,
  type AuthMiddlewareOptions,
  type GuardCheck,
  insufficientScopeAnswer,
  unauthenticatedGuard,
  meetsRequirements,
  requirementsCheck,
  resolveAuthMiddlewareOptions,
  resolveRequirements,
  secondFactorCheck,
} from "./http-answer.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Claims of the verified access token, set by the `tesseraAuth` plugin; `null` before. */
    auth: AccessTokenClaims | null;
  }
}

export { type AuthMiddlewareOptions } from "./http-answer.js";

const realms = new WeakMap<FastifyRequest, string>();

function send(reply: FastifyReply, answer: AuthAnswer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/**
 * Fastify plugin: every route of the scope it is registered in needs a valid bearer token;
 * `request.auth` holds its claims. Answers 401 (RFC 6750 §3), or 403 `insufficient_scope` when
 * `roles` / `scopes` are not all met. Register it inside the scope of the protected routes:
 * `app.register(async (api) => { await api.register(tesseraAuth, { verifier }); api.get(…) })`.
 * Throws `TypeError` at registration for bad options.
 */
export const tesseraAuth: FastifyPluginCallback<AuthMiddlewareOptions> = (app, options, done) => {
  let resolved: ReturnType<typeof resolveAuthMiddlewareOptions>;
  try {
    resolved = resolveAuthMiddlewareOptions(options);
  } catch (error) {
    return done(error as TypeError);
  }
  const { authenticate, realm, requirements } = resolved;
  if (!app.hasRequestDecorator("auth")) app.decorateRequest("auth", null);
  const admit = (request: FastifyRequest, reply: FastifyReply, claims: AccessTokenClaims, next: () => void) => {
    request.auth = claims;
    realms.set(request, realm);
    // Answering ends the hook chain: `next` is called only to let the request through.
    if (!meetsRequirements(claims, requirements)) send(reply, insufficientScopeAnswer(realm, requirements));
    else next();
  };
  const refuse = (reply: FastifyReply, error: unknown) => void send(reply, answerForError(error, realm));
  // A callback hook, not an async one: with the keys loaded the token is checked synchronously and
  // the request goes on without a promise or a microtask turn.
  app.addHook("onRequest", (request, reply, next) => {
    let claims: AccessTokenClaims | Promise<AccessTokenClaims>;
    try {
      claims = authenticate(request.headers.authorization);
    } catch (error) {
      return refuse(reply, error);
    }
    if (claims instanceof Promise)
      claims.then(
        (loaded) => admit(request, reply, loaded, next),
        (error: unknown) => refuse(reply, error),
      );
    else admit(request, reply, claims, next);
  });
  done();
};
// Like fastify-plugin: the hook applies to the scope that registers the plugin, not only to the
// plugin's own child scope (Fastify's documented `skip-override` property).
Object.defineProperty(tesseraAuth, Symbol.for("skip-override"), { value: true });

function guard(check: GuardCheck): preHandlerAsyncHookHandler {
  const misconfigured = unauthenticatedGuard();
  return async (request, reply) => {
    const realm = realms.get(request);
    // Without the tesseraAuth plugin, a guard refuses: it never lets an unauthenticated request through.
    if (request.auth === null || request.auth === undefined || realm === undefined) return send(reply, misconfigured());
    const refusal = check(request.auth, realm);
    if (refusal !== null) return send(reply, refusal);
  };
}

/** Route `preHandler`: 403 `insufficient_scope` unless the token carries every role. */
export function requireRoles(...roles: string[]): preHandlerAsyncHookHandler {
  return guard(requirementsCheck(resolveRequirements(roles, [])));
}

/** Route `preHandler`: 403 `insufficient_scope` unless the token carries every scope. */
export function requireScopes(...scopes: string[]): preHandlerAsyncHookHandler {
  return guard(requirementsCheck(resolveRequirements([], scopes)));
}

/**
 * Route `preHandler`: 401 `insufficient_user_authentication` (RFC 9470 §3) unless the token's
 * `amr` lists `otp`, i.e. the session was opened with a second factor.
 */
export function requireMfa(): preHandlerAsyncHookHandler {
  return guard(secondFactorCheck);
}
