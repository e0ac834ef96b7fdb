import type { NextFunction, Request, RequestHandler, Response } from "express";
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

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Claims of the verified access token, set by `tesseraAuth()`. */
      auth?: AccessTokenClaims;
    }
  }
}

export { type AuthMiddlewareOptions } from "./http-answer.js";

const realms = new WeakMap<Request, string>();

function send(response: Response, answer: AuthAnswer): void {
  response.status(answer.status).set(answer.headers).json(answer.body);
}

/**
 * Express middleware: verifies the bearer token, sets `req.auth` to its claims, and answers
 * 401 (RFC 6750 §3) or 403 `insufficient_scope` when `roles` / `scopes` are not all met.
 * Throws `TypeError` at creation for bad options.
 */
export function tesseraAuth(options: AuthMiddlewareOptions): RequestHandler {
  const { authenticate, realm, requirements } = resolveAuthMiddlewareOptions(options);
  const admit = (request: Request, response: Response, claims: AccessTokenClaims, next: NextFunction) => {
    request.auth = claims;
    realms.set(request, realm);
    if (!meetsRequirements(claims, requirements)) return send(response, insufficientScopeAnswer(realm, requirements));
    next();
  };
  return (request: Request, response: Response, next: NextFunction) => {
    let claims: AccessTokenClaims | Promise<AccessTokenClaims>;
    try {
      claims = authenticate(request.headers.authorization);
    } catch (error) {
      return send(response, answerForError(error, realm));
    }
    // With the keys loaded the token is checked synchronously: no promise, no microtask turn.
    if (!(claims instanceof Promise)) return admit(request, response, claims, next);
    claims
      .then(
        (loaded) => admit(request, response, loaded, next),
        (error: unknown) => send(response, answerForError(error, realm)),
      )
      .catch(next);
  };
}

function guard(check: GuardCheck): RequestHandler {
  const misconfigured = unauthenticatedGuard();
  return (request: Request, response: Response, next: NextFunction) => {
    const realm = realms.get(request);
    // Without tesseraAuth() before it, a guard refuses: it never lets an unauthenticated request through.
    if (request.auth === undefined || realm === undefined) return send(response, misconfigured());
    const refusal = check(request.auth, realm);
    if (refusal !== null) return send(response, refusal);
    next();
  };
}

/** Middleware after `tesseraAuth()`: 403 `insufficient_scope` unless the token carries every role. */
export function requireRoles(...roles: string[]): RequestHandler {
  return guard(requirementsCheck(resolveRequirements(roles, [])));
}

/** Middleware after `tesseraAuth()`: 403 `insufficient_scope` unless the token carries every scope. */
export function requireScopes(...scopes: string[]): RequestHandler {
  return guard(requirementsCheck(resolveRequirements([], scopes)));
}

/**
 * Middleware after `tesseraAuth()`: 401 `insufficient_user_authentication` (RFC 9470 §3) unless
 * the token's `amr` lists `otp`, i.e. the session was opened with a second factor.
 */
export function requireMfa(): RequestHandler {
  return guard(secondFactorCheck);
}
