import { REVOCATION_CHANNEL } from "../core/revocation.js";
import { type Clock, systemClock } from "../core/clock.js";
import type { Logger } from "../core/logger.js";
import { parseHttpUrl } from "../core/http-url.js";
import {
  hmacSigningKey,
  isSigningAlgorithm,
  MIN_HMAC_SECRET_BYTES,
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
  type VerificationKey,
} from "../core/signing-key.js";
import {
  DEFAULT_MIN_RSA_MODULUS_BITS,
  keysFromJwks,
  type JsonWebKeySet,
  type KeysByKid,
  MIN_RSA_MODULUS_BITS,
} from "./jwk-keys.js";
import { DEFAULT_TOKEN_CACHE_ENTRIES } from "./token-cache.js";

/** Where the verifier reports trouble it recovers from (JWKS or feed fetch failures, Redis down): a logger's `warn`. */
export type VerifierLogger = Pick<Logger, "warn">;

/** Options of `revocation` in {@link VerifierOptions}. */
export interface RevocationOptions {
  /** The Tessera revocation feed, e.g. `http://127.0.0.1:3000/auth/revocations`. */
  readonly url: string | URL;
  /** Seconds between two polls of the feed; at least 0.05. Required. */
  readonly intervalSeconds: number;
  /** Redis to subscribe to for revocations pushed within milliseconds. Default none (polling only). */
  readonly redisUrl?: string;
  /** Redis channel. Default `tessera:revocations`. */
  readonly channel?: string;
  /**
   * How old, in seconds, the revocation state may grow (time since the last good poll of the feed
   * or the last message on the Redis channel) before tokens are refused with
   * `revocation_feed_unavailable` (503); until the feed first answers, tokens are refused too.
   * 1 to 86400, and at least twice `intervalSeconds`. Default: the feed's `window_seconds` (the
   * issuer's access-token lifetime; Tessera's default is 900), but at least twice `intervalSeconds`.
   */
  readonly maxStalenessSeconds?: number;
}

/** Options of `createVerifier()`. Exactly one of `jwksUri`, `jwks` and `secret` is required. */
export interface VerifierOptions {
  /** The required `iss`. Required. */
  readonly issuer: string;
  /** Accepted `aud` values; a token must name one. Required. */
  readonly audience: string | readonly string[];
  /** Accepted `alg` values, never taken from the token. Required. */
  readonly algorithms: readonly SigningAlgorithm[];
  /** URL of the issuer's JWK Set, e.g. `http://127.0.0.1:3000/.well-known/jwks.json`. */
  readonly jwksUri?: string | URL;
  /** A fixed JWK Set (public keys). */
  readonly jwks?: JsonWebKeySet;
  /** The HS256 shared secret, at least 32 bytes; only with `algorithms: ["HS256"]`. */
  readonly secret?: string | Uint8Array;
  /** Tolerance for `exp`, `nbf` and `iat`, in seconds, 0 to 300. Default 0. */
  readonly clockSkewSeconds?: number;
  /** Least time between JWKS fetches caused by unknown `kid`s or failures, in seconds, 1 to 3600. Default 30. */
  readonly jwksCooldownSeconds?: number;
  /** Timeout of each JWKS and feed request, in milliseconds, 100 to 60000. Default 5000. */
  readonly fetchTimeoutMs?: number;
  /**
   * Least modulus length, in bits, of RSA keys used for RS256 and PS256; shorter keys in a JWK Set
   * are skipped. 2048 to 16384. Default 3072 (ASVS 11.2.3); set 2048 only for an issuer that
   * still signs with 2048-bit keys.
   */
  readonly minRsaModulusBits?: number;
  /** Verified-token cache; `false` turns it off. Default `{ maxEntries: 1000 }`. */
  readonly cache?: false | { readonly maxEntries?: number };
  /** Refuse tokens of sessions that ended (logout, revocation). Default none. */
  readonly revocation?: RevocationOptions;
  /** The `fetch` used for the JWKS and the feed. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch;
  /** Source of "now". Default the system clock. */
  readonly clock?: Clock;
  /** Default: `console.warn`. */
  readonly logger?: VerifierLogger;
}

/** How the verifier finds keys. */
export type KeySource =
  | { readonly kind: "remote"; readonly uri: string }
  | { readonly kind: "static"; readonly keys: KeysByKid }
  | { readonly kind: "secret"; readonly key: VerificationKey };

/** {@link VerifierOptions} with defaults applied, checked and frozen. */
export interface VerifierConfig {
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly algorithms: readonly SigningAlgorithm[];
  readonly keySource: KeySource;
  readonly clockSkewSeconds: number;
  readonly jwksCooldownSeconds: number;
  readonly fetchTimeoutMs: number;
  readonly minRsaModulusBits: number;
  /** 0 when the cache is off. */
  readonly cacheMaxEntries: number;
  readonly revocation: Readonly<{
    url: string;
    intervalSeconds: number;
    redisUrl: string | null;
    channel: string;
    /** `null`: the feed's `window_seconds`, at least twice `intervalSeconds`. */
    maxStalenessSeconds: number | null;
  }> | null;
  readonly fetch: typeof globalThis.fetch;
  readonly clock: Clock;
  readonly logger: VerifierLogger;
}

export { REVOCATION_CHANNEL };

const consoleLogger: VerifierLogger = Object.freeze({
  warn: (details: Record<string, unknown>, message: string) => console.warn(`tessera/verify: ${message}`, details),
});

const OPTION_NAMES = Object.freeze([
  "issuer",
  "audience",
  "algorithms",
  "jwksUri",
  "jwks",
  "secret",
  "clockSkewSeconds",
  "jwksCooldownSeconds",
  "fetchTimeoutMs",
  "minRsaModulusBits",
  "cache",
  "revocation",
  "fetch",
  "clock",
  "logger",
]);

// A misspelled option must not silently become its default.
function refuseUnknownOptions(value: object, known: readonly string[], prefix: string): void {
  const unknown = Object.keys(value).filter((name) => !known.includes(name));
  if (unknown.length > 0)
    throw new TypeError(
      `unknown option ${prefix}${unknown[0]}; known: ${known.map((name) => prefix + name).join(", ")}`,
    );
}

/** `fallback` when `value` is absent; `null` is a wrong value, not an absent one. */
function orDefault<T>(value: T | undefined, fallback: T): T {
  return value === undefined ? fallback : value;
}

function numberIn(value: unknown, min: number, max: number, name: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`${name} must be a number from ${min} to ${max}`);
  }
  return value;
}

function httpUrl(value: unknown, name: string): string {
  return parseHttpUrl(value, name).href;
}

function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "")
    throw new TypeError(`${name} is required and must be a non-empty string`);
  return value;
}

function resolveKeySource(
  options: VerifierOptions,
  algorithms: readonly SigningAlgorithm[],
  minRsaModulusBits: number,
): KeySource {
  const given = (["jwksUri", "jwks", "secret"] as const).filter((name) => options[name] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(
      `exactly one of jwksUri, jwks or secret is required${given.length > 1 ? ` (got ${given.join(" and ")})` : ""}`,
    );
  }
  const symmetric = algorithms.includes("HS256");
  if (options.secret !== undefined) {
    // A secret verifies HS256 only: mixing it with public-key algorithms invites key confusion.
    if (algorithms.length !== 1 || !symmetric) throw new TypeError('algorithms must be ["HS256"] when secret is given');
    const secret =
      typeof options.secret === "string"
        ? Buffer.from(options.secret, "utf8")
        : options.secret instanceof Uint8Array
          ? Buffer.from(options.secret)
          : null;
    if (secret === null) throw new TypeError("secret must be a string or a Uint8Array");
    if (secret.length < MIN_HMAC_SECRET_BYTES)
      throw new TypeError(`secret must be at least ${MIN_HMAC_SECRET_BYTES} bytes`);
    const { kid } = hmacSigningKey(secret);
    return { kind: "secret", key: Object.freeze({ kid, alg: "HS256", key: secret }) };
  }
  if (symmetric)
    throw new TypeError("algorithms must not include HS256 with jwksUri or jwks: a JWK Set publishes public keys only");
  if (options.jwksUri !== undefined) return { kind: "remote", uri: httpUrl(options.jwksUri, "jwksUri") };
  const { keys, weakRsaKeys } = keysFromJwks(options.jwks, { algorithms, minRsaModulusBits });
  if (keys.size === 0) {
    const weak = weakRsaKeys[0];
    if (weak === undefined)
      throw new TypeError("jwks must hold at least one public signing key usable with algorithms");
    throw new TypeError(
      `jwks holds no usable key: RSA key ${weak.kid} has ${weak.bits} bits, ` +
        `under minRsaModulusBits (${minRsaModulusBits})`,
    );
  }
  return { kind: "static", keys };
}

function resolveRevocation(revocation: RevocationOptions | undefined): VerifierConfig["revocation"] {
  if (revocation === undefined) return null;
  if (typeof revocation !== "object" || revocation === null) throw new TypeError("revocation must be an object");
  refuseUnknownOptions(
    revocation,
    ["url", "intervalSeconds", "redisUrl", "channel", "maxStalenessSeconds"],
    "revocation.",
  );
  const intervalSeconds = numberIn(revocation.intervalSeconds, 0.05, 3600, "revocation.intervalSeconds");
  let maxStalenessSeconds: number | null = null;
  if (revocation.maxStalenessSeconds !== undefined) {
    maxStalenessSeconds = numberIn(revocation.maxStalenessSeconds, 1, 86_400, "revocation.maxStalenessSeconds");
    // One late or failed poll must not refuse every token.
    if (maxStalenessSeconds < 2 * intervalSeconds)
      throw new TypeError("revocation.maxStalenessSeconds must be at least twice revocation.intervalSeconds");
  }
  const redisUrl =
    revocation.redisUrl === undefined ? null : nonEmptyString(revocation.redisUrl, "revocation.redisUrl");
  if (redisUrl !== null && !/^rediss?:\/\//.test(redisUrl))
    throw new TypeError("revocation.redisUrl must be a redis:// or rediss:// URL");
  return Object.freeze({
    url: httpUrl(revocation.url, "revocation.url"),
    intervalSeconds,
    redisUrl,
    channel:
      revocation.channel === undefined ? REVOCATION_CHANNEL : nonEmptyString(revocation.channel, "revocation.channel"),
    maxStalenessSeconds,
  });
}

/**
 * Applies defaults to `options` and checks every value once. Never mutates `options`; throws
 * `TypeError` naming the option for a missing issuer, audience or algorithms, for none or
 * several key sources, and for any bad value.
 */
export function resolveVerifierOptions(options: VerifierOptions): Readonly<VerifierConfig> {
  if (typeof options !== "object" || options === null) throw new TypeError("createVerifier() needs an options object");
  refuseUnknownOptions(options, OPTION_NAMES, "");
  const issuer = nonEmptyString(options.issuer, "issuer");
  const audiences =
    typeof options.audience === "string"
      ? [options.audience]
      : Array.isArray(options.audience)
        ? [...(options.audience as unknown[])]
        : [];
  if (audiences.length === 0 || !audiences.every((item) => typeof item === "string" && item !== "")) {
    throw new TypeError("audience is required: a non-empty string or a non-empty list of them");
  }
  const algorithms = Array.isArray(options.algorithms) ? [...(options.algorithms as unknown[])] : [];
  if (algorithms.length === 0 || !algorithms.every(isSigningAlgorithm)) {
    throw new TypeError(`algorithms is required: a non-empty list from ${SIGNING_ALGORITHMS.join(", ")}`);
  }
  const minRsaModulusBits = numberIn(
    orDefault(options.minRsaModulusBits, DEFAULT_MIN_RSA_MODULUS_BITS),
    MIN_RSA_MODULUS_BITS,
    16_384,
    "minRsaModulusBits",
  );
  if (!Number.isInteger(minRsaModulusBits)) throw new TypeError("minRsaModulusBits must be a whole number");
  const keySource = resolveKeySource(options, algorithms, minRsaModulusBits);
  let cacheMaxEntries = DEFAULT_TOKEN_CACHE_ENTRIES;
  if (options.cache === false) cacheMaxEntries = 0;
  else if (options.cache !== undefined) {
    if (typeof options.cache !== "object" || options.cache === null)
      throw new TypeError("cache must be false or { maxEntries }");
    refuseUnknownOptions(options.cache, ["maxEntries"], "cache.");
    cacheMaxEntries =
      options.cache.maxEntries === undefined
        ? DEFAULT_TOKEN_CACHE_ENTRIES
        : numberIn(options.cache.maxEntries, 1, 1_000_000, "cache.maxEntries");
    if (!Number.isInteger(cacheMaxEntries)) throw new TypeError("cache.maxEntries must be a whole number");
  }
  const fetchFunction = orDefault(options.fetch, globalThis.fetch);
  if (typeof fetchFunction !== "function") throw new TypeError("fetch must be a function");
  if (options.clock !== undefined && typeof options.clock?.now !== "function")
    throw new TypeError("clock must have a now() method");
  if (options.logger !== undefined && typeof options.logger?.warn !== "function")
    throw new TypeError("logger must have a warn() method");
  return Object.freeze({
    issuer,
    audiences: Object.freeze(audiences as string[]),
    algorithms: Object.freeze(algorithms),
    keySource: Object.freeze(keySource),
    clockSkewSeconds: numberIn(orDefault(options.clockSkewSeconds, 0), 0, 300, "clockSkewSeconds"),
    jwksCooldownSeconds: numberIn(orDefault(options.jwksCooldownSeconds, 30), 1, 3600, "jwksCooldownSeconds"),
    fetchTimeoutMs: numberIn(orDefault(options.fetchTimeoutMs, 5000), 100, 60_000, "fetchTimeoutMs"),
    minRsaModulusBits,
    cacheMaxEntries,
    revocation: resolveRevocation(options.revocation),
    fetch: fetchFunction,
    clock: orDefault(options.clock, systemClock),
    logger: orDefault(options.logger, consoleLogger),
  });
}
