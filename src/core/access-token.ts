import { randomUUID } from "node:crypto";
import { createSigner, createVerifier, TokenError } from "fast-jwt";
import { type Clock, epochSeconds, systemClock } from "./clock.js";
import { fail, TesseraError } from "./errors.js";
import {
  isSigningAlgorithm,
  sameKey,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
} from "./signing-key.js";

/** The JOSE `typ` of access tokens (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYPE = "at+jwt";

/** Longest access token accepted, in characters: bounds the work an attacker can cause. */
export const MAX_ACCESS_TOKEN_LENGTH = 8192;

/** Claims of a Tessera access token (RFC 9068 profile). */
export interface AccessTokenClaims {
  readonly iss: string;
  readonly aud: string | readonly string[];
  readonly sub: string;
  readonly client_id: string;
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
  readonly jti: string;
  readonly sid: string;
  readonly roles: readonly string[];
  readonly scope?: string;
}

/** What an access token is issued for. */
export interface AccessTokenSubject {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  readonly scope?: string;
  /** The latest instant the token may be valid (its session's absolute end): `exp` never passes it. */
  readonly notAfter?: Date;
}

/** The RFC 9068 `client_id` of the tokens Tessera issues to its (public) clients. */
export const DEFAULT_CLIENT_ID = "tessera";

/** Options of {@link createAccessTokenSigner}. */
export interface AccessTokenSignerOptions {
  readonly key: SigningKey;
  readonly issuer: string;
  readonly audience: string;
  /** Lifetime of each token in seconds. */
  readonly ttlSeconds: number;
  /** Value of the RFC 9068 `client_id` claim. Default `"tessera"`. */
  readonly clientId?: string;
  readonly clock?: Clock;
}

/** A signed access token and its claims. */
export interface SignedAccessToken {
  readonly token: string;
  readonly claims: AccessTokenClaims;
}

/**
 * Returns a function that signs access tokens with `options.key`, each valid for `ttlSeconds`
 * or until the subject's `notAfter`, whichever comes first.
 */
export function createAccessTokenSigner(
  options: AccessTokenSignerOptions,
): (subject: AccessTokenSubject) => SignedAccessToken {
  const { key, issuer, audience, ttlSeconds, clientId = DEFAULT_CLIENT_ID, clock = systemClock } = options;
  const sign = createSigner({
    key: key.privateKey,
    algorithm: key.alg,
    kid: key.kid,
    header: { alg: key.alg, typ: ACCESS_TOKEN_TYPE },
  });
  return (subject) => {
    const iat = epochSeconds(clock.now());
    const claims: AccessTokenClaims = {
      iss: issuer,
      aud: audience,
      sub: subject.userId,
      client_id: clientId,
      iat,
      exp: subject.notAfter ? Math.min(iat + ttlSeconds, epochSeconds(subject.notAfter)) : iat + ttlSeconds,
      jti: randomUUID(),
      sid: subject.sessionId,
      roles: [...subject.roles],
      ...(subject.scope ? { scope: subject.scope } : {}),
    };
    return { token: sign({ ...claims }), claims };
  };
}

/** The protected header fields Tessera looks at before verifying. */
export interface ProtectedHeader {
  readonly alg: SigningAlgorithm;
  readonly kid?: string;
  readonly typ?: string;
}

const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Unpadded base64url whose last character carries no stray low bits: the one spelling of its
// bytes, so a token cannot be re-spelled into a second string that verifies alike.
function isCanonicalBase64url(segment: string): boolean {
  const tail = segment.length % 4;
  if (tail === 0) return true;
  if (tail === 1) return false;
  const last = BASE64URL_ALPHABET.indexOf(segment.charAt(segment.length - 1));
  return (last & (tail === 2 ? 0b1111 : 0b11)) === 0;
}

/**
 * Decodes and checks the protected header of a compact JWS without verifying it: shape,
 * length, an algorithm among `algorithms`, `typ` of `at+jwt`, no `crit`. Keys are never taken
 * from the token (`jwk`, `jku`, `x5u`, `x5c` are ignored). Throws `access_token_malformed`,
 * `access_token_invalid` or `access_token_claim_invalid`.
 */
export function decodeProtectedHeader(token: string, algorithms: readonly SigningAlgorithm[]): ProtectedHeader {
  if (
    token.length > MAX_ACCESS_TOKEN_LENGTH ||
    !JWS_SHAPE.test(token) ||
    !token.split(".").every(isCanonicalBase64url)
  ) {
    fail("access_token_malformed", "the access token is not a compact JWS");
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, token.indexOf(".")), "base64url").toString("utf8"));
  } catch (error) {
    fail("access_token_malformed", "the access token header is not JSON", error);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("access_token_malformed", "the access token header is not a JSON object");
  }
  const { alg, kid, typ, crit } = header as Record<string, unknown>;
  if (!isSigningAlgorithm(alg) || !algorithms.includes(alg)) {
    fail("access_token_invalid", "the access token algorithm is not allowed");
  }
  if (kid !== undefined && (typeof kid !== "string" || kid.length === 0 || kid.length > 256)) {
    fail("access_token_malformed", "the access token kid is not a string");
  }
  // RFC 9068 §4: typ must be "at+jwt" (or the full media type), compared case-insensitively.
  const normalizedTyp = typeof typ === "string" ? typ.toLowerCase() : undefined;
  if (normalizedTyp !== ACCESS_TOKEN_TYPE && normalizedTyp !== `application/${ACCESS_TOKEN_TYPE}`) {
    fail("access_token_claim_invalid", "the access token typ is not at+jwt");
  }
  // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
  if (crit !== undefined) fail("access_token_invalid", "the access token has critical header parameters");
  return { alg, ...(kid === undefined ? {} : { kid }), typ: normalizedTyp };
}

/** Options of {@link createAccessTokenVerifier}. */
export interface AccessTokenVerifierOptions {
  readonly issuer: string;
  /** Accepted audiences; a token must name at least one. */
  readonly audience: string | readonly string[];
  /** Accepted algorithms; required, never inferred from the token. */
  readonly algorithms: readonly SigningAlgorithm[];
  /** Finds the key for a `kid` (or for a token without `kid`); `undefined` if unknown. */
  readonly findKey: (kid: string | undefined, alg: SigningAlgorithm) => VerificationKey | undefined;
  /** Tolerance for `exp`, `nbf` and `iat` in seconds. Default 0. */
  readonly clockSkewSeconds?: number;
  readonly clock?: Clock;
}

function mapTokenError(error: unknown): never {
  if (error instanceof TesseraError) throw error;
  const code = error instanceof TokenError ? error.code : undefined;
  switch (code) {
    case TokenError.codes.malformed:
    case TokenError.codes.invalidType:
      fail("access_token_malformed", "the access token is malformed", error);
    // falls through: fail() never returns
    case TokenError.codes.invalidClaimType:
    case TokenError.codes.invalidClaimValue:
    case TokenError.codes.missingRequiredClaim:
      fail("access_token_claim_invalid", "an access token claim is not accepted", error);
    // falls through
    default:
      fail("access_token_invalid", "the access token signature or algorithm is invalid", error);
  }
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/**
 * Returns a function that verifies an access token and returns its claims. It pins the
 * algorithms, checks the signature, `typ`, `iss`, `aud`, `exp`, `nbf` and `iat`, and requires
 * non-empty `sub`, `jti`, `sid` and `client_id`. Throws a {@link TesseraError} with an `access_token_*` code.
 */
export function createAccessTokenVerifier(
  options: AccessTokenVerifierOptions,
): (token: string, header?: ProtectedHeader) => AccessTokenClaims {
  const { issuer, audience, algorithms, findKey, clockSkewSeconds = 0, clock = systemClock } = options;
  const audiences = typeof audience === "string" ? [audience] : [...audience];
  const checkers = new Map<string, { key: VerificationKey; check: (token: string) => Record<string, unknown> }>();

  function checkerFor(key: VerificationKey) {
    const id = `${key.kid}\u0000${key.alg}`;
    const cached = checkers.get(id);
    if (cached && sameKey(cached.key, key)) return cached.check;
    const check = createVerifier({
      key: key.key,
      algorithms: [key.alg],
      allowedIss: issuer,
      allowedAud: audiences,
      // Time claims are checked below against the injected clock.
      ignoreExpiration: true,
      ignoreNotBefore: true,
      cache: false,
    }) as (token: string) => Record<string, unknown>;
    checkers.set(id, { key, check });
    return check;
  }

  // `header`: this token's header as `decodeProtectedHeader(token, algorithms)` returned it, when
  // the caller has already decoded it (to pick or load a key), so the hot path decodes once.
  return (token, header = decodeProtectedHeader(token, algorithms)) => {
    const key = findKey(header.kid, header.alg);
    if (!key || key.alg !== header.alg) fail("access_token_invalid", "the access token key is unknown");
    let payload: Record<string, unknown>;
    try {
      payload = checkerFor(key)(token);
    } catch (error) {
      mapTokenError(error);
    }
    const now = epochSeconds(clock.now());
    const { iss, aud, exp, nbf, iat, sub, jti, sid, client_id: clientId, roles, scope } = payload;
    // fast-jwt checks iss and aud only when present; RFC 9068 §2.2 requires both.
    if (typeof iss !== "string" || (typeof aud !== "string" && !isStringArray(aud))) {
      fail("access_token_claim_invalid", "the access token lacks iss or aud");
    }
    if (typeof exp !== "number" || typeof iat !== "number" || (nbf !== undefined && typeof nbf !== "number")) {
      fail("access_token_claim_invalid", "the access token time claims are missing or not numbers");
    }
    if (now >= exp + clockSkewSeconds) fail("access_token_expired", "the access token has expired");
    if (nbf !== undefined && now + clockSkewSeconds < nbf)
      fail("access_token_not_yet_valid", "the access token is not valid yet");
    if (iat > now + clockSkewSeconds) fail("access_token_not_yet_valid", "the access token was issued in the future");
    // RFC 9068 §2.2 requires sub, jti and client_id; Tessera adds sid.
    if (!isNonEmptyString(sub) || !isNonEmptyString(jti) || !isNonEmptyString(sid) || !isNonEmptyString(clientId)) {
      fail("access_token_claim_invalid", "the access token lacks sub, jti, sid or client_id");
    }
    if (roles !== undefined && !isStringArray(roles))
      fail("access_token_claim_invalid", "the roles claim is not a list of strings");
    if (scope !== undefined && typeof scope !== "string")
      fail("access_token_claim_invalid", "the scope claim is not a string");
    return { ...payload, roles: roles ?? [] } as unknown as AccessTokenClaims;
  };
}
