import {
  type AccessTokenClaims,
  createAccessTokenVerifier,
  createProtectedHeaderDecoder,
  type ProtectedHeader,
} from "../core/access-token.js";
import { readBearerToken } from "../core/bearer.js";
import { epochSeconds } from "../core/clock.js";
import { fail } from "../core/errors.js";
import { sameKey, type SigningAlgorithm, type VerificationKey } from "../core/signing-key.js";
import { findKeyIn } from "./jwk-keys.js";
import { JwksCache } from "./jwks-cache.js";
import { RevocationFeed } from "./revocation-feed.js";
import { RevokedSessions } from "./revoked-sessions.js";
import { TokenCache } from "./token-cache.js";
import { resolveVerifierOptions, type VerifierConfig, type VerifierOptions } from "./verifier-options.js";

/** Counters for monitoring a {@link Verifier}. */
export interface VerifierStats {
  readonly tokenCacheHits: number;
  readonly tokenCacheMisses: number;
  readonly tokenCacheSize: number;
  /** JWKS fetches started (0 without `jwksUri`). */
  readonly jwksFetches: number;
  /** Revoked sessions currently remembered. */
  readonly revokedSessions: number;
  /** True while subscribed to the Redis revocation channel. */
  readonly revocationChannelSubscribed: boolean;
  /**
   * True while tokens are refused with `revocation_feed_unavailable`: the feed has not answered yet,
   * or not within `revocation.maxStalenessSeconds`. Always false without `revocation`.
   */
  readonly revocationStale: boolean;
  /**
   * Seconds since the last good poll of the feed (or a Redis message after it); `null` without
   * `revocation` or before the feed first answered.
   */
  readonly revocationAgeSeconds: number | null;
}

/** Verifies Tessera access tokens for a resource server. */
export interface Verifier {
  /** The resolved, frozen options. */
  readonly config: Readonly<VerifierConfig>;
  /**
   * Verifies `token` and returns its frozen claims. Throws a `TesseraError` with code
   * `access_token_malformed`, `access_token_invalid`, `access_token_expired`,
   * `access_token_not_yet_valid`, `access_token_claim_invalid` or `access_token_revoked`;
   * `verification_keys_unavailable` when no JWK Set could be loaded yet; and, with `revocation`,
   * `revocation_feed_unavailable` for an otherwise valid token while the feed has not answered yet
   * or not within `revocation.maxStalenessSeconds`.
   */
  verify(token: string): Promise<AccessTokenClaims>;
  /**
   * Verifies the bearer token of an `Authorization` header value. Throws as {@link verify}, and
   * `access_token_missing` when the header holds no bearer credentials.
   */
  authenticate(authorization: string | readonly string[] | undefined): Promise<AccessTokenClaims>;
  /**
   * {@link authenticate} without a promise where none is needed: returns the claims at once when
   * the keys are loaded (and the revocation feed has answered once), a promise only while keys or
   * the feed must be fetched; throws synchronously what `authenticate` would reject with. For
   * framework adapters, which save a microtask turn per request with it.
   */
  authenticateNow(
    authorization: string | readonly string[] | undefined,
  ): AccessTokenClaims | Promise<AccessTokenClaims>;
  /** Counters for monitoring. */
  stats(): VerifierStats;
  /** Stops revocation polling and closes the Redis subscription. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a verifier for Tessera access tokens. Options are checked once: a missing `issuer`,
 * `audience` or `algorithms`, none or several of `jwksUri` / `jwks` / `secret`, or any bad value
 * throws a `TypeError` naming the option.
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const config = resolveVerifierOptions(options);
  const { keySource, clock } = config;
  const jwks =
    keySource.kind === "remote"
      ? new JwksCache({
          uri: keySource.uri,
          policy: { algorithms: config.algorithms, minRsaModulusBits: config.minRsaModulusBits },
          cooldownSeconds: config.jwksCooldownSeconds,
          timeoutMs: config.fetchTimeoutMs,
          fetch: config.fetch,
          clock,
          logger: config.logger,
        })
      : null;
  const findKey = (kid: string | undefined, alg: SigningAlgorithm): VerificationKey | undefined => {
    switch (keySource.kind) {
      case "remote":
        return jwks?.find(kid, alg);
      case "static":
        return findKeyIn(keySource.keys, kid, alg);
      case "secret":
        return alg === "HS256" ? keySource.key : undefined;
    }
  };
  const verifySignedToken = createAccessTokenVerifier({
    issuer: config.issuer,
    audience: config.audiences,
    algorithms: config.algorithms,
    findKey,
    clockSkewSeconds: config.clockSkewSeconds,
    clock,
  });
  const decodeHeader = createProtectedHeaderDecoder(config.algorithms);
  const cache = new TokenCache(config.cacheMaxEntries);
  const revoked = new RevokedSessions(config.clockSkewSeconds);
  const feed =
    config.revocation === null
      ? null
      : new RevocationFeed({
          ...config.revocation,
          timeoutMs: config.fetchTimeoutMs,
          fetch: config.fetch,
          clock,
          logger: config.logger,
          revoked,
        });
  let hits = 0;
  let misses = 0;

  function refuseRevoked(claims: AccessTokenClaims): AccessTokenClaims {
    if (revoked.size > 0 && revoked.has(claims.sid, epochSeconds(clock.now())))
      fail("access_token_revoked", "the session of the access token has ended");
    // Fail closed: a token whose session may have ended unseen is not accepted (a known
    // revocation above still answers 401).
    if (feed?.isStale(clock.now().getTime()))
      fail("revocation_feed_unavailable", "the revocation feed has not answered recently enough to check the session");
    return claims;
  }

  function verifyWithLoadedKey(token: string, header: ProtectedHeader): AccessTokenClaims {
    const claims = refuseRevoked(verifySignedToken(token, header));
    if (cache.enabled) cache.set(token, { claims, kid: header.kid, key: findKey(header.kid, header.alg)! });
    return claims;
  }

  async function verifyAfterLoadingKey(jwksCache: JwksCache, token: string, header: ProtectedHeader) {
    await jwksCache.prepare(header.kid, header.alg);
    if (!jwksCache.loaded) fail("verification_keys_unavailable", "the issuer's JWK Set could not be loaded");
    return verifyWithLoadedKey(token, header);
  }

  // Synchronous unless a key or the feed's first answer must be awaited.
  function verifyNow(token: string): AccessTokenClaims | Promise<AccessTokenClaims> {
    if (typeof token !== "string" || token === "") fail("access_token_malformed", "the access token is empty");
    // A restarted API must not accept tokens of sessions that ended before it started.
    if (feed !== null && !feed.settled) return feed.ready.then(() => verifyNow(token));
    if (cache.enabled) {
      const cached = cache.get(token, epochSeconds(clock.now()));
      // Served from the cache only while the key that verified it is still trusted: withdrawing
      // a key from the JWK Set reaches cached tokens too.
      if (cached !== undefined) {
        jwks?.refreshIfStale();
        const current = findKey(cached.kid, cached.key.alg);
        if (current !== undefined && sameKey(current, cached.key)) {
          hits += 1;
          return refuseRevoked(cached.claims);
        }
        cache.delete(token);
      }
    }
    misses += 1;
    const header = decodeHeader(token);
    if (jwks !== null) {
      if (jwks.find(header.kid, header.alg) === undefined) return verifyAfterLoadingKey(jwks, token, header);
      jwks.refreshIfStale();
    }
    return verifyWithLoadedKey(token, header);
  }

  let closing: Promise<void> | null = null;
  return Object.freeze({
    config,
    async verify(token: string): Promise<AccessTokenClaims> {
      return verifyNow(token);
    },
    async authenticate(authorization: string | readonly string[] | undefined): Promise<AccessTokenClaims> {
      return verifyNow(readBearerToken(authorization));
    },
    authenticateNow: (authorization: string | readonly string[] | undefined) =>
      verifyNow(readBearerToken(authorization)),
    stats: (): VerifierStats => ({
      tokenCacheHits: hits,
      tokenCacheMisses: misses,
      tokenCacheSize: cache.size,
      jwksFetches: jwks?.fetches ?? 0,
      revokedSessions: revoked.size,
      revocationChannelSubscribed: feed?.subscribed ?? false,
      revocationStale: feed?.isStale(clock.now().getTime()) ?? false,
      revocationAgeSeconds: feed?.ageSeconds(clock.now().getTime()) ?? null,
    }),
    close: (): Promise<void> => (closing ??= feed?.close() ?? Promise.resolve()),
  });
}
