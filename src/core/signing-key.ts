import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";

/** Access-token signing algorithms Tessera accepts. `HS256` is for single-service setups only. */
export const SIGNING_ALGORITHMS = ["ES256", "EdDSA", "PS256", "RS256", "HS256"] as const;

/** One of {@link SIGNING_ALGORITHMS}. */
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Modulus length in bits of the RSA keys Tessera generates for PS256 and RS256 (ASVS 11.2.3: at least 3072). */
export const RSA_MODULUS_BITS = 3072;

/** Minimum length in bytes of an HS256 secret (RFC 7518 §3.2: at least the hash size). */
export const MIN_HMAC_SECRET_BYTES = 32;

/** A public JSON Web Key as published in the JWKS (RFC 7517), never with private members. */
export interface PublicJwk {
  readonly kty: string;
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly use: "sig";
  readonly crv?: string;
  readonly x?: string;
  readonly y?: string;
  readonly n?: string;
  readonly e?: string;
}

/** Key material for signing and verifying access tokens. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** PKCS#8 PEM for asymmetric algorithms, the raw secret for HS256. */
  readonly privateKey: string | Buffer;
  /** SPKI PEM for asymmetric algorithms, the raw secret for HS256. */
  readonly publicKey: string | Buffer;
  /** The public JWK, or `null` for HS256 whose key must never be published. */
  readonly publicJwk: PublicJwk | null;
}

/** The key an access token is checked against, looked up by `kid`. */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** SPKI PEM, or the raw secret for HS256. */
  readonly key: string | Buffer;
}

/** True when `a` and `b` are the same key material for the same algorithm. */
export function sameKey(a: VerificationKey, b: VerificationKey): boolean {
  if (a === b) return true;
  if (a.alg !== b.alg) return false;
  return typeof a.key === "string" || typeof b.key === "string" ? a.key === b.key : a.key.equals(b.key);
}

/** True when `value` names one of {@link SIGNING_ALGORITHMS}. */
export function isSigningAlgorithm(value: unknown): value is SigningAlgorithm {
  return typeof value === "string" && (SIGNING_ALGORITHMS as readonly string[]).includes(value);
}

function generateKeyPair(alg: Exclude<SigningAlgorithm, "HS256">): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case "ES256":
      return generateKeyPairSync("ec", { namedCurve: "P-256" });
    case "EdDSA":
      return generateKeyPairSync("ed25519");
    case "PS256":
    case "RS256":
      return generateKeyPairSync("rsa", { modulusLength: RSA_MODULUS_BITS });
  }
}

// RFC 7638 §3.2: the thumbprint hashes only the required members, in lexicographic order.
function jwkThumbprint(jwk: Record<string, unknown>): string {
  const members =
    jwk.kty === "EC" ? ["crv", "kty", "x", "y"] : jwk.kty === "OKP" ? ["crv", "kty", "x"] : ["e", "kty", "n"];
  const canonical = JSON.stringify(Object.fromEntries(members.map((name) => [name, jwk[name]])));
  return createHash("sha256").update(canonical).digest("base64url");
}

/** Builds a {@link SigningKey} from a PKCS#8 PEM private key; the `kid` is its RFC 7638 thumbprint. */
export function signingKeyFromPem(alg: Exclude<SigningAlgorithm, "HS256">, privatePem: string): SigningKey {
  const publicKeyObject = createPublicKey(createPrivateKey(privatePem));
  const jwk = publicKeyObject.export({ format: "jwk" }) as Record<string, string>;
  const kid = jwkThumbprint(jwk);
  const publicJwk: PublicJwk = { ...jwk, kty: jwk.kty ?? "", kid, alg, use: "sig" };
  return Object.freeze({
    kid,
    alg,
    privateKey: privatePem,
    publicKey: publicKeyObject.export({ type: "spki", format: "pem" }) as string,
    publicJwk: Object.freeze(publicJwk),
  });
}

/** A fresh asymmetric signing key for `alg` (P-256, Ed25519, or RSA of {@link RSA_MODULUS_BITS} bits). */
export function generateSigningKey(alg: Exclude<SigningAlgorithm, "HS256">): SigningKey {
  const { privateKey } = generateKeyPair(alg);
  return signingKeyFromPem(alg, privateKey.export({ type: "pkcs8", format: "pem" }) as string);
}

/**
 * An HS256 key from a shared secret of at least {@link MIN_HMAC_SECRET_BYTES} bytes.
 * Throws `TypeError` for a shorter secret.
 */
export function hmacSigningKey(secret: Buffer): SigningKey {
  if (secret.length < MIN_HMAC_SECRET_BYTES) {
    throw new TypeError(`the HS256 secret must be at least ${MIN_HMAC_SECRET_BYTES} bytes`);
  }
  const kid = createHash("sha256").update("tessera-hs256-kid:").update(secret).digest("base64url").slice(0, 16);
  return Object.freeze({ kid, alg: "HS256", privateKey: secret, publicKey: secret, publicJwk: null });
}

/**
 * How long resource servers may cache the JWK Set, in seconds: the `max-age` of
 * `/.well-known/jwks.json` and the default cache lifetime of `tessera/verify`. A new key is
 * published at least this long before it signs anything.
 */
export const JWKS_CACHE_SECONDS = 300;

/** Where a stored signing key stands: published ahead of use, signing, or kept only to verify. */
export const SIGNING_KEY_STATES = ["next", "current", "retired"] as const;

/** One of {@link SIGNING_KEY_STATES}. */
export type SigningKeyState = (typeof SIGNING_KEY_STATES)[number];

/** What the signing-key schedule knows at one instant; see {@link keyScheduleStep}. */
export interface KeyScheduleInput {
  readonly now: Date;
  /** The key signing now and since when, or `null`. */
  readonly current: { readonly kid: string; readonly activatedAt: Date } | null;
  /** The key published to sign next and from when, or `null`. */
  readonly next: { readonly kid: string; readonly activatesAt: Date } | null;
  /** Seconds a key signs before the next replaces it; `null`: only on demand. */
  readonly rotationSeconds: number | null;
  /** Seconds a new key is published before it may sign. */
  readonly publicationLeadSeconds: number;
}

/** What to do about the schedule now: nothing, promote `next` to current, or publish a new `next`. */
export type KeyScheduleStep =
  | { readonly action: "wait" }
  | { readonly action: "promote"; readonly nextKid: string; readonly currentKid: string | null }
  | { readonly action: "prepare"; readonly activatesAt: Date };

/**
 * The schedule as a decision table: a `next` key whose time has come is promoted; otherwise,
 * once the current key is due for replacement within the publication lead, a `next` key is
 * prepared to activate when it is due (and never sooner than one lead from now).
 */
export function keyScheduleStep(input: KeyScheduleInput): KeyScheduleStep {
  const { now, current, next, rotationSeconds, publicationLeadSeconds } = input;
  if (next) {
    return next.activatesAt <= now
      ? { action: "promote", nextKid: next.kid, currentKid: current?.kid ?? null }
      : { action: "wait" };
  }
  if (rotationSeconds === null || current === null) return { action: "wait" };
  const due = current.activatedAt.getTime() + rotationSeconds * 1000;
  const earliest = now.getTime() + publicationLeadSeconds * 1000;
  if (earliest < due) return { action: "wait" };
  return { action: "prepare", activatesAt: new Date(Math.max(due, earliest)) };
}
