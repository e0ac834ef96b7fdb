import { createPublicKey } from "node:crypto";
import type { SigningAlgorithm, VerificationKey } from "../core/signing-key.js";

/** A JSON Web Key Set as served from a `jwks_uri` (RFC 7517 §5). */
export interface JsonWebKeySet {
  readonly keys: readonly unknown[];
}

/** Verification keys by `kid`; one `kid` may carry a key for several algorithms (RSA without `alg`). */
export type KeysByKid = ReadonlyMap<string, readonly VerificationKey[]>;

/** What decides whether a JWK is usable: the allowed algorithms and the least RSA modulus length. */
export interface KeyPolicy {
  readonly algorithms: readonly SigningAlgorithm[];
  /** RSA keys with a shorter modulus, in bits, are skipped. */
  readonly minRsaModulusBits: number;
}

/** Least RSA modulus length accepted by default, in bits (ASVS 11.2.3, NIST SP 800-57: 128-bit security). */
export const DEFAULT_MIN_RSA_MODULUS_BITS = 3072;

/** Least RSA modulus length any verifier accepts, in bits: below this no option helps. */
export const MIN_RSA_MODULUS_BITS = 2048;

const MAX_KID_LENGTH = 256;

// Which algorithms each key type can serve, and the public members copied from the JWK.
// Only these members reach createPublicKey: private members (`d`, `p`, `q`, `k`…) never do.
const KEY_TYPES: Record<
  string,
  { readonly members: readonly string[]; readonly algorithms: readonly SigningAlgorithm[] }
> = {
  EC: { members: ["kty", "crv", "x", "y"], algorithms: ["ES256"] },
  OKP: { members: ["kty", "crv", "x"], algorithms: ["EdDSA"] },
  RSA: { members: ["kty", "n", "e"], algorithms: ["RS256", "PS256"] },
};

const REQUIRED_CURVE: Partial<Record<SigningAlgorithm, string>> = { ES256: "P-256", EdDSA: "Ed25519" };

/**
 * The verification keys one JWK yields for `algorithms`, or none. Skipped: keys whose `use` is
 * not `sig`, whose `key_ops` exclude `verify`, whose `alg` is not allowed, symmetric (`oct`)
 * keys, keys without `kid`, wrong curves and RSA moduli under `policy.minRsaModulusBits`.
 */
function verificationKeysFromJwk(
  jwk: unknown,
  policy: KeyPolicy,
  skipWeakRsa: (kid: string, bits: number) => void,
): VerificationKey[] {
  const { algorithms, minRsaModulusBits } = policy;
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) return [];
  const { kty, kid, use, alg, key_ops: keyOps, crv } = jwk as Record<string, unknown>;
  const type = typeof kty === "string" ? KEY_TYPES[kty] : undefined;
  if (!type) return [];
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH) return [];
  if (use !== undefined && use !== "sig") return [];
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes("verify"))) return [];
  const candidates = type.algorithms.filter(
    (candidate) => algorithms.includes(candidate) && (alg === undefined || alg === candidate),
  );
  const usable = candidates.filter(
    (candidate) => REQUIRED_CURVE[candidate] === undefined || REQUIRED_CURVE[candidate] === crv,
  );
  if (usable.length === 0) return [];
  const publicJwk = Object.fromEntries(
    type.members.map((member) => [member, (jwk as Record<string, unknown>)[member]]),
  );
  let pem: string;
  try {
    const keyObject = createPublicKey({ key: publicJwk, format: "jwk" });
    const modulusLength = keyObject.asymmetricKeyDetails?.modulusLength;
    if (kty === "RSA" && (modulusLength === undefined || modulusLength < minRsaModulusBits)) {
      skipWeakRsa(kid, modulusLength ?? 0);
      return [];
    }
    pem = keyObject.export({ type: "spki", format: "pem" }) as string;
  } catch {
    return [];
  }
  return usable.map((candidate) => Object.freeze({ kid, alg: candidate, key: pem }));
}

/** The usable keys of a JWK Set, and the RSA keys skipped for a short modulus (to say why). */
export interface JwksKeys {
  readonly keys: Map<string, VerificationKey[]>;
  /** `kid`s of RSA keys under `minRsaModulusBits`, with their modulus length in bits. */
  readonly weakRsaKeys: readonly { readonly kid: string; readonly bits: number }[];
}

/** Indexes the usable keys of a JWK Set by `kid`. */
export function keysFromJwks(jwks: unknown, policy: KeyPolicy): JwksKeys {
  const byKid = new Map<string, VerificationKey[]>();
  const weakRsaKeys: { kid: string; bits: number }[] = [];
  const keys = typeof jwks === "object" && jwks !== null ? (jwks as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) return { keys: byKid, weakRsaKeys };
  const skipWeakRsa = (kid: string, bits: number) => void weakRsaKeys.push({ kid, bits });
  for (const jwk of keys) {
    for (const key of verificationKeysFromJwk(jwk, policy, skipWeakRsa)) {
      byKid.set(key.kid, [...(byKid.get(key.kid) ?? []), key]);
    }
  }
  return { keys: byKid, weakRsaKeys };
}

/**
 * The key for a token's `kid` and `alg`. A token without `kid` matches only when exactly one key
 * serves its algorithm, so an attacker cannot pick among several.
 */
export function findKeyIn(
  keys: KeysByKid,
  kid: string | undefined,
  alg: SigningAlgorithm,
): VerificationKey | undefined {
  if (kid !== undefined) return keys.get(kid)?.find((key) => key.alg === alg);
  const matching = [...keys.values()].flat().filter((key) => key.alg === alg);
  return matching.length === 1 ? matching[0] : undefined;
}
