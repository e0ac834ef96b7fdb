export {
  type Clock,
  systemClock,
  ERROR_CODES,
  type ErrorCode,
  TesseraError,
  isTesseraError,
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
  type AccessTokenClaims,
  REFRESH_TOKEN_PREFIX,
  isWellFormedRefreshToken,
} from "./core/index.js";
export { AuthService, type IssuedTokens, type Principal } from "./service/auth-service.js";
export { AdminService } from "./service/admin-service.js";
export type { RequestContext } from "./service/request-context.js";
export type { SessionView, UserView } from "./service/views.js";
export {
  createServices,
  openServices,
  type ServicesDependencies,
  type TesseraServices,
} from "./service/tessera-services.js";
export { resolveConfig, type TesseraConfig, type TesseraOptions } from "./http/server-config.js";
export { createArgon2Hasher, type PasswordHasher } from "./service/password-hasher.js";
export { openStore, type OpenStoreOptions } from "./store/open-store.js";
export type { Store, StoreKind } from "./store/store.js";
export { createServer, type ServerOptions } from "./http/server.js";
