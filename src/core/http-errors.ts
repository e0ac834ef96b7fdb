import type { ErrorCode } from "./errors.js";

/** The realm named in `WWW-Authenticate` challenges unless configured otherwise. */
export const DEFAULT_REALM = "tessera";

/** Seconds a client is asked to wait (`Retry-After`) before retrying a 503 that names no time of its own. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * The `WWW-Authenticate` challenge an answer carries: `bearer` without an error code (RFC 6750
 * §3.1: the request had no credentials), `invalid_token` and `insufficient_scope` with theirs,
 * `insufficient_user_authentication` (RFC 9470 §3) with its own and a description,
 * `basic` for `invalid_client` (RFC 6749 §5.2).
 */
export type ChallengeKind =
  | "bearer"
  | "invalid_token"
  | "insufficient_scope"
  | "insufficient_user_authentication"
  | "basic";

/** How one error appears over HTTP. */
export interface HttpErrorShape {
  readonly status: number;
  /** OAuth `error` value (RFC 6749 §5.2, RFC 6750 §3.1) or Tessera's own. */
  readonly error: string;
  /** Shown to clients as `error_description`. Never contains a token or secret. */
  readonly description: string;
  /** The `WWW-Authenticate` challenge to send, if any. */
  readonly challenge?: ChallengeKind;
  /** Seconds to send as `Retry-After`; a 503 without one sends {@link RETRY_AFTER_SECONDS}. */
  readonly retryAfterSeconds?: number;
}

const INVALID_GRANT = { status: 401, error: "invalid_grant" } as const;
const INVALID_TOKEN = { status: 401, error: "invalid_token", challenge: "invalid_token" } as const;
const UNAVAILABLE = { status: 503, error: "temporarily_unavailable" } as const;

/**
 * The one table from error code to HTTP answer, used by the server, the Fastify plugin and
 * every `tessera/verify` adapter. On the token endpoint `invalid_grant` becomes 400 (RFC 6749 §5.2).
 */
export const HTTP_ERRORS: Readonly<Record<ErrorCode, HttpErrorShape>> = Object.freeze({
  invalid_request: { status: 400, error: "invalid_request", description: "The request is malformed." },
  invalid_credentials: { ...INVALID_GRANT, description: "The username or password is wrong." },
  username_taken: { status: 409, error: "username_taken", description: "That username is already registered." },
  registration_closed: {
    status: 403,
    error: "registration_closed",
    description: "Registration is closed; an operator creates accounts.",
  },
  // Retry-After comes from the limit that refused (TesseraError.retryAfterSeconds).
  rate_limited: { status: 429, error: "too_many_requests", description: "Too many attempts; retry later." },
  refresh_token_malformed: { ...INVALID_GRANT, description: "The refresh token is malformed." },
  refresh_token_unknown: { ...INVALID_GRANT, description: "The refresh token is invalid." },
  refresh_token_expired: { ...INVALID_GRANT, description: "The refresh token has expired." },
  refresh_token_reused: {
    ...INVALID_GRANT,
    description: "The refresh token was already used; the session has been revoked.",
  },
  // Cookie mode: neither the cookie nor the body carried a refresh token (the cookie expired or was cleared).
  refresh_token_missing: { ...INVALID_GRANT, description: "No refresh token was sent, in the cookie or the body." },
  csrf_check_failed: {
    status: 403,
    error: "csrf_check_failed",
    description: "A browser request to this route needs an allowed Origin and the X-Tessera-CSRF: 1 header.",
  },
  session_revoked: { ...INVALID_GRANT, description: "The session has been revoked." },
  session_expired: { ...INVALID_GRANT, description: "The session has expired." },
  session_not_found: { status: 404, error: "not_found", description: "No such session." },
  user_not_found: { status: 404, error: "not_found", description: "No such user." },
  last_admin: {
    status: 409,
    error: "last_admin",
    description: "This user is the last enabled admin; make another admin first.",
  },
  // The request had no credentials: no error code in the challenge (RFC 6750 §3.1).
  access_token_missing: { ...INVALID_TOKEN, description: "An access token is required.", challenge: "bearer" },
  access_token_malformed: { ...INVALID_TOKEN, description: "The access token is malformed." },
  access_token_invalid: { ...INVALID_TOKEN, description: "The access token is invalid." },
  access_token_expired: { ...INVALID_TOKEN, description: "The access token has expired." },
  access_token_not_yet_valid: { ...INVALID_TOKEN, description: "The access token is not valid yet." },
  access_token_claim_invalid: { ...INVALID_TOKEN, description: "The access token is not accepted here." },
  access_token_revoked: { ...INVALID_TOKEN, description: "The access token's session has ended." },
  unsupported_grant_type: {
    status: 400,
    error: "unsupported_grant_type",
    description: "Only grant_type=refresh_token is supported.",
  },
  client_authentication_unsupported: {
    status: 401,
    error: "invalid_client",
    description: "Only public clients are served: send client_id alone, without a secret or Basic credentials.",
    challenge: "basic",
  },
  client_authentication_failed: {
    status: 401,
    error: "invalid_client",
    description: "The client credentials are wrong.",
    challenge: "basic",
  },
  invalid_scope: { status: 400, error: "invalid_scope", description: "The requested scope exceeds the granted scope." },
  signing_key_unavailable: { status: 500, error: "server_error", description: "The server cannot sign tokens." },
  verification_keys_unavailable: {
    ...UNAVAILABLE,
    description: "The token issuer's keys cannot be loaded; retry shortly.",
  },
  revocation_feed_unavailable: {
    ...UNAVAILABLE,
    description: "Whether the access token's session has ended cannot be checked right now; retry shortly.",
  },
  store_unavailable: { ...UNAVAILABLE, description: "The service is temporarily unavailable; retry shortly." },
  // A hash takes tens of milliseconds: a second is long enough for the queue to drain.
  server_busy: {
    ...UNAVAILABLE,
    description: "Too many password checks at once; retry shortly.",
    retryAfterSeconds: 1,
  },
  email_taken: { status: 409, error: "email_taken", description: "That email address belongs to another account." },
  email_token_invalid: {
    status: 400,
    error: "invalid_grant",
    description: "The verification link is unknown, used, expired, or for an address since changed.",
  },
  reset_token_invalid: {
    status: 400,
    error: "invalid_grant",
    description: "The reset link is unknown, used, expired, or the password has changed since it was sent.",
  },
  // The body also carries `mfa_token` and `expires_in` (the route adds them): the password was right.
  mfa_required: {
    status: 403,
    error: "mfa_required",
    description: "A second factor is required: send a code with the mfa_token to /auth/login/mfa.",
  },
  mfa_login_invalid: {
    ...INVALID_GRANT,
    description: "The code or recovery code is wrong, or the mfa_token is unknown, used or expired.",
  },
  invalid_mfa_code: { status: 400, error: "invalid_mfa_code", description: "The authenticator code is wrong." },
  mfa_already_enabled: {
    status: 409,
    error: "mfa_already_enabled",
    description: "TOTP is already on; turn it off before enrolling again.",
  },
  // Not a passing outage: nothing changes until an operator acts, so clients are asked to wait long.
  mfa_unavailable: {
    status: 503,
    error: "mfa_unavailable",
    description:
      "This account's second factor cannot be read (the server secret changed since it was set up): an operator must reset it.",
    retryAfterSeconds: 3600,
  },
  mail_unavailable: {
    status: 501,
    error: "mail_unavailable",
    description: "This server sends no mail (no SMTP server configured): email features are off.",
  },
});

/** 403 for a valid token that lacks a required role or scope (RFC 6750 §3.1); a guard's verdict, not an error code. */
export const INSUFFICIENT_SCOPE: HttpErrorShape = Object.freeze({
  status: 403,
  error: "insufficient_scope",
  description: "The access token lacks a required role or scope.",
  challenge: "insufficient_scope",
});

/**
 * 401 per RFC 9470 §3 for a valid token whose session was opened without a second factor (no
 * `otp` in its `amr`); a guard's verdict, not an error code.
 */
export const INSUFFICIENT_USER_AUTHENTICATION: HttpErrorShape = Object.freeze({
  status: 401,
  error: "insufficient_user_authentication",
  description: "A second factor is required: log in again with a TOTP code.",
  challenge: "insufficient_user_authentication",
});

/** The answer to anything that is not a `TesseraError`: a bug, told to no client in detail. */
export const INTERNAL_ERROR: HttpErrorShape = Object.freeze({
  status: 500,
  error: "server_error",
  description: "Internal server error.",
});

/** Where a challenge applies: the realm (default {@link DEFAULT_REALM}) and the scopes a guard requires. */
export interface ChallengeOptions {
  readonly realm?: string;
  readonly scopes?: readonly string[];
}

// RFC 6750 §3: error_description may only hold %x20-21 / %x23-5B / %x5D-7E, so no quote to escape.
const NOT_IN_QUOTED_VALUE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/g;

/**
 * The `WWW-Authenticate` value of an answer, or `undefined` when it carries no challenge. The
 * realm is taken as given: callers check configured realms once, at creation.
 */
export function challengeOf(shape: HttpErrorShape, options: ChallengeOptions = {}): string | undefined {
  const realm = options.realm ?? DEFAULT_REALM;
  switch (shape.challenge) {
    case undefined:
      return undefined;
    case "basic":
      return `Basic realm="${realm}"`;
    case "bearer":
      return `Bearer realm="${realm}"`;
    case "invalid_token":
    case "insufficient_user_authentication": {
      const description = shape.description.replace(NOT_IN_QUOTED_VALUE, "");
      return `Bearer realm="${realm}", error="${shape.challenge}", error_description="${description}"`;
    }
    case "insufficient_scope": {
      const scope = options.scopes?.length ? `, scope="${options.scopes.join(" ")}"` : "";
      return `Bearer realm="${realm}", error="insufficient_scope"${scope}`;
    }
  }
}

/** An error as sent: status, the headers it needs, and the `{error, error_description}` body. */
export interface ErrorAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: string; readonly error_description: string };
}

/**
 * The wire form of `shape`: its challenge, `Retry-After` when it names one and on every 503, and
 * `Cache-Control: no-store` on every error (RFC 6749 §5.1, RFC 6750 §3: answers about
 * credentials are never cached).
 */
export function errorAnswerOf(shape: HttpErrorShape, options: ChallengeOptions = {}): ErrorAnswer {
  const headers: Record<string, string> = {};
  const challenge = challengeOf(shape, options);
  if (challenge !== undefined) headers["www-authenticate"] = challenge;
  const retryAfter = shape.retryAfterSeconds ?? (shape.status === 503 ? RETRY_AFTER_SECONDS : undefined);
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  headers["cache-control"] = "no-store";
  return { status: shape.status, headers, body: { error: shape.error, error_description: shape.description } };
}
