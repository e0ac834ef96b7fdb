// The verification floor: the least a correct JWS verifier must do, written directly on
// node:crypto. Benchmark-only: no key rotation, no error codes, no canonical-encoding checks.
import { createHmac, type KeyObject, timingSafeEqual, verify } from "node:crypto";

/** Algorithms the floor implements. */
export type FloorAlgorithm = "HS256" | "ES256" | "EdDSA";

/** Options of {@link createFloorVerifier}. */
export interface FloorOptions {
  readonly alg: FloorAlgorithm;
  /** The HS256 secret, or the ES256 / EdDSA public key. */
  readonly key: Buffer | KeyObject;
  readonly issuer: string;
  readonly audience: string;
  /** Required `typ` header. Default `at+jwt` (RFC 9068). */
  readonly typ?: string;
}

/** The claims the floor checks; the rest pass through. */
export interface FloorClaims {
  readonly iss: string;
  readonly aud: string | string[];
  readonly exp: number;
  readonly [claim: string]: unknown;
}

function refuse(reason: string): never {
  throw new Error(`floor: ${reason}`);
}

function decodeJson(segment: string): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  if (typeof value !== "object" || value === null || Array.isArray(value)) refuse("not a JSON object");
  return value as Record<string, unknown>;
}

/**
 * `verify(token) → claims`: splits the compact JWS, decodes the header (alg pinned, typ), checks
 * the signature (HMAC + timingSafeEqual, or crypto.verify), parses the claims and checks exp,
 * iss and aud. Throws on any failure.
 */
export function createFloorVerifier({
  alg,
  key,
  issuer,
  audience,
  typ = "at+jwt",
}: FloorOptions): (token: string) => FloorClaims {
  const checkSignature: (input: Buffer, signature: Buffer) => boolean =
    alg === "HS256"
      ? (input, signature) => {
          const mac = createHmac("sha256", key).update(input).digest();
          return mac.length === signature.length && timingSafeEqual(mac, signature);
        }
      : alg === "ES256"
        ? (input, signature) => verify("sha256", input, { key: key as KeyObject, dsaEncoding: "ieee-p1363" }, signature)
        : (input, signature) => verify(null, input, key, signature);
  return (token) => {
    const first = token.indexOf(".");
    const second = token.indexOf(".", first + 1);
    if (first <= 0 || second <= first || token.includes(".", second + 1)) refuse("not a compact JWS");
    const header = decodeJson(token.slice(0, first));
    if (header.alg !== alg || header.typ !== typ) refuse("alg or typ");
    if (
      !checkSignature(Buffer.from(token.slice(0, second), "latin1"), Buffer.from(token.slice(second + 1), "base64url"))
    )
      refuse("signature");
    const claims = decodeJson(token.slice(first + 1, second));
    if (typeof claims.exp !== "number" || claims.exp <= Date.now() / 1000) refuse("exp");
    if (claims.iss !== issuer) refuse("iss");
    const aud = claims.aud;
    if (aud !== audience && !(Array.isArray(aud) && aud.includes(audience))) refuse("aud");
    return claims as FloorClaims;
  };
}
