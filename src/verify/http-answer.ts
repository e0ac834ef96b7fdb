import type { AccessTokenClaims } from "../core/access-token.js";
import { isTesseraError } from "../core/errors.js";
import {
  DEFAULT_REALM,
  type ErrorAnswer,
  errorAnswerOf,
  HTTP_ERRORS,
  INSUFFICIENT_SCOPE,
  INSUFFICIENT_USER_AUTHENTICATION,
  INTERNAL_ERROR,
} from "../core/http-errors.js";
import type { Verifier } from "./verifier.js";

export { DEFAULT_REALM };

/** Options every framework adapter takes. */
export interface AuthMiddlewareOptions {
  /** The verifier to use; create it once per process with `createVerifier()`. Required. */
  readonly verifier: Verifier;
  /** `realm` of the `WWW-Authenticate` challenges. Default `tessera`. */
  readonly realm?: string;
  /** Roles the token must all carry, else 403. Default none. */
  readonly roles?: readonly string[];
  /** Scopes the token must all carry, else 403. Default none. */
  readonly scopes?: readonly string[];
}

/** A guard's requirements: every listed role and scope must be present. */
export interface Requirements {
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
}

/** An HTTP answer for a refused request: the server's wire form, so every API answers alike. */
export type AuthAnswer = ErrorAnswer;

const TOKEN_CHARACTERS = /^[\w:./+-]+$/;
const REALM_CHARACTERS = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

function names(value: readonly string[] | undefined, name: string): readonly string[] {
  if (value === undefined) return [];
  const list: unknown = value;
  if (
    !Array.isArray(list) ||
    !list.every((item): item is string => typeof item === "string" && TOKEN_CHARACTERS.test(item))
  ) {
    throw new TypeError(`${name} must be a list of names of letters, digits and _ : . / + -`);
  }
  return Object.freeze([...list]);
}

/** How an adapter authenticates a request: the claims at once when no fetch is pending, else a promise of them. */
export type Authenticate = (
  authorization: string | readonly string[] | undefined,
) => AccessTokenClaims | Promise<AccessTokenClaims>;

/** Checks the options of an adapter once, at creation; throws `TypeError` naming the option. */
export function resolveAuthMiddlewareOptions(options: AuthMiddlewareOptions): {
  verifier: Verifier;
  authenticate: Authenticate;
  realm: string;
  requirements: Requirements;
} {
  if (typeof options !== "object" || options === null)
    throw new TypeError("the auth middleware needs an options object");
  const { verifier, realm = DEFAULT_REALM } = options;
  if (typeof verifier?.authenticate !== "function")
    throw new TypeError("verifier is required: the result of createVerifier()");
  if (typeof realm !== "string" || !REALM_CHARACTERS.test(realm))
    throw new TypeError('realm must be 1 to 128 printable characters without " or \\');
  // A verifier of an older release (or a stand-in) may lack authenticateNow: its promise path serves.
  const authenticate: Authenticate =
    typeof verifier.authenticateNow === "function"
      ? verifier.authenticateNow.bind(verifier)
      : verifier.authenticate.bind(verifier);
  return { verifier, authenticate, realm, requirements: resolveRequirements(options.roles, options.scopes) };
}

/** Checks guard arguments once; throws `TypeError` for a bad role or scope name. */
export function resolveRequirements(
  roles: readonly string[] | undefined,
  scopes: readonly string[] | undefined,
): Requirements {
  return Object.freeze({ roles: names(roles, "roles"), scopes: names(scopes, "scopes") });
}

/** True when `claims` carry every required role and scope. */
export function meetsRequirements(claims: AccessTokenClaims, requirements: Requirements): boolean {
  if (requirements.scopes.length === 0) return requirements.roles.every((role) => claims.roles.includes(role));
  const scopes = new Set((claims.scope ?? "").split(" ").filter(Boolean));
  return (
    requirements.roles.every((role) => claims.roles.includes(role)) &&
    requirements.scopes.every((scope) => scopes.has(scope))
  );
}

/**
 * The answer for a failed `verifier.authenticate()`, from the server's table: 401 per RFC 6750 §3
 * (no error code when no credentials were sent, `error="invalid_token"` otherwise), 503 when the
 * issuer's keys cannot be loaded, 500 for anything that is not a `TesseraError`. Never contains the token.
 */
export function answerForError(error: unknown, realm: string): AuthAnswer {
  return errorAnswerOf(isTesseraError(error) ? HTTP_ERRORS[error.code] : INTERNAL_ERROR, { realm });
}

/**
 * The answer of a role or scope guard that runs without the authentication middleware before
 * it: a setup mistake, so 500, and said once on the console so it is not taken for a crash. The
 * guard never lets such a request through.
 */
export function unauthenticatedGuard(): () => AuthAnswer {
  let told = false;
  return () => {
    if (!told) {
      told = true;
      console.error(
        "tessera/verify: a requireRoles()/requireScopes()/requireMfa() guard ran without tesseraAuth before it; answering 500",
      );
    }
    return errorAnswerOf(INTERNAL_ERROR);
  };
}

/** 403 per RFC 6750 §3.1 for a valid token that lacks a required role or scope. */
export function insufficientScopeAnswer(realm: string, requirements: Requirements): AuthAnswer {
  return errorAnswerOf(INSUFFICIENT_SCOPE, { realm, scopes: requirements.scopes });
}

/** 401 per RFC 9470 §3 (`insufficient_user_authentication`) for a valid token without a second factor. */
export function insufficientUserAuthenticationAnswer(realm: string): AuthAnswer {
  return errorAnswerOf(INSUFFICIENT_USER_AUTHENTICATION, { realm });
}

/**
 * What a guard decides on verified claims: `null` lets the request through, an answer refuses it.
 * `realm` is the one of the middleware that verified the token.
 */
export type GuardCheck = (claims: AccessTokenClaims, realm: string) => AuthAnswer | null;

/** A guard's check of roles and scopes: 403 `insufficient_scope` unless all are met. */
export function requirementsCheck(requirements: Requirements): GuardCheck {
  return (claims, realm) =>
    meetsRequirements(claims, requirements) ? null : insufficientScopeAnswer(realm, requirements);
}

/**
 * A guard's check of the second factor: 401 `insufficient_user_authentication` unless the token's
 * `amr` (RFC 8176) lists `otp`, as Tessera's tokens do after a login completed with a TOTP or
 * recovery code, and their refreshes.
 */
export const secondFactorCheck: GuardCheck = (claims, realm) =>
  (claims.amr ?? []).includes("otp") ? null : insufficientUserAuthenticationAnswer(realm);
