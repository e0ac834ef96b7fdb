import {
  constants,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
  randomUUID,
  type SignKeyObjectInput,
  type SignPrivateKeyInput,
  timingSafeEqual,
} from "node:crypto";
import { type Clock, epochSeconds, systemClock } from "./clock.js";
import { fail } from "./errors.js";
import {
  isSigningAlgorithm,
  MIN_HMAC_SECRET_BYTES,
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
  /**
   * RFC 8176 authentication methods of the session: `["pwd"]` after a password login,
   * `["pwd", "otp"]` after a second factor. Verification reads a token without one as `[]`.
   */
  readonly amr: readonly string[];
}

/** What an access token is issued for. */
export interface AccessTokenSubject {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  readonly scope?: string;
  /** RFC 8176 methods the session was opened with; default `["pwd"]`. */
  readonly amr?: readonly string[];
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

/** Signs a JWS signing input (`header.payload`) and returns the base64url signature. */
type SignatureMaker = (input: string) => string;

// node:crypto directly, the private key prepared once: ES256 signatures come out in JOSE's
// r||s form (RFC 7518 §3.4) without a DER round trip.
function signatureMakerFor(key: SigningKey): SignatureMaker {
  if (key.alg === "HS256") {
    const secret = createSecretKey(typeof key.privateKey === "string" ? Buffer.from(key.privateKey) : key.privateKey);
    return (input) => createHmac("sha256", secret).update(input, "latin1").digest("base64url");
  }
  const privateKey = createPrivateKey(key.privateKey);
  const sign =
    (algorithm: string | null, options: SignKeyObjectInput | SignPrivateKeyInput | KeyObject) => (input: string) =>
      cryptoSign(algorithm, Buffer.from(input, "latin1"), options).toString("base64url");
  switch (key.alg) {
    case "ES256":
      return sign("sha256", { key: privateKey, dsaEncoding: "ieee-p1363" });
    case "EdDSA":
      return sign(null, privateKey);
    case "PS256":
      return sign("sha256", {
        key: privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      });
    case "RS256":
      return sign("sha256", privateKey);
  }
}

/**
 * Returns a function that signs access tokens with `options.key`, each valid for `ttlSeconds`
 * or until the subject's `notAfter`, whichever comes first.
 */
export function createAccessTokenSigner(
  options: AccessTokenSignerOptions,
): (subject: AccessTokenSubject) => SignedAccessToken {
  const { key, issuer, audience, ttlSeconds, clientId = DEFAULT_CLIENT_ID, clock = systemClock } = options;
  const signature = signatureMakerFor(key);
  // The header is the same for every token of this key: encoded once.
  const header = Buffer.from(JSON.stringify({ alg: key.alg, typ: ACCESS_TOKEN_TYPE, kid: key.kid })).toString(
    "base64url",
  );
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
      amr: [...(subject.amr ?? ["pwd"])],
    };
    const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return { token: `${input}.${signature(input)}`, claims };
  };
}

/** The protected header fields Tessera looks at before verifying. */
export interface ProtectedHeader {
  readonly alg: SigningAlgorithm;
  readonly kid?: string;
  readonly typ?: string;
}

const BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Three base64url segments, header and payload not empty (the signature may be, for `alg: none`,
// which is refused by name). Irregexp compiles this to native code: faster than a loop in JS.
const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

// Unpadded base64url whose last character carries no stray low bits: the one spelling of its
// bytes, so a token cannot be re-spelled into a second string that verifies alike. The
// characters are already known to be base64url.
function isCanonicalBase64url(text: string, from: number, to: number): boolean {
  const tail = (to - from) % 4;
  if (tail === 0) return true;
  if (tail === 1) return false;
  const last = BASE64URL_ALPHABET.indexOf(text.charAt(to - 1));
  return (last & (tail === 2 ? 0b1111 : 0b11)) === 0;
}

/**
 * Checks the shape of a compact JWS (length, three canonical base64url segments, header and
 * payload not empty) and returns the index of its second dot. Throws `access_token_malformed`.
 */
function scanCompactJws(token: string): number {
  if (token.length > MAX_ACCESS_TOKEN_LENGTH || !JWS_SHAPE.test(token))
    fail("access_token_malformed", "the access token is not a compact JWS");
  const headerEnd = token.indexOf(".");
  const payloadEnd = token.indexOf(".", headerEnd + 1);
  if (
    !isCanonicalBase64url(token, 0, headerEnd) ||
    !isCanonicalBase64url(token, headerEnd + 1, payloadEnd) ||
    !isCanonicalBase64url(token, payloadEnd + 1, token.length)
  ) {
    fail("access_token_malformed", "the access token is not a compact JWS");
  }
  return payloadEnd;
}

/** The JSON object in base64url `token.slice(from, to)`; throws `access_token_malformed` for anything else. */
function decodeJsonSegment(token: string, from: number, to: number, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token.slice(from, to), "base64url").toString("utf8"));
  } catch (error) {
    fail("access_token_malformed", `the access token ${what} is not JSON`, error);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("access_token_malformed", `the access token ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function checkHeader(header: Record<string, unknown>, algorithms: readonly SigningAlgorithm[]): ProtectedHeader {
  const { alg, kid, typ, crit } = header;
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
  return Object.freeze({ alg, ...(kid === undefined ? {} : { kid }), typ: normalizedTyp });
}

/**
 * Decodes and checks the protected header of a compact JWS without verifying it: shape,
 * length, an algorithm among `algorithms`, `typ` of `at+jwt`, no `crit`. Keys are never taken
 * from the token (`jwk`, `jku`, `x5u`, `x5c` are ignored). Throws `access_token_malformed`,
 * `access_token_invalid` or `access_token_claim_invalid`.
 */
export function decodeProtectedHeader(token: string, algorithms: readonly SigningAlgorithm[]): ProtectedHeader {
  scanCompactJws(token);
  return checkHeader(decodeJsonSegment(token, 0, token.indexOf("."), "header"), algorithms);
}

/** Most distinct header segments a {@link createProtectedHeaderDecoder} remembers (an issuer has few keys). */
const MAX_KNOWN_HEADERS = 16;

/**
 * {@link decodeProtectedHeader} for one list of `algorithms`, remembering the last few header
 * segments it accepted: tokens of one key share their header, so it is decoded once, not per
 * token. The whole token is still checked every time. Throws as {@link decodeProtectedHeader}.
 */
export function createProtectedHeaderDecoder(
  algorithms: readonly SigningAlgorithm[],
): (token: string) => ProtectedHeader {
  const pinned = Object.freeze([...algorithms]);
  const known = new Map<string, ProtectedHeader>();
  return (token) => {
    scanCompactJws(token);
    const segment = token.slice(0, token.indexOf("."));
    let header = known.get(segment);
    if (header === undefined) {
      header = checkHeader(decodeJsonSegment(token, 0, segment.length, "header"), pinned);
      // Anyone can send headers: only a bounded number is kept, and only accepted ones.
      if (known.size >= MAX_KNOWN_HEADERS) known.clear();
      known.set(segment, header);
    }
    return header;
  };
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

/** Checks the signature segment of `token` (after `payloadEnd`) over the bytes before it. */
type SignatureCheck = (token: string, payloadEnd: number) => boolean;

/** Least RSA modulus a verification key may have, in bits (RFC 7518 §3.3, §3.5). */
const MIN_RSA_VERIFY_BITS = 2048;

const ES256_VERIFY = Object.freeze({ dsaEncoding: "ieee-p1363" as const });
const PS256_VERIFY = Object.freeze({
  padding: constants.RSA_PKCS1_PSS_PADDING,
  saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
});

function signingInput(token: string, payloadEnd: number): Buffer {
  return Buffer.from(token.slice(0, payloadEnd), "latin1");
}

function signatureOf(token: string, payloadEnd: number): Buffer {
  return Buffer.from(token.slice(payloadEnd + 1), "base64url");
}

function publicKeyOf(key: string | Buffer): KeyObject | null {
  try {
    return createPublicKey(key);
  } catch {
    return null;
  }
}

// What a key must be to serve its algorithm: a public key of the right type and size (an
// HS256 secret never a PEM or JWK text, which would be public), prepared once as a KeyObject.
function signatureCheckFor(key: VerificationKey): SignatureCheck | null {
  if (key.alg === "HS256") {
    const secret = typeof key.key === "string" ? Buffer.from(key.key, "utf8") : key.key;
    const text = secret.toString("latin1").trimStart();
    if (secret.length < MIN_HMAC_SECRET_BYTES || text.startsWith("-----BEGIN") || text.startsWith("{")) return null;
    const secretKey = createSecretKey(secret);
    return (token, payloadEnd) => {
      const signature = signatureOf(token, payloadEnd);
      const mac = createHmac("sha256", secretKey).update(token.slice(0, payloadEnd), "latin1").digest();
      return signature.length === mac.length && timingSafeEqual(mac, signature);
    };
  }
  const publicKey = publicKeyOf(key.key);
  if (publicKey === null) return null;
  const type = publicKey.asymmetricKeyType;
  const details = publicKey.asymmetricKeyDetails;
  switch (key.alg) {
    case "ES256": {
      if (type !== "ec" || details?.namedCurve !== "prime256v1") return null;
      const options = { ...ES256_VERIFY, key: publicKey };
      return (token, payloadEnd) => {
        const signature = signatureOf(token, payloadEnd);
        return signature.length === 64 && cryptoVerify("sha256", signingInput(token, payloadEnd), options, signature);
      };
    }
    case "EdDSA":
      if (type !== "ed25519") return null;
      return (token, payloadEnd) => {
        const signature = signatureOf(token, payloadEnd);
        return signature.length === 64 && cryptoVerify(null, signingInput(token, payloadEnd), publicKey, signature);
      };
    case "RS256":
    case "PS256": {
      if (type !== "rsa" || (details?.modulusLength ?? 0) < MIN_RSA_VERIFY_BITS) return null;
      const options = key.alg === "PS256" ? { ...PS256_VERIFY, key: publicKey } : { key: publicKey };
      const length = (details?.modulusLength ?? 0) / 8;
      return (token, payloadEnd) => {
        const signature = signatureOf(token, payloadEnd);
        return (
          signature.length === length && cryptoVerify("sha256", signingInput(token, payloadEnd), options, signature)
        );
      };
    }
  }
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/** Most keys whose prepared signature check is kept (a key ring holds a current key and a few retired ones). */
const MAX_PREPARED_KEYS = 64;

/**
 * Returns a function that verifies an access token and returns its frozen claims. It pins the
 * algorithms, checks the signature (node:crypto, each key prepared once), `typ`, `iss`, `aud`,
 * `exp`, `nbf` and `iat`, and requires non-empty `sub`, `jti`, `sid` and `client_id`. Throws a
 * {@link TesseraError} with an `access_token_*` code.
 */
export function createAccessTokenVerifier(
  options: AccessTokenVerifierOptions,
): (token: string, header?: ProtectedHeader) => AccessTokenClaims {
  const { issuer, algorithms, findKey, clockSkewSeconds = 0, clock = systemClock } = options;
  const audiences: readonly string[] =
    typeof options.audience === "string" ? [options.audience] : [...options.audience];
  const decodeHeader = createProtectedHeaderDecoder(algorithms);
  const prepared = new WeakMap<VerificationKey, SignatureCheck | null>();
  const preparedByKid = new Map<string, { readonly key: VerificationKey; readonly check: SignatureCheck | null }>();

  function checkFor(key: VerificationKey): SignatureCheck | null {
    let check = prepared.get(key);
    if (check !== undefined) return check;
    // Callers that build a new key object per lookup still prepare each key once.
    const id = `${key.kid}\u0000${key.alg}`;
    const known = preparedByKid.get(id);
    if (known !== undefined && sameKey(known.key, key)) check = known.check;
    else {
      check = signatureCheckFor(key);
      if (preparedByKid.size >= MAX_PREPARED_KEYS) preparedByKid.clear();
      preparedByKid.set(id, { key, check });
    }
    prepared.set(key, check);
    return check;
  }

  // `header`: this token's header as `decodeProtectedHeader(token, algorithms)` returned it, when
  // the caller has already decoded it (to pick or load a key), so the hot path decodes once.
  return (token, header) => {
    header ??= decodeHeader(token);
    const payloadEnd = token.lastIndexOf(".");
    const key = findKey(header.kid, header.alg);
    if (!key || key.alg !== header.alg) fail("access_token_invalid", "the access token key is unknown");
    const check = checkFor(key);
    if (check === null) fail("access_token_invalid", "the access token key is not usable with its algorithm");
    let valid: boolean;
    try {
      valid = check(token, payloadEnd);
    } catch (error) {
      fail("access_token_invalid", "the access token signature could not be checked", error);
    }
    if (!valid) fail("access_token_invalid", "the access token signature or algorithm is invalid");
    const payload = decodeJsonSegment(token, token.indexOf(".") + 1, payloadEnd, "payload");
    const { iss, aud, exp, nbf, iat, sub, jti, sid, client_id: clientId, roles, scope, amr } = payload;
    // RFC 9068 §2.2: iss and aud are required; aud names this API (one of its audiences).
    if (iss !== issuer) fail("access_token_claim_invalid", "the access token issuer is not accepted");
    if (
      typeof aud === "string"
        ? !audiences.includes(aud)
        : !isStringArray(aud) || !aud.some((item) => audiences.includes(item))
    ) {
      fail("access_token_claim_invalid", "the access token audience is not accepted");
    }
    if (typeof exp !== "number" || typeof iat !== "number" || (nbf !== undefined && typeof nbf !== "number")) {
      fail("access_token_claim_invalid", "the access token time claims are missing or not numbers");
    }
    const now = epochSeconds(clock.now());
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
    if (amr !== undefined && !isStringArray(amr))
      fail("access_token_claim_invalid", "the amr claim is not a list of strings");
    // The payload was parsed for this call alone: frozen in place rather than copied.
    payload.roles = Object.freeze(roles ?? []);
    payload.amr = Object.freeze(amr ?? []);
    if (typeof aud !== "string") Object.freeze(aud);
    return Object.freeze(payload) as unknown as AccessTokenClaims;
  };
}
