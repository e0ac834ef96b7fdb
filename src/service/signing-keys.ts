import {
  type AccessTokenClaims,
  type AccessTokenSubject,
  createAccessTokenSigner,
  createAccessTokenVerifier,
  decodeProtectedHeader,
  type SignedAccessToken,
} from "../core/access-token.js";
import type { Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { PublicJwk } from "../core/signing-key.js";
import type { ServiceConfig } from "./config.js";
import { type KeyRing, type KeyRingLoad, type KeyRingOptions, loadKeyRing, rotateSigningKey } from "./key-ring.js";

const KEY_RELOAD_COOLDOWN_MS = 10_000;

type Signer = ReturnType<typeof createAccessTokenSigner>;

/**
 * The key lifecycle of a running instance: signs and verifies access tokens with the current
 * key ring, reloads it (keys rotated elsewhere) and rotates it.
 */
export class SigningKeys {
  readonly #config: Readonly<ServiceConfig>;
  readonly #clock: Clock;
  readonly #ringOptions: KeyRingOptions;
  readonly #verify: ReturnType<typeof createAccessTokenVerifier>;
  #ring: KeyRing;
  #sign: Signer;
  #lastReload = Number.NEGATIVE_INFINITY;
  #reload: Promise<void> | null = null;

  private constructor(config: Readonly<ServiceConfig>, clock: Clock, ringOptions: KeyRingOptions, ring: KeyRing) {
    this.#config = config;
    this.#clock = clock;
    this.#ringOptions = ringOptions;
    this.#ring = ring;
    this.#sign = this.#signerFor(ring);
    this.#verify = createAccessTokenVerifier({
      issuer: config.issuer,
      audience: config.audience,
      algorithms: [config.signingAlgorithm],
      findKey: (kid, alg) => this.#ring.findVerificationKey(kid, alg),
      clockSkewSeconds: config.clockSkewSeconds,
      clock,
    });
  }

  /**
   * Loads the keys of `config`; with `elect` (default true, for instances that sign) makes a key
   * of its algorithm the current one first. Throws `signing_key_unavailable`.
   */
  static async load(
    config: Readonly<ServiceConfig>,
    options: Omit<KeyRingOptions, "algorithm" | "secret" | "hs256Secret" | "retiredKeyGraceSeconds">,
    elect = true,
  ): Promise<SigningKeys> {
    const ringOptions: KeyRingOptions = {
      ...options,
      algorithm: config.signingAlgorithm,
      secret: config.secret,
      hs256Secret: config.hs256Secret,
      // Other instances may sign with a retired key until their next reload (a minute at most).
      retiredKeyGraceSeconds: config.accessTokenTtlSeconds + config.clockSkewSeconds + 60,
    };
    const load: KeyRingLoad = elect ? { elect: true } : { elect: false, inUse: null };
    return new SigningKeys(config, options.clock, ringOptions, await loadKeyRing(ringOptions, load));
  }

  #signerFor(ring: KeyRing): Signer {
    if (!ring.signingKey) {
      return () => fail("signing_key_unavailable", "this instance loaded its keys without a signing key");
    }
    return createAccessTokenSigner({
      key: ring.signingKey,
      issuer: this.#config.issuer,
      audience: this.#config.audience,
      ttlSeconds: this.#config.accessTokenTtlSeconds,
      clock: this.#clock,
    });
  }

  /** Public keys for the JWKS endpoint. */
  get jwks(): { readonly keys: readonly PublicJwk[] } {
    return this.#ring.jwks;
  }

  /** HMAC key deriving refresh-token successors. */
  get rotationKey(): Buffer {
    return this.#ring.rotationKey;
  }

  /** Signs an access token for `subject` with the current key. Throws `signing_key_unavailable`. */
  signAccessToken(subject: AccessTokenSubject): SignedAccessToken {
    return this.#sign(subject);
  }

  /**
   * Verifies an access token against the keys of every instance: a token signed with a key
   * this instance has not loaded yet triggers one reload first. Throws an `access_token_*` code.
   */
  async verifyAccessToken(token: string): Promise<AccessTokenClaims> {
    const header = decodeProtectedHeader(token, [this.#config.signingAlgorithm]);
    // Reloads at most every 10 s, so random kids cannot turn into a flood of queries.
    if (!this.#ring.findVerificationKey(header.kid, header.alg)) {
      if (this.#reload) await this.#reload;
      else if (performance.now() - this.#lastReload >= KEY_RELOAD_COOLDOWN_MS) await this.reload();
    }
    return this.#verify(token, header);
  }

  /** Verifies an access token with the keys loaded now, without reloading. Throws an `access_token_*` code. */
  verifyLoaded(token: string): AccessTokenClaims {
    return this.#verify(token);
  }

  /**
   * Re-reads the keys from the store: picks up keys rotated by another instance or by
   * `tessera keys rotate`, and drops retired keys past their grace. Servers call it periodically.
   */
  reload(): Promise<void> {
    // Concurrent callers share one reload.
    this.#reload ??= (async () => {
      this.#lastReload = performance.now();
      try {
        const ring = await loadKeyRing(this.#ringOptions, { elect: false, inUse: this.#ring.signingKey });
        if (ring.signingKey?.kid !== this.#ring.signingKey?.kid) this.#sign = this.#signerFor(ring);
        this.#ring = ring;
      } finally {
        this.#reload = null;
      }
    })();
    return this.#reload;
  }

  /**
   * Creates a new signing key, retires the others (still published for one access-token
   * lifetime so tokens they signed keep verifying) and starts signing with the new one.
   * Returns the new key id. Throws `TypeError` for HS256, whose key is the configured secret.
   */
  async rotate(): Promise<string> {
    const kid = await rotateSigningKey(this.#ringOptions);
    await this.reload();
    return kid;
  }
}
