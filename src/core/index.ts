export { type Clock, systemClock, epochSeconds, addSeconds } from "./clock.js";
export { ERROR_CODES, type ErrorCode, TesseraError, isTesseraError } from "./errors.js";
export { parseDurationSeconds } from "./duration.js";
export {
  REFRESH_TOKEN_PREFIX,
  REFRESH_TOKEN_LENGTH,
  generateRefreshToken,
  isWellFormedRefreshToken,
  hashRefreshToken,
  deriveSuccessorToken,
} from "./refresh-token.js";
export {
  ACCESS_TOKEN_TYPE,
  MAX_ACCESS_TOKEN_LENGTH,
  type AccessTokenClaims,
  type AccessTokenSubject,
  type AccessTokenSignerOptions,
  type AccessTokenVerifierOptions,
  type SignedAccessToken,
  type ProtectedHeader,
  createAccessTokenSigner,
  createAccessTokenVerifier,
  decodeProtectedHeader,
} from "./access-token.js";
export {
  SIGNING_ALGORITHMS,
  MIN_HMAC_SECRET_BYTES,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
  type PublicJwk,
  isSigningAlgorithm,
  generateSigningKey,
  signingKeyFromPem,
  hmacSigningKey,
} from "./signing-key.js";
export { type RotationDecision, type RotationInput, decideRotation } from "./rotation.js";
export { type BearerCredentials, parseBearerHeader } from "./bearer.js";
