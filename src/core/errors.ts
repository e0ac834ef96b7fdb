/**
 * Every failure Tessera reports carries one of these stable codes. One table maps each code to
 * its HTTP answer (`src/core/http-errors.ts`), used by the server and the verify adapters;
 * `docs/errors.md` documents them and a test keeps the three in step.
 */
export const ERROR_CODES = [
  "invalid_request",
  "invalid_credentials",
  "username_taken",
  "registration_closed",
  "rate_limited",
  "refresh_token_malformed",
  "refresh_token_unknown",
  "refresh_token_expired",
  "refresh_token_reused",
  "refresh_token_missing",
  "csrf_check_failed",
  "session_revoked",
  "session_expired",
  "session_not_found",
  "user_not_found",
  "last_admin",
  "access_token_missing",
  "access_token_malformed",
  "access_token_invalid",
  "access_token_expired",
  "access_token_not_yet_valid",
  "access_token_claim_invalid",
  "access_token_revoked",
  "unsupported_grant_type",
  "client_authentication_unsupported",
  "client_authentication_failed",
  "invalid_scope",
  "signing_key_unavailable",
  "verification_keys_unavailable",
  "revocation_feed_unavailable",
  "store_unavailable",
  "server_busy",
  "email_taken",
  "email_token_invalid",
  "mail_unavailable",
  "reset_token_invalid",
  "mfa_required",
  "mfa_login_invalid",
  "invalid_mfa_code",
  "mfa_already_enabled",
  "mfa_unavailable",
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The one error type of Tessera. `code` is stable and safe to branch on; `message` is for
 * people and never contains a token, password or secret.
 */
export class TesseraError extends Error {
  override readonly name = "TesseraError";
  readonly code: ErrorCode;
  /** Seconds after which a retry may succeed, when the refusal knows (a rate limit's window). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** True when `value` is a {@link TesseraError}, optionally with the given code. */
export function isTesseraError(value: unknown, code?: ErrorCode): value is TesseraError {
  return value instanceof TesseraError && (code === undefined || value.code === code);
}

/** Throws a {@link TesseraError}; for use in expressions and after checks that narrow types. */
export function fail(code: ErrorCode, message: string, cause?: unknown): never {
  throw new TesseraError(code, message, cause === undefined ? undefined : { cause });
}
