import { readCappedText } from "./read-capped.js";
import type { Clock } from "../core/clock.js";
import { JWKS_CACHE_SECONDS, type SigningAlgorithm, type VerificationKey } from "../core/signing-key.js";
import { findKeyIn, type KeyPolicy, keysFromJwks, type KeysByKid } from "./jwk-keys.js";
import type { VerifierLogger } from "./verifier-options.js";

/**
 * Bounds applied to a JWKS response's `Cache-Control: max-age`, in seconds; without one, the
 * keys are kept as long as Tessera's own JWKS route says ({@link JWKS_CACHE_SECONDS}).
 */
export const JWKS_MAX_AGE = Object.freeze({
  minSeconds: 30,
  maxSeconds: 24 * 60 * 60,
  defaultSeconds: JWKS_CACHE_SECONDS,
});

/** Largest JWKS response body accepted, in bytes. */
const MAX_JWKS_BODY_LENGTH = 512 * 1024;

/** Options of {@link JwksCache}. */
export interface JwksCacheOptions {
  readonly uri: string;
  /** Which keys of the set are usable. */
  readonly policy: KeyPolicy;
  /** Least time between two fetches caused by unknown `kid`s or failures, in seconds. */
  readonly cooldownSeconds: number;
  /** Abort a fetch after this many milliseconds. */
  readonly timeoutMs: number;
  readonly fetch: typeof globalThis.fetch;
  readonly clock: Clock;
  readonly logger: VerifierLogger;
}

/** Seconds to keep a JWKS response, from its `Cache-Control` header, clamped to {@link JWKS_MAX_AGE}. */
export function jwksMaxAgeSeconds(cacheControl: string | null): number {
  if (cacheControl === null) return JWKS_MAX_AGE.defaultSeconds;
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(cacheControl)) return JWKS_MAX_AGE.minSeconds;
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?\s*(?:,|$)/i.exec(cacheControl);
  if (!match?.[1]) return JWKS_MAX_AGE.defaultSeconds;
  return Math.min(JWKS_MAX_AGE.maxSeconds, Math.max(JWKS_MAX_AGE.minSeconds, Number(match[1])));
}

/**
 * The keys of a remote JWK Set. Fetched on first use, kept for the response's max-age (then
 * refreshed in the background while the old keys keep serving), refetched for an unknown `kid`
 * at most once per cooldown, with concurrent callers sharing one in-flight fetch. A failed fetch
 * keeps the keys already loaded.
 */
export class JwksCache {
  readonly #options: JwksCacheOptions;
  #keys: KeysByKid = new Map();
  #loaded = false;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #refreshAt = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | null = null;
  #fetches = 0;
  #weakRsaWarned = "";

  constructor(options: JwksCacheOptions) {
    this.#options = options;
  }

  /** True once a JWK Set with at least one usable key was loaded. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** How many fetches were started. */
  get fetches(): number {
    return this.#fetches;
  }

  /** The loaded key for `kid` and `alg`, or `undefined`. Never fetches. */
  find(kid: string | undefined, alg: SigningAlgorithm): VerificationKey | undefined {
    return findKeyIn(this.#keys, kid, alg);
  }

  /** Starts a background refresh when the keys are past their max-age. Never throws. */
  refreshIfStale(): void {
    if (this.#inFlight === null && this.#options.clock.now().getTime() >= this.#refreshAt) void this.#refresh();
  }

  /**
   * Loads the key for `kid` if it is missing and the cooldown allows a fetch; starts a background
   * refresh when the keys are past their max-age. Never throws.
   */
  async prepare(kid: string | undefined, alg: SigningAlgorithm): Promise<void> {
    const now = this.#options.clock.now().getTime();
    const stale = now >= this.#refreshAt;
    if (this.find(kid, alg)) {
      if (stale && this.#inFlight === null) void this.#refresh();
      return;
    }
    if (this.#inFlight !== null) return this.#inFlight;
    // Unknown kids come from anyone who can send a token: they may cost one fetch per cooldown.
    if (stale || now - this.#lastAttemptAt >= this.#options.cooldownSeconds * 1000) await this.#refresh();
  }

  #refresh(): Promise<void> {
    this.#inFlight ??= this.#load().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  async #load(): Promise<void> {
    const { uri, policy, cooldownSeconds, timeoutMs, clock, logger } = this.#options;
    const startedAt = clock.now().getTime();
    this.#lastAttemptAt = startedAt;
    this.#fetches += 1;
    try {
      const response = await this.#options.fetch(uri, {
        headers: { accept: "application/jwk-set+json, application/json" },
        redirect: "error",
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!response.ok) throw new Error(`the JWKS endpoint answered ${response.status}`);
      const text = await readCappedText(response, MAX_JWKS_BODY_LENGTH, "JWKS");
      const { keys, weakRsaKeys } = keysFromJwks(JSON.parse(text), policy);
      const weak = weakRsaKeys.map((skipped) => `${skipped.kid} (${skipped.bits} bits)`);
      // Said once per change of the set, not at every refresh.
      if (weak.length > 0 && weak.join() !== this.#weakRsaWarned)
        logger.warn(
          { jwksUri: uri, kids: weak },
          `JWKS: skipped RSA keys shorter than minRsaModulusBits (${policy.minRsaModulusBits})`,
        );
      this.#weakRsaWarned = weak.join();
      if (keys.size === 0) throw new Error("the JWKS has no key usable with the allowed algorithms");
      this.#keys = keys;
      this.#loaded = true;
      this.#refreshAt = startedAt + jwksMaxAgeSeconds(response.headers.get("cache-control")) * 1000;
    } catch (error) {
      this.#refreshAt = startedAt + cooldownSeconds * 1000;
      logger.warn(
        { err: error instanceof Error ? error.message : "unknown", jwksUri: uri },
        "JWKS fetch failed; keeping the keys already loaded",
      );
    }
  }
}
