/** Every failure the client reports carries one of these stable codes. */
export const AUTH_CLIENT_ERROR_CODES = [
  /** Login was refused: wrong username or password (`401 invalid_grant`). */
  "invalid_credentials",
  /** There is no session to use: never logged in, logged out, or ended earlier. */
  "not_authenticated",
  /** The server refused the refresh token (`invalid_grant`); storage was cleared. */
  "session_expired",
  /** The server answered with a status or body the client cannot use; see `status`. */
  "unexpected_response",
  /** The password was right and the user has TOTP on: finish with `completeMfa(error.mfaToken, …)` (`403`). */
  "mfa_required",
  /** The authenticator code is wrong (`400 invalid_mfa_code`) when confirming or turning off TOTP. */
  "invalid_mfa_code",
] as const;

/** One of {@link AUTH_CLIENT_ERROR_CODES}. */
export type AuthClientErrorCode = (typeof AUTH_CLIENT_ERROR_CODES)[number];

/**
 * The one error type of `tessera/client`. `code` is stable and safe to branch on; `message`
 * is for people and never contains a token or password.
 */
export class AuthClientError extends Error {
  override readonly name = "AuthClientError";
  readonly code: AuthClientErrorCode;
  /** The HTTP status that caused the error, when there was one. */
  readonly status: number | null;
  /** With `mfa_required`: the token to pass to `completeMfa()`. Never shown in `message`. */
  readonly mfaToken?: string;
  /** With `mfa_required`: seconds the `mfaToken` stays valid. */
  readonly expiresIn?: number;

  constructor(
    code: AuthClientErrorCode,
    message: string,
    options?: { status?: number; cause?: unknown; mfaToken?: string; expiresIn?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options?.status ?? null;
    if (options?.mfaToken !== undefined) this.mfaToken = options.mfaToken;
    if (options?.expiresIn !== undefined) this.expiresIn = options.expiresIn;
  }
}

/** True when `value` is an {@link AuthClientError}, optionally with the given code. */
export function isAuthClientError(value: unknown, code?: AuthClientErrorCode): value is AuthClientError {
  return value instanceof AuthClientError && (code === undefined || value.code === code);
}
