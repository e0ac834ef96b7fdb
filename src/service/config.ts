import { parseDurationSeconds } from "../core/duration.js";
import { isSigningAlgorithm, MIN_HMAC_SECRET_BYTES, SIGNING_ALGORITHMS, type SigningAlgorithm } from "../core/signing-key.js";
import { storeKindOf } from "../store/store.js";

/** What a role name may look like: 1 to 64 letters, digits or `_ : . -`. */
export const ROLE_NAME = /^[\w:.-]{1,64}$/;

/** Shortest accepted `secret`, in characters. */
export const MIN_SECRET_LENGTH = 32;

/** What callers may set; every field has a default except where noted. */
export interface TesseraOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on. Default `3000`. */
  readonly port?: number;
  /** Default `sqlite:./data/tessera.db`. */
  readonly databaseUrl?: string;
  /** Connections per process to PostgreSQL or MySQL. Default 10. */
  readonly databasePoolSize?: number;
  /**
   * Server secret (at least 32 characters): encrypts stored private keys and keys refresh-token
   * rotation. Without it Tessera runs in development mode; required when `production` is true.
   */
  readonly secret?: string;
  /** Refuse to start without a secret. Default: `NODE_ENV === "production"` as the CLI reads it. */
  readonly production?: boolean;
  /** `iss` of access tokens. Default `http://{host}:{port}`. */
  readonly issuer?: string;
  /** `aud` of access tokens. Default `tessera`. */
  readonly audience?: string;
  /** Default `ES256`. */
  readonly signingAlgorithm?: SigningAlgorithm;
  /** Shared secret for `HS256` (at least 32 bytes); required with it, refused without it. */
  readonly hs256Secret?: string;
  /** Durations as `"15m"`, `"3d"`, `"10s"` or seconds. */
  readonly accessTokenTtl?: string | number;
  readonly refreshTokenTtl?: string | number;
  readonly sessionTtl?: string | number;
  readonly refreshGrace?: string | number;
  /** Tolerance for `exp`, `nbf`, `iat`. Default 0. */
  readonly clockSkew?: string | number;
  /** Redis for rate limits shared between instances. Default none (in memory). */
  readonly redisUrl?: string;
  /**
   * Login attempts per minute per client IP and username; register, refresh and `/oauth/token`
   * allow ten times that per client IP. Default 30; 0 turns limits off.
   */
  readonly rateLimitPerMinute?: number;
  /** Honour `X-Forwarded-For` from a proxy in front. Default false. */
  readonly trustProxy?: boolean;
  /** Roles given to newly registered users. Default `["user"]`. */
  readonly defaultRoles?: readonly string[];
  /** pino level. Default `info`. */
  readonly logLevel?: string;
}

/** The resolved, frozen configuration. */
export interface TesseraConfig {
  readonly host: string;
  readonly port: number;
  readonly databaseUrl: string;
  readonly databasePoolSize: number;
  readonly secret: string | null;
  readonly developmentMode: boolean;
  readonly issuer: string;
  readonly audience: string;
  readonly signingAlgorithm: SigningAlgorithm;
  readonly hs256Secret: Buffer | null;
  readonly accessTokenTtlSeconds: number;
  readonly refreshTokenTtlSeconds: number;
  readonly sessionTtlSeconds: number;
  readonly refreshGraceSeconds: number;
  readonly clockSkewSeconds: number;
  readonly redisUrl: string | null;
  readonly rateLimitPerMinute: number;
  readonly trustProxy: boolean;
  readonly defaultRoles: readonly string[];
  readonly logLevel: string;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

const DAY = 86400;

function bounded(value: string | number, name: string, maxSeconds: number): number {
  const seconds = parseDurationSeconds(value, name);
  if (seconds <= 0 || seconds > maxSeconds) throw new TypeError(`${name} must be more than 0 s and at most ${maxSeconds / DAY} d`);
  return seconds;
}

function httpUrl(value: string, name: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${name} must be an absolute http(s) URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`${name} must be an absolute http(s) URL`);
  return value;
}

function integerIn(value: number, min: number, max: number, name: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/**
 * Applies defaults to `options` and checks every value once. Never mutates `options`;
 * throws `TypeError` naming the option for any bad value instead of falling back.
 */
export function resolveConfig(options: TesseraOptions = {}): Readonly<TesseraConfig> {
  const host = options.host ?? "127.0.0.1";
  const port = integerIn(options.port ?? 3000, 0, 65535, "port");
  const databaseUrl = options.databaseUrl ?? "sqlite:./data/tessera.db";
  storeKindOf(databaseUrl);
  const secret = options.secret === undefined || options.secret === "" ? null : options.secret;
  if (secret !== null && secret.length < MIN_SECRET_LENGTH) {
    throw new TypeError(`secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  if (secret === null && options.production === true) {
    throw new TypeError("secret is required in production (set TESSERA_SECRET)");
  }
  const signingAlgorithm = options.signingAlgorithm ?? "ES256";
  if (!isSigningAlgorithm(signingAlgorithm)) {
    throw new TypeError(`signingAlgorithm must be one of ${SIGNING_ALGORITHMS.join(", ")}`);
  }
  let hs256Secret: Buffer | null = null;
  if (signingAlgorithm === "HS256") {
    if (!options.hs256Secret) throw new TypeError("hs256Secret is required when signingAlgorithm is HS256");
    hs256Secret = Buffer.from(options.hs256Secret, "utf8");
    if (hs256Secret.length < MIN_HMAC_SECRET_BYTES) {
      throw new TypeError(`hs256Secret must be at least ${MIN_HMAC_SECRET_BYTES} bytes`);
    }
    // Resource servers hold the HS256 key; they must not hold the key that seals private keys.
    if (options.hs256Secret === secret) throw new TypeError("hs256Secret must differ from secret");
  }
  const accessTokenTtlSeconds = bounded(options.accessTokenTtl ?? "15m", "accessTokenTtl", DAY);
  const refreshTokenTtlSeconds = bounded(options.refreshTokenTtl ?? "3d", "refreshTokenTtl", 365 * DAY);
  const sessionTtlSeconds = bounded(options.sessionTtl ?? "30d", "sessionTtl", 365 * DAY);
  if (refreshTokenTtlSeconds < accessTokenTtlSeconds) throw new TypeError("refreshTokenTtl must be at least accessTokenTtl");
  if (sessionTtlSeconds < refreshTokenTtlSeconds) throw new TypeError("sessionTtl must be at least refreshTokenTtl");
  const refreshGraceSeconds = parseDurationSeconds(options.refreshGrace ?? "10s", "refreshGrace");
  if (refreshGraceSeconds > 300) throw new TypeError("refreshGrace must be at most 5m");
  const clockSkewSeconds = parseDurationSeconds(options.clockSkew ?? 0, "clockSkew");
  if (clockSkewSeconds > 300) throw new TypeError("clockSkew must be at most 5m");
  const audience = options.audience ?? "tessera";
  if (audience.trim() === "" || audience.length > 256) throw new TypeError("audience must be 1 to 256 characters");
  const logLevel = options.logLevel ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new TypeError(`logLevel must be one of ${LOG_LEVELS.join(", ")}`);
  const defaultRoles = [...(options.defaultRoles ?? ["user"])];
  if (!defaultRoles.every((role) => typeof role === "string" && ROLE_NAME.test(role))) {
    throw new TypeError("defaultRoles must be role names of letters, digits, _ : . -");
  }
  return Object.freeze({
    host,
    port,
    databaseUrl,
    databasePoolSize: integerIn(options.databasePoolSize ?? 10, 1, 1000, "databasePoolSize"),
    secret,
    developmentMode: secret === null,
    issuer: httpUrl(options.issuer ?? `http://${host.includes(":") ? `[${host}]` : host}:${port}`, "issuer"),
    audience,
    signingAlgorithm,
    hs256Secret,
    accessTokenTtlSeconds,
    refreshTokenTtlSeconds,
    sessionTtlSeconds,
    refreshGraceSeconds,
    clockSkewSeconds,
    redisUrl: options.redisUrl ? options.redisUrl : null,
    rateLimitPerMinute: integerIn(options.rateLimitPerMinute ?? 30, 0, 1_000_000, "rateLimitPerMinute"),
    trustProxy: options.trustProxy ?? false,
    defaultRoles: Object.freeze(defaultRoles),
    logLevel,
  });
}
