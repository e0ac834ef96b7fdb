/** Access-token lifetime assumed until the revocation feed reports its own, in seconds (Tessera's default). */
export const DEFAULT_REVOCATION_WINDOW_SECONDS = 15 * 60;

/** Longest revocation window accepted from a feed, in seconds. */
export const MAX_REVOCATION_WINDOW_SECONDS = 24 * 60 * 60;

/**
 * Session ids whose access tokens must be refused. Each is kept only for the access-token
 * lifetime after its revocation (plus the clock skew): no token of it can be valid later.
 */
export class RevokedSessions {
  readonly #until = new Map<string, number>();
  readonly #clockSkewSeconds: number;
  #windowSeconds = DEFAULT_REVOCATION_WINDOW_SECONDS;

  constructor(clockSkewSeconds: number) {
    this.#clockSkewSeconds = clockSkewSeconds;
  }

  get size(): number {
    return this.#until.size;
  }

  /** Access-token lifetime in seconds, as the feed reported it; default {@link DEFAULT_REVOCATION_WINDOW_SECONDS}. */
  get windowSeconds(): number {
    return this.#windowSeconds;
  }

  /** Sets the access-token lifetime, as reported by the feed; clamped to 1 s … 24 h. */
  setWindowSeconds(seconds: number): void {
    this.#windowSeconds = Math.min(MAX_REVOCATION_WINDOW_SECONDS, Math.max(1, Math.floor(seconds)));
  }

  /** Records that `sid` was revoked at `revokedAt` (Unix seconds). */
  add(sid: string, revokedAt: number, nowSeconds: number): void {
    const until = revokedAt + this.#windowSeconds + this.#clockSkewSeconds;
    if (until <= nowSeconds) return;
    const known = this.#until.get(sid);
    if (known === undefined || known < until) this.#until.set(sid, until);
  }

  /** True when tokens of `sid` must be refused at `nowSeconds`. */
  has(sid: string, nowSeconds: number): boolean {
    const until = this.#until.get(sid);
    if (until === undefined) return false;
    if (nowSeconds < until) return true;
    this.#until.delete(sid);
    return false;
  }

  /** Forgets sessions whose tokens have all expired. */
  prune(nowSeconds: number): void {
    for (const [sid, until] of this.#until) if (until <= nowSeconds) this.#until.delete(sid);
  }
}
