import { BEARER_ERROR_DESCRIPTIONS, DEFAULT_REALM } from "../core/bearer.js";
import { type ErrorCode, isTesseraError } from "../core/errors.js";

/** How one error code appears over HTTP. */
export interface HttpErrorShape {
  readonly status: number;
  /** OAuth `error` value (RFC 6749 §5.2, RFC 6750 §3.1) or Tessera's own. */
  readonly error: string;
  /** Shown to clients as `error_description`. Never contains a token or secret. */
  readonly description: string;
  /** Answer with `WWW-Authenticate: Bearer` (RFC 6750 §3). */
  readonly bearer?: "no_error" | "invalid_token";
  /** Answer with `WWW-Authenticate: Basic` (RFC 6749 §5.2, `invalid_client`). */
  readonly basic?: true;
}

/** The one table from error code to HTTP answer, as served on `/auth/*` routes. */
export const HTTP_ERRORS: Readonly<Record<ErrorCode, HttpErrorShape>> = Object.freeze({
  invalid_request: { status: 400, error: "invalid_request", description: "The request is malformed." },
  invalid_credentials: { status: 401, error: "invalid_grant", description: "The username or password is wrong." },
  username_taken: { status: 409, error: "username_taken", description: "That username is already registered." },
  refresh_token_malformed: { status: 401, error: "invalid_grant", description: "The refresh token is malformed." },
  refresh_token_unknown: { status: 401, error: "invalid_grant", description: "The refresh token is invalid." },
  refresh_token_expired: { status: 401, error: "invalid_grant", description: "The refresh token has expired." },
  refresh_token_reused: { status: 401, error: "invalid_grant", description: "The refresh token was already used; the session has been revoked." },
  session_revoked: { status: 401, error: "invalid_grant", description: "The session has been revoked." },
  session_expired: { status: 401, error: "invalid_grant", description: "The session has expired." },
  session_not_found: { status: 404, error: "not_found", description: "No such session." },
  access_token_missing: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_missing, bearer: "no_error" },
  access_token_malformed: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_malformed, bearer: "invalid_token" },
  access_token_invalid: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_invalid, bearer: "invalid_token" },
  access_token_expired: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_expired, bearer: "invalid_token" },
  access_token_not_yet_valid: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_not_yet_valid, bearer: "invalid_token" },
  access_token_claim_invalid: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_claim_invalid, bearer: "invalid_token" },
  access_token_revoked: { status: 401, error: "invalid_token", description: BEARER_ERROR_DESCRIPTIONS.access_token_revoked, bearer: "invalid_token" },
  unsupported_grant_type: { status: 400, error: "unsupported_grant_type", description: "Only grant_type=refresh_token is supported." },
  client_authentication_unsupported: {
    status: 401,
    error: "invalid_client",
    description: "Only public clients are served: send client_id alone, without a secret or Basic credentials.",
    basic: true,
  },
  invalid_scope: { status: 400, error: "invalid_scope", description: "The requested scope exceeds the granted scope." },
  signing_key_unavailable: { status: 500, error: "server_error", description: "The server cannot sign tokens." },
  verification_keys_unavailable: { status: 503, error: "temporarily_unavailable", description: "The issuer's signing keys cannot be loaded; retry shortly." },
  store_unavailable: { status: 503, error: "temporarily_unavailable", description: "The service is temporarily unavailable; retry shortly." },
});

/** The realm named in `WWW-Authenticate` challenges. */
export const REALM = DEFAULT_REALM;

/** The challenge of an `invalid_client` answer (RFC 6749 §5.2). */
export const BASIC_CHALLENGE = `Basic realm="${REALM}"`;

/** An RFC 6750 §3 challenge; `error` is omitted when the request had no credentials. */
export function bearerChallenge(shape: Pick<HttpErrorShape, "bearer" | "description">): string {
  if (shape.bearer !== "invalid_token") return `Bearer realm="${REALM}"`;
  return `Bearer realm="${REALM}", error="invalid_token", error_description="${shape.description.replace(/["\\]/g, "")}"`;
}

const INTERNAL: HttpErrorShape = { status: 500, error: "server_error", description: "Internal server error." };

interface FrameworkError {
  statusCode?: number;
  code?: string;
  validation?: unknown;
  message?: string;
}

/**
 * The HTTP answer for any error thrown while handling a request. On the token endpoint
 * (`oauth: true`) every grant error is a 400, as RFC 6749 §5.2 requires.
 */
export function httpErrorOf(error: unknown, oauth = false): HttpErrorShape {
  if (isTesseraError(error)) {
    const shape = HTTP_ERRORS[error.code];
    if (oauth && shape.status === 401 && shape.error === "invalid_grant") return { ...shape, status: 400 };
    if (error.code === "invalid_request" && error.message) return { ...shape, description: sentence(error.message) };
    return shape;
  }
  const framework = (error ?? {}) as FrameworkError;
  if (framework.validation !== undefined) {
    return { status: 400, error: "invalid_request", description: sentence(framework.message ?? "the request is malformed") };
  }
  const status = framework.statusCode;
  if (status === 429) return { status, error: "too_many_requests", description: "Too many requests; retry later." };
  if (status === 415) {
    return { status: oauth ? 400 : 415, error: "invalid_request", description: "Unsupported content type." };
  }
  if (status === 413) return { status, error: "invalid_request", description: "The request body is too large." };
  if (typeof status === "number" && status >= 400 && status < 500) {
    // Fastify's own 4xx messages describe the request's form, never its content.
    return { status, error: "invalid_request", description: sentence(framework.message ?? "the request is malformed") };
  }
  return INTERNAL;
}

function sentence(text: string): string {
  const trimmed = text.slice(0, 200);
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1) + (trimmed.endsWith(".") ? "" : ".");
}
