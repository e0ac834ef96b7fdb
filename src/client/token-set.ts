import { AuthClientError } from "./client-errors.js";

/**
 * The tokens of one session as the client keeps them. Times are absolute, in milliseconds
 * since the Unix epoch on the client's clock, computed from `expires_in` when the token
 * response arrived, so the client's and server's clocks never need to agree.
 */
export interface TokenSet {
  readonly accessToken: string;
  /** `null` in cookie mode, where the refresh token lives in an `HttpOnly` cookie no script can read. */
  readonly refreshToken: string | null;
  /** When the token response arrived, epoch ms. */
  readonly receivedAt: number;
  /** `receivedAt + expires_in`, epoch ms. */
  readonly accessTokenExpiresAt: number;
  /** `receivedAt + refresh_token_expires_in`, epoch ms. */
  readonly refreshTokenExpiresAt: number;
}

/** The refresh margin used when `refreshMarginSeconds` is not given: 30 s, at most 10 % of the lifetime. */
export const DEFAULT_REFRESH_MARGIN_SECONDS = 30;

/**
 * The instant (epoch ms) from which `tokens` should be refreshed before use. With an explicit
 * `marginSeconds`, that margin capped at half the access token's lifetime; by default 30 s
 * capped at 10 % of the lifetime (a 15-minute token refreshes 30 s early, a 2 s token 0.2 s early).
 */
export function refreshDeadline(tokens: TokenSet, marginSeconds: number | undefined): number {
  const lifetime = Math.max(0, tokens.accessTokenExpiresAt - tokens.receivedAt);
  const margin =
    marginSeconds === undefined
      ? Math.min(DEFAULT_REFRESH_MARGIN_SECONDS * 1000, lifetime / 10)
      : Math.min(marginSeconds * 1000, lifetime / 2);
  return tokens.accessTokenExpiresAt - margin;
}

/**
 * Reads an RFC 6749 §5.1 token response received at `receivedAt` (epoch ms); with `cookieMode`
 * the response carries no refresh token (it is in the cookie) and any there is ignored.
 * Throws `unexpected_response` when a field is missing or of the wrong type.
 */
export function tokenSetFromResponse(body: unknown, receivedAt: number, cookieMode = false): TokenSet {
  const fields = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const { access_token, token_type, expires_in, refresh_token, refresh_token_expires_in } = fields;
  if (
    typeof access_token !== "string" ||
    access_token === "" ||
    typeof token_type !== "string" ||
    token_type.toLowerCase() !== "bearer" ||
    !isPositiveNumber(expires_in) ||
    (!cookieMode && (typeof refresh_token !== "string" || refresh_token === "")) ||
    !isPositiveNumber(refresh_token_expires_in)
  ) {
    throw new AuthClientError(
      "unexpected_response",
      "the token response is not a Bearer token response with a refresh token",
    );
  }
  return Object.freeze({
    accessToken: access_token,
    refreshToken: cookieMode ? null : (refresh_token as string),
    receivedAt,
    accessTokenExpiresAt: receivedAt + expires_in * 1000,
    refreshTokenExpiresAt: receivedAt + refresh_token_expires_in * 1000,
  });
}

/** True when `value` has the shape of a {@link TokenSet} (for data read back from storage or another tab). */
export function isTokenSet(value: unknown): value is TokenSet {
  if (typeof value !== "object" || value === null) return false;
  const fields = value as Record<string, unknown>;
  return (
    typeof fields.accessToken === "string" &&
    fields.accessToken !== "" &&
    ((typeof fields.refreshToken === "string" && fields.refreshToken !== "") || fields.refreshToken === null) &&
    Number.isFinite(fields.receivedAt) &&
    Number.isFinite(fields.accessTokenExpiresAt) &&
    Number.isFinite(fields.refreshTokenExpiresAt)
  );
}

function isPositiveNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}
