export {
  createAuthClient,
  type AuthClient,
  type AuthClientOptions,
  AUTH_CLIENT_EVENTS,
  type AuthClientEventType,
  type AuthClientEventMap,
  type AuthClientEventOrigin,
  CSRF_HEADER,
} from "./auth-client.js";
export {
  AUTH_CLIENT_ERROR_CODES,
  type AuthClientErrorCode,
  AuthClientError,
  isAuthClientError,
} from "./client-errors.js";
export { type TokenSet, DEFAULT_REFRESH_MARGIN_SECONDS } from "./token-set.js";
export {
  type TokenStorage,
  type WebStorageLike,
  DEFAULT_STORAGE_KEY,
  memoryStorage,
  webStorage,
  localStorageStorage,
} from "./token-storage.js";
