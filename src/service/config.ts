import { parseDurationSeconds } from "../core/duration.js";
import { parseHttpUrl } from "../core/http-url.js";
import {
  isSigningAlgorithm,
  MIN_HMAC_SECRET_BYTES,
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
} from "../core/signing-key.js";
import { storeKindOf } from "../store/store.js";
import { ROLE_NAME } from "./credential-policy.js";

/** Shortest accepted `secret`, in characters. */
export const MIN_SECRET_LENGTH = 32;

/** How a setting is read from an environment variable or a flag. */
export type SettingType = "string" | "integer" | "boolean";

/** One documented setting: where it is read from and what it defaults to. */
export interface SettingSpec {
  /** The environment variable; names are relied on by scripts. */
  readonly variable: `TESSERA_${string}`;
  /** The flag of `tessera serve`, if it has one. */
  readonly flag?: `--${string}`;
  readonly type: SettingType;
  /** The default as the README and `tessera --help` state it. */
  readonly default: string;
}

/** What the service may be given; every field has a default except where noted. */
export interface ServiceOptions {
  /** Default `sqlite:./data/tessera.db`. */
  readonly databaseUrl?: string;
  /** Connections per process to PostgreSQL or MySQL. Default 10. */
  readonly databasePoolSize?: number;
  /**
   * Server secret (at least 32 characters): encrypts stored private keys and keys refresh-token
   * rotation. Without it Tessera runs in development mode (which also logs the links of account
   * mail at info level); required when `production` is true.
   */
  readonly secret?: string;
  /** Refuse to start without a secret. Default: `NODE_ENV === "production"` as the CLI reads it. */
  readonly production?: boolean;
  /** `iss` of access tokens, an absolute http(s) URL. Default `http://{host}:{port}`. */
  readonly issuer?: string;
  /** `aud` of access tokens, 1 to 256 characters. Default `tessera`. */
  readonly audience?: string;
  /** Default `ES256`. */
  readonly signingAlgorithm?: SigningAlgorithm;
  /** Shared secret for `HS256` (at least 32 bytes); required with it, refused without it. */
  readonly hs256Secret?: string;
  /** Access-token lifetime, `"15m"` or seconds; at most 1 day. Default `15m`. */
  readonly accessTokenTtl?: string | number;
  /** Idle lifetime of a refresh token, at least `accessTokenTtl`, at most 365 days. Default `3d`. */
  readonly refreshTokenTtl?: string | number;
  /** Absolute lifetime of a session, at least `refreshTokenTtl`, at most 365 days. Default `30d`. */
  readonly sessionTtl?: string | number;
  /** Window in which a repeated refresh gets the same successor; at most 5 minutes. Default `10s`. */
  readonly refreshGrace?: string | number;
  /** Tolerance for `exp`, `nbf`, `iat`; at most 5 minutes. Default 0. */
  readonly clockSkew?: string | number;
  /**
   * Secret (at least 32 characters) that resource servers present with client id `introspection`
   * in HTTP Basic credentials to call `POST /oauth/introspect`. Default none: only bearer tokens
   * with the `introspect` role may introspect.
   */
  readonly introspectionSecret?: string;
  /** Redis for rate limits shared between instances and pushed revocations. Default none. */
  readonly redisUrl?: string;
  /** Roles given to newly registered users. Default `["user"]`. */
  readonly defaultRoles?: readonly string[];
  /**
   * `open`: anyone may `POST /auth/register`; `closed`: it answers 403 `registration_closed` and an
   * operator creates accounts (`tessera user add`). Default `open`, for the embedded quick
   * start: close it in production unless you mean it.
   */
  readonly registration?: Registration;
  /**
   * Password hashes (login, register) computed at once per process, 1 to 64. argon2id runs on
   * libuv's thread pool (4 threads unless `UV_THREADPOOL_SIZE` says otherwise), so this also keeps
   * threads and a core free for everything else. Default 1.
   */
  readonly passwordHashConcurrency?: number;
  /**
   * Password checks that may wait for a free slot, 0 to 10 000; beyond them a login or
   * registration answers 503 `server_busy` at once. Default 16.
   */
  readonly passwordHashQueue?: number;
  /**
   * How long audit events are kept: `tessera purge` deletes older ones. `"90d"` or seconds, 1 day
   * to 10 years. Default `90d`.
   */
  readonly auditRetention?: string | number;
  /**
   * How often the signing key is replaced: a duration from `1h` to `365d` (`"30d"` or seconds), or
   * `"off"`. Each new key is published one JWKS cache lifetime before it signs, and the key it
   * replaces stays published until the tokens it signed have expired. Default `30d`; `off` in
   * development mode (no `secret`) and with `HS256`, whose key is the configured secret.
   */
  readonly keyRotation?: string | number;
  /**
   * SMTP server that account mail (email verification, password reset) goes through:
   * `smtp://user:password@host:587` (STARTTLS when offered) or `smtps://…:465`. Default none: the
   * email features, an address at registration included, answer 501 `mail_unavailable`.
   */
  readonly smtpUrl?: string;
  /** The `From` of account mail, e.g. `Example <no-reply@example.com>`; required with `smtpUrl`. */
  readonly mailFrom?: string;
}

/** Shortest and longest {@link ServiceOptions.keyRotation}, in seconds. */
export const KEY_ROTATION_BOUNDS = Object.freeze({ minSeconds: 3600, maxSeconds: 365 * 86400 });

/** Who may create accounts: see {@link ServiceOptions.registration}. */
export const REGISTRATION_MODES = ["open", "closed"] as const;

/** One of {@link REGISTRATION_MODES}. */
export type Registration = (typeof REGISTRATION_MODES)[number];

/** The settings of {@link ServiceOptions} read from the environment. */
export const SERVICE_SETTINGS = {
  databaseUrl: {
    variable: "TESSERA_DATABASE_URL",
    flag: "--database",
    type: "string",
    default: "sqlite:./data/tessera.db",
  },
  databasePoolSize: { variable: "TESSERA_DATABASE_POOL_SIZE", type: "integer", default: "10" },
  secret: { variable: "TESSERA_SECRET", type: "string", default: "none (development mode)" },
  issuer: { variable: "TESSERA_ISSUER", flag: "--issuer", type: "string", default: "http://{host}:{port}" },
  audience: { variable: "TESSERA_AUDIENCE", flag: "--audience", type: "string", default: "tessera" },
  signingAlgorithm: { variable: "TESSERA_SIGNING_ALG", type: "string", default: "ES256" },
  hs256Secret: { variable: "TESSERA_HS256_SECRET", type: "string", default: "none" },
  accessTokenTtl: { variable: "TESSERA_ACCESS_TOKEN_TTL", type: "string", default: "15m" },
  refreshTokenTtl: { variable: "TESSERA_REFRESH_TOKEN_TTL", type: "string", default: "3d" },
  sessionTtl: { variable: "TESSERA_SESSION_TTL", type: "string", default: "30d" },
  refreshGrace: { variable: "TESSERA_REFRESH_GRACE", type: "string", default: "10s" },
  clockSkew: { variable: "TESSERA_CLOCK_SKEW", type: "string", default: "0" },
  introspectionSecret: { variable: "TESSERA_INTROSPECTION_SECRET", type: "string", default: "none" },
  redisUrl: { variable: "TESSERA_REDIS_URL", type: "string", default: "none" },
  registration: { variable: "TESSERA_REGISTRATION", type: "string", default: "open" },
  passwordHashConcurrency: { variable: "TESSERA_PASSWORD_HASH_CONCURRENCY", type: "integer", default: "1" },
  passwordHashQueue: { variable: "TESSERA_PASSWORD_HASH_QUEUE", type: "integer", default: "16" },
  auditRetention: { variable: "TESSERA_AUDIT_RETENTION", type: "string", default: "90d" },
  keyRotation: { variable: "TESSERA_KEY_ROTATION", type: "string", default: "30d (off in development mode)" },
  smtpUrl: { variable: "TESSERA_SMTP_URL", type: "string", default: "none (email features off)" },
  mailFrom: { variable: "TESSERA_MAIL_FROM", type: "string", default: "none" },
} as const satisfies Partial<Record<keyof ServiceOptions, SettingSpec>>;

/** The option names of {@link ServiceOptions}, including those without a variable. */
export const SERVICE_OPTION_NAMES: readonly (keyof ServiceOptions)[] = Object.freeze([
  ...(Object.keys(SERVICE_SETTINGS) as (keyof ServiceOptions)[]),
  "production",
  "defaultRoles",
]);

/** The resolved, frozen configuration of the service. */
export interface ServiceConfig {
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
  readonly introspectionSecret: string | null;
  readonly redisUrl: string | null;
  readonly defaultRoles: readonly string[];
  readonly registration: Registration;
  readonly passwordHashConcurrency: number;
  readonly passwordHashQueue: number;
  /** Audit events older than this are purged, in seconds. */
  readonly auditRetentionSeconds: number;
  /** Seconds between scheduled signing-key rotations, or `null` when they are off. */
  readonly keyRotationSeconds: number | null;
  /** The SMTP server of account mail, or `null` when email features are off. */
  readonly smtpUrl: string | null;
  /** The `From` of account mail; set whenever {@link smtpUrl} is. */
  readonly mailFrom: string | null;
}

const DAY = 86400;

function bounded(value: string | number, name: string, maxSeconds: number): number {
  const seconds = parseDurationSeconds(value, name);
  if (seconds <= 0 || seconds > maxSeconds)
    throw new TypeError(`${name} must be more than 0 s and at most ${maxSeconds / DAY} d`);
  return seconds;
}

/** `value` if it is a whole number from `min` to `max`; throws `TypeError` naming `name` otherwise. */
export function integerIn(value: number, min: number, max: number, name: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function keyRotationOf(
  value: string | number | undefined,
  developmentMode: boolean,
  algorithm: SigningAlgorithm,
): number | null {
  if (value === undefined) return developmentMode || algorithm === "HS256" ? null : 30 * DAY;
  if (value === "off") return null;
  if (algorithm === "HS256") throw new TypeError("keyRotation must be off with HS256: rotate TESSERA_HS256_SECRET");
  const seconds = parseDurationSeconds(value, "keyRotation");
  const { minSeconds, maxSeconds } = KEY_ROTATION_BOUNDS;
  if (seconds < minSeconds || seconds > maxSeconds) {
    throw new TypeError(`keyRotation must be off or from ${minSeconds / 3600}h to ${maxSeconds / DAY}d`);
  }
  return seconds;
}

/**
 * Applies defaults to `options` and checks every value once; `defaultIssuer` is the issuer
 * when none is set. Never mutates `options`; throws `TypeError` naming the option for any bad
 * value instead of falling back.
 */
export function resolveServiceConfig(options: ServiceOptions, defaultIssuer: string): Readonly<ServiceConfig> {
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
  if (refreshTokenTtlSeconds < accessTokenTtlSeconds)
    throw new TypeError("refreshTokenTtl must be at least accessTokenTtl");
  if (sessionTtlSeconds < refreshTokenTtlSeconds) throw new TypeError("sessionTtl must be at least refreshTokenTtl");
  const refreshGraceSeconds = parseDurationSeconds(options.refreshGrace ?? "10s", "refreshGrace");
  if (refreshGraceSeconds > 300) throw new TypeError("refreshGrace must be at most 5m");
  const clockSkewSeconds = parseDurationSeconds(options.clockSkew ?? 0, "clockSkew");
  if (clockSkewSeconds > 300) throw new TypeError("clockSkew must be at most 5m");
  const audience = options.audience ?? "tessera";
  if (audience.trim() === "" || audience.length > 256) throw new TypeError("audience must be 1 to 256 characters");
  // Kept as written: `iss` is compared as an exact string.
  const issuer = options.issuer ?? defaultIssuer;
  parseHttpUrl(issuer, "issuer");
  const defaultRoles = [...(options.defaultRoles ?? ["user"])];
  if (!defaultRoles.every((role) => typeof role === "string" && ROLE_NAME.test(role))) {
    throw new TypeError("defaultRoles must be role names of letters, digits, _ : . -");
  }
  const introspectionSecret = options.introspectionSecret ? options.introspectionSecret : null;
  if (introspectionSecret !== null && introspectionSecret.length < MIN_SECRET_LENGTH) {
    throw new TypeError(`introspectionSecret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  const registration = options.registration ?? "open";
  if (!REGISTRATION_MODES.includes(registration)) {
    throw new TypeError(`registration must be ${REGISTRATION_MODES.join(" or ")}`);
  }
  const smtpUrl = options.smtpUrl ? options.smtpUrl : null;
  const mailFrom = options.mailFrom ? options.mailFrom : null;
  if (smtpUrl !== null) {
    let protocol: string | null = null;
    try {
      protocol = new URL(smtpUrl).protocol;
    } catch {
      protocol = null;
    }
    if (protocol !== "smtp:" && protocol !== "smtps:")
      throw new TypeError("smtpUrl must be an smtp:// or smtps:// URL");
    if (mailFrom === null) throw new TypeError("mailFrom is required with smtpUrl");
  }
  if (mailFrom !== null && (mailFrom.length > 320 || /[\r\n]/.test(mailFrom)))
    throw new TypeError("mailFrom must be one line of at most 320 characters");
  const auditRetentionSeconds = bounded(options.auditRetention ?? "90d", "auditRetention", 3650 * DAY);
  if (auditRetentionSeconds < DAY) throw new TypeError("auditRetention must be at least 1 d");
  return Object.freeze({
    databaseUrl,
    databasePoolSize: integerIn(options.databasePoolSize ?? 10, 1, 1000, "databasePoolSize"),
    secret,
    developmentMode: secret === null,
    issuer,
    audience,
    signingAlgorithm,
    hs256Secret,
    accessTokenTtlSeconds,
    refreshTokenTtlSeconds,
    sessionTtlSeconds,
    refreshGraceSeconds,
    clockSkewSeconds,
    introspectionSecret,
    redisUrl: options.redisUrl ? options.redisUrl : null,
    defaultRoles: Object.freeze(defaultRoles),
    registration,
    passwordHashConcurrency: integerIn(options.passwordHashConcurrency ?? 1, 1, 64, "passwordHashConcurrency"),
    passwordHashQueue: integerIn(options.passwordHashQueue ?? 16, 0, 10_000, "passwordHashQueue"),
    auditRetentionSeconds,
    keyRotationSeconds: keyRotationOf(options.keyRotation, secret === null, signingAlgorithm),
    smtpUrl,
    mailFrom,
  });
}
