export { createVerifier, type Verifier, type VerifierStats } from "./verifier.js";
export {
  type VerifierOptions,
  type VerifierConfig,
  type RevocationOptions,
  type VerifierLogger,
  type KeySource,
  REVOCATION_CHANNEL,
} from "./verifier-options.js";
export { type JsonWebKeySet, DEFAULT_MIN_RSA_MODULUS_BITS } from "./jwk-keys.js";
export { JWKS_MAX_AGE } from "./jwks-cache.js";
export { DEFAULT_TOKEN_CACHE_ENTRIES } from "./token-cache.js";
export { DEFAULT_REALM, type AuthMiddlewareOptions } from "./http-answer.js";
export { type AccessTokenClaims } from "../core/access-token.js";
export { type SigningAlgorithm } from "../core/signing-key.js";
export { TesseraError, isTesseraError, type ErrorCode } from "../core/errors.js";
