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
import type { Logger } from "../core/logger.js";
import { JWKS_CACHE_SECONDS, type PublicJwk } from "../core/signing-key.js";
import type { Store } from "../store/store.js";
import type { AuditTrail } from "./audit-trail.js";
import type { ServiceConfig } from "./config.js";
import {
  advanceKeySchedule,
  type KeyEvent,
  type KeyRing,
  type KeyRingLoad,
  type KeyRingOptions,
  loadKeyRing,
  rotateSigningKey,
} from "./key-ring.js";
import { OPERATOR_CONTEXT, type RequestContext } from "./request-context.js";

const KEY_RELOAD_COOLDOWN_MS = 10_000;

/**
 * How often a serving instance reloads its keys and advances the schedule, in seconds: a random
 * time in this range each round, so instances started together do not all tick at once.
 */
export const KEY_RELOAD_INTERVAL = Object.freeze({ minSeconds: 45, maxSeconds: 75 });

/**
 * Seconds a new key is published before it signs: one JWKS cache lifetime, plus the longest an
 * instance may serve its previous JWK Set before its reload picks the new key up.
 */
export const KEY_PUBLICATION_LEAD_SECONDS = JWKS_CACHE_SECONDS + KEY_RELOAD_INTERVAL.maxSeconds;

/** The audit context of changes the schedule makes by itself. */
const SCHEDULE_CONTEXT: RequestContext = Object.freeze({ ip: null, userAgent: "tessera-key-schedule" });

/** What {@link SigningKeys.load} needs besides the configuration. */
export interface SigningKeysDependencies {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Where key changes are recorded; none for commands that change nothing. */
  readonly audit?: AuditTrail;
}

/** A rotation started by {@link SigningKeys.rotate}: the key that signs next and from when. */
export interface StartedRotation {
  readonly kid: string;
  readonly activatesAt: Date;
}

type Signer = ReturnType<typeof createAccessTokenSigner>;

/**
 * The key lifecycle of a running instance: signs and verifies access tokens with the current
 * key ring, reloads it (keys rotated elsewhere) and rotates it.
 */
export class SigningKeys {
  readonly #config: Readonly<ServiceConfig>;
  readonly #clock: Clock;
  readonly #ringOptions: KeyRingOptions;
  readonly #audit: AuditTrail | null;
  readonly #serving: boolean;
  readonly #verify: ReturnType<typeof createAccessTokenVerifier>;
  #ring: KeyRing;
  #sign: Signer;
  #lastReload = Number.NEGATIVE_INFINITY;
  #reload: Promise<void> | null = null;

  private constructor(
    config: Readonly<ServiceConfig>,
    deps: SigningKeysDependencies,
    ringOptions: KeyRingOptions,
    ring: KeyRing,
    serving: boolean,
  ) {
    const { clock } = deps;
    this.#config = config;
    this.#audit = deps.audit ?? null;
    this.#serving = serving;
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
   * Loads the keys of `config`; with `elect` (default true, for instances that serve and sign)
   * makes a key of its algorithm the current one first and advances the schedule, as each
   * {@link reload} does afterwards. Throws `signing_key_unavailable`.
   */
  static async load(
    config: Readonly<ServiceConfig>,
    deps: SigningKeysDependencies,
    elect = true,
  ): Promise<SigningKeys> {
    const ringOptions: KeyRingOptions = {
      store: deps.store,
      clock: deps.clock,
      logger: deps.logger,
      algorithm: config.signingAlgorithm,
      secret: config.secret,
      hs256Secret: config.hs256Secret,
      // Other instances may sign with a retired key until their next reload.
      retiredKeyGraceSeconds: config.accessTokenTtlSeconds + config.clockSkewSeconds + KEY_RELOAD_INTERVAL.maxSeconds,
      rotationSeconds: config.keyRotationSeconds,
      publicationLeadSeconds: KEY_PUBLICATION_LEAD_SECONDS,
    };
    const events: KeyEvent[] = [];
    const load: KeyRingLoad = elect
      ? { elect: true, onEvent: (event) => events.push(event) }
      : { elect: false, inUse: null };
    const keys = new SigningKeys(config, deps, ringOptions, await loadKeyRing(ringOptions, load), elect);
    await keys.#record(events, SCHEDULE_CONTEXT);
    if (elect) {
      await keys.reload();
      // The start-up reload must not hold back the reload an unknown kid asks for.
      keys.#lastReload = Number.NEGATIVE_INFINITY;
    }
    return keys;
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
   * `tessera keys rotate`, and drops retired keys past their grace. A serving instance first
   * advances the schedule (promotes the next key when its time has come, publishes one ahead of a
   * due rotation). Servers call it every {@link KEY_RELOAD_INTERVAL}.
   */
  reload(): Promise<void> {
    // Concurrent callers share one reload.
    this.#reload ??= (async () => {
      this.#lastReload = performance.now();
      try {
        if (this.#serving) await this.#record(await advanceKeySchedule(this.#ringOptions), SCHEDULE_CONTEXT);
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
   * Starts a rotation: publishes a next key that signs one {@link KEY_PUBLICATION_LEAD_SECONDS}
   * from now (or returns the next key already published); with `immediately`, a new key signs at
   * once and the others retire (still published until the tokens they signed have expired).
   * Throws `TypeError` for HS256, whose key is the configured secret.
   */
  async rotate(immediately = false, context: RequestContext = OPERATOR_CONTEXT): Promise<StartedRotation> {
    const rotation = await rotateSigningKey(this.#ringOptions, immediately);
    await this.#record(rotation.events, context);
    await this.reload();
    return { kid: rotation.kid, activatesAt: rotation.activatesAt };
  }

  // The change is made; a failure to record it is logged rather than undoing or hiding it.
  async #record(events: readonly KeyEvent[], context: RequestContext): Promise<void> {
    for (const event of events) {
      const { type, ...fields } = event;
      const details = Object.fromEntries(
        Object.entries(fields).map(([name, value]) => [name, value instanceof Date ? value.toISOString() : value]),
      );
      try {
        await this.#audit?.record(type, context, {}, details);
      } catch (error) {
        this.#ringOptions.logger.warn(
          { err: error instanceof Error ? error.message : "unknown", type },
          "could not record a signing-key event",
        );
      }
    }
  }
}
