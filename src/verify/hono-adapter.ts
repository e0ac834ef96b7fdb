import type { Context, MiddlewareHandler } from "hono";
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

export { type AuthMiddlewareOptions } from "./http-answer.js";

/** The Hono environment the middleware provides: `c.get("auth")` holds the verified claims. */
export interface TesseraAuthEnv {
  Variables: { auth: AccessTokenClaims; tesseraRealm: string };
}

function send(c: Context, answer: AuthAnswer): Response {
  return c.json(answer.body, answer.status as 401, answer.headers);
}

/**
 * Hono middleware: verifies the bearer token, sets `c.get("auth")` to its claims, and answers
 * 401 (RFC 6750 §3) or 403 `insufficient_scope` when `roles` / `scopes` are not all met.
 * Throws `TypeError` at creation for bad options.
 */
export function tesseraAuth(options: AuthMiddlewareOptions): MiddlewareHandler<TesseraAuthEnv> {
  const { authenticate, realm, requirements } = resolveAuthMiddlewareOptions(options);
  return async (c, next) => {
    let claims: AccessTokenClaims;
    try {
      const result = authenticate(c.req.header("authorization"));
      // Awaited only when keys must be fetched: otherwise no extra microtask turn.
      claims = result instanceof Promise ? await result : result;
    } catch (error) {
      return send(c, answerForError(error, realm));
    }
    c.set("auth", claims);
    c.set("tesseraRealm", realm);
    if (!meetsRequirements(claims, requirements)) return send(c, insufficientScopeAnswer(realm, requirements));
    await next();
  };
}

function guard(check: GuardCheck): MiddlewareHandler<TesseraAuthEnv> {
  const misconfigured = unauthenticatedGuard();
  return async (c, next) => {
    const claims = c.get("auth") as AccessTokenClaims | undefined;
    const realm = c.get("tesseraRealm") as string | undefined;
    // Without tesseraAuth() before it, a guard refuses: it never lets an unauthenticated request through.
    if (claims === undefined || realm === undefined) return send(c, misconfigured());
    const refusal = check(claims, realm);
    if (refusal !== null) return send(c, refusal);
    await next();
  };
}

/** Middleware after `tesseraAuth()`: 403 `insufficient_scope` unless the token carries every role. */
export function requireRoles(...roles: string[]): MiddlewareHandler<TesseraAuthEnv> {
  return guard(requirementsCheck(resolveRequirements(roles, [])));
}

/** Middleware after `tesseraAuth()`: 403 `insufficient_scope` unless the token carries every scope. */
export function requireScopes(...scopes: string[]): MiddlewareHandler<TesseraAuthEnv> {
  return guard(requirementsCheck(resolveRequirements([], scopes)));
}

/**
 * Middleware after `tesseraAuth()`: 401 `insufficient_user_authentication` (RFC 9470 §3) unless
 * the token's `amr` lists `otp`, i.e. the session was opened with a second factor.
 */
export function requireMfa(): MiddlewareHandler<TesseraAuthEnv> {
  return guard(secondFactorCheck);
}
