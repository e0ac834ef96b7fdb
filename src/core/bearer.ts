import { type ErrorCode, TesseraError } from "./errors.js";

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^bearer(?:[ \t]|$)/i;

/** Result of reading an `Authorization` header for a bearer token. */
export type BearerCredentials =
  | { readonly kind: "none" }
  | { readonly kind: "malformed" }
  | { readonly kind: "token"; readonly token: string };

/**
 * Reads a bearer token from an `Authorization` header value. A missing header or another
 * scheme is `none` (RFC 6750 §3: no error code then); a `Bearer` header with a bad token is
 * `malformed`.
 */
export function parseBearerHeader(header: string | readonly string[] | undefined): BearerCredentials {
  if (header === undefined || header === "") return { kind: "none" };
  if (typeof header !== "string") return { kind: "malformed" };
  if (!SCHEME.test(header)) return { kind: "none" };
  const match = BEARER.exec(header);
  return match?.[1] ? { kind: "token", token: match[1] } : { kind: "malformed" };
}

/**
 * The bearer token of an `Authorization` header value. Throws `access_token_missing` when
 * there is none (or another scheme) and `access_token_malformed` for a bad `Bearer` header.
 */
export function readBearerToken(header: string | readonly string[] | undefined): string {
  const credentials = parseBearerHeader(header);
  if (credentials.kind === "none") throw new TesseraError("access_token_missing", "no bearer token in the Authorization header");
  if (credentials.kind === "malformed") throw new TesseraError("access_token_malformed", "the Authorization header is malformed");
  return credentials.token;
}

/** The realm named in `WWW-Authenticate` challenges unless configured otherwise. */
export const DEFAULT_REALM = "tessera";

/** What clients are told for each bearer-token failure: the same on the server and on every API. */
export const BEARER_ERROR_DESCRIPTIONS = Object.freeze({
  access_token_missing: "An access token is required.",
  access_token_malformed: "The access token is malformed.",
  access_token_invalid: "The access token is invalid.",
  access_token_expired: "The access token has expired.",
  access_token_not_yet_valid: "The access token is not valid yet.",
  access_token_claim_invalid: "The access token is not accepted here.",
  access_token_revoked: "The access token's session has ended.",
} as const satisfies Partial<Record<ErrorCode, string>>);
