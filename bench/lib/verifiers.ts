// The verifiers compared: Tessera through its package entry points (`tessera/verify` and the
// adapters, resolved by Node's package self-reference to dist/), the peers as their users call
// them, and the node:crypto floor. Every one pins the algorithm and checks the signature, typ
// (where the library can), iss, aud and exp of the same token.
import { createPublicKey, createSecretKey, type KeyObject, webcrypto } from "node:crypto";
import { createVerifier as createFastJwtVerifier } from "fast-jwt";
import type { jwt as honoJwt } from "hono/jwt";
import { importJWK, jwtVerify } from "jose";
import jsonwebtoken from "jsonwebtoken";
import { createFloorVerifier } from "../floor/jwt-floor.js";
import type { BenchAlgorithm, TokenMaterial } from "./access-tokens.js";

/** What the benchmark uses of a Tessera verifier (`tessera/verify` `createVerifier()`). */
export interface TesseraVerifier {
  verify(token: string): Promise<{ sub: string }>;
}

/** What the benchmark uses of `tessera/verify`. */
interface TesseraVerifyModule {
  createVerifier: (options: Record<string, unknown>) => TesseraVerifier;
}

// A specifier in a variable: resolved at run time through package.json "exports" (so to
// dist/, what users get), and not followed by the type checker into src/.
const importPackage = (specifier: string): Promise<unknown> => import(specifier);

/** Loads one of Tessera's public entry points, e.g. `tessera/verify/hono`. */
export async function importTessera<T>(
  subpath: "verify" | "verify/fastify" | "verify/express" | "verify/hono",
): Promise<T> {
  return (await importPackage(`tessera/${subpath}`)) as T;
}

/** A Tessera verifier for `material`, with its verified-token cache on (the default) or off. */
export async function tesseraVerifier(material: TokenMaterial, cache: boolean): Promise<TesseraVerifier> {
  const { createVerifier } = await importTessera<TesseraVerifyModule>("verify");
  return createVerifier({
    issuer: material.issuer,
    audience: material.audience,
    algorithms: [material.alg],
    ...(material.secret !== undefined ? { secret: material.secret } : { jwks: { keys: [material.jwk] } }),
    ...(cache ? {} : { cache: false }),
  });
}

/**
 * The public key (ES256, EdDSA) or secret (HS256) of `material` as a KeyObject. jsonwebtoken
 * needs one to be fast: given a string or Buffer secret it first tries (and fails) to parse it
 * as a public key on every verification, which costs over a millisecond.
 */
export function keyOf(material: TokenMaterial): KeyObject {
  if (material.secret !== undefined) return createSecretKey(Buffer.from(material.secret, "utf8"));
  return createPublicKey({ key: material.jwk as import("node:crypto").JsonWebKey, format: "jwk" });
}

/** The key as PEM (public keys) or the secret string (HS256), as fast-jwt and hono take it. */
export function pemOf(material: TokenMaterial): string {
  if (material.secret !== undefined) return material.secret;
  return keyOf(material).export({ type: "spki", format: "pem" }).toString();
}

/** The node:crypto floor for `material`. */
export function floorVerifier(material: TokenMaterial): (token: string) => { sub?: unknown } {
  return createFloorVerifier({
    alg: material.alg,
    key: keyOf(material),
    issuer: material.issuer,
    audience: material.audience,
  }) as (token: string) => { sub?: unknown };
}

/** fast-jwt's verifier with the same checks (typ via `checkTyp`); `cache` as fast-jwt's LRU (1000). */
export function fastJwtVerifier(material: TokenMaterial, cache: boolean): (token: string) => { sub?: unknown } {
  return createFastJwtVerifier({
    key: pemOf(material),
    algorithms: [material.alg],
    allowedIss: material.issuer,
    allowedAud: material.audience,
    checkTyp: "at+jwt",
    cache,
  }) as (token: string) => { sub?: unknown };
}

/** jsonwebtoken's verify (no EdDSA support: `undefined`); typ checked on the decoded header. */
export function jsonwebtokenVerifier(material: TokenMaterial): ((token: string) => { sub?: unknown }) | undefined {
  if (material.alg === "EdDSA") return undefined;
  const key = keyOf(material);
  const options = {
    algorithms: [material.alg],
    issuer: material.issuer,
    audience: material.audience,
    complete: true as const,
  };
  return (token) => {
    const decoded = jsonwebtoken.verify(token, key, options);
    if (decoded.header.typ !== "at+jwt") throw new Error("typ");
    return decoded.payload;
  };
}

/**
 * jose's jwtVerify with a CryptoKey imported once (given the secret as bytes, jose would import
 * it again on every verification).
 */
export async function joseVerifier(material: TokenMaterial): Promise<(token: string) => Promise<{ sub?: unknown }>> {
  const key =
    material.secret !== undefined
      ? await webcrypto.subtle.importKey(
          "raw",
          Buffer.from(material.secret, "utf8"),
          { name: "HMAC", hash: "SHA-256" },
          false,
          ["verify"],
        )
      : await importJWK(material.jwk as Parameters<typeof importJWK>[0], material.alg);
  const options = { issuer: material.issuer, audience: material.audience, algorithms: [material.alg], typ: "at+jwt" };
  return async (token) => (await jwtVerify(token, key, options)).payload;
}

/** The key hono/jwt takes: the HS256 secret string or the public JWK. */
export function honoKeyOf(material: TokenMaterial): Parameters<typeof honoJwt>[0]["secret"] {
  return material.secret ?? (material.jwk as Exclude<Parameters<typeof honoJwt>[0]["secret"], string>);
}

/** The configuration the parent passes in BENCH_VERIFY. */
export interface VerifyWorkerConfig {
  readonly materials: readonly TokenMaterial[];
  readonly warmMs: number;
  readonly roundMs: number;
  readonly rounds: number;
  /** Measure only these verifiers (names of {@link VERIFIER_NAMES}); default all. */
  readonly only?: readonly string[];
}

/** Verifier names, in table order. */
export const VERIFIER_NAMES = [
  "Tessera, cache off",
  "Tessera, cache on",
  "fast-jwt, cache off",
  "fast-jwt, cache on",
  "jsonwebtoken",
  "jose",
  "node:crypto floor",
] as const;

export type { BenchAlgorithm };
