import { TesseraError } from "./errors.js";

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
  if (credentials.kind === "none")
    throw new TesseraError("access_token_missing", "no bearer token in the Authorization header");
  if (credentials.kind === "malformed")
    throw new TesseraError("access_token_malformed", "the Authorization header is malformed");
  return credentials.token;
}
