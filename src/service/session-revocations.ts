import { addSeconds, type Clock } from "../core/clock.js";
import type { RevocationReason } from "../core/revocation.js";
import type { RevokedSession, Store } from "../store/store.js";
import type { Logger } from "../core/logger.js";

/** Sessions that just ended; access tokens naming them must stop working. */
export interface SessionsRevokedEvent {
  readonly sessionIds: readonly string[];
  readonly revokedAt: Date;
}

/** The revocation feed's content: what was revoked, from when, as of when. */
export interface RecentRevocations {
  readonly revoked: RevokedSession[];
  readonly windowStart: Date;
  readonly generatedAt: Date;
}

/**
 * Ends sessions and announces it: every revocation goes through here, so listeners (the Redis
 * publisher, metrics) hear of each one, and the feed lists them for resource servers.
 */
export class SessionRevocations {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #feedWindowSeconds: number;
  readonly #listeners = new Set<(event: SessionsRevokedEvent) => void>();

  /** `feedWindowSeconds`: how far back the feed reaches, the access-token lifetime. */
  constructor(store: Store, clock: Clock, logger: Logger, feedWindowSeconds: number) {
    this.#store = store;
    this.#clock = clock;
    this.#logger = logger;
    this.#feedWindowSeconds = feedWindowSeconds;
  }

  /** How far back {@link listRecent} reaches, in seconds. */
  get feedWindowSeconds(): number {
    return this.#feedWindowSeconds;
  }

  /**
   * Calls `listener` after sessions are revoked (logout, logout-all, revocation, reuse, admin).
   * Returns a function that removes it. Listener errors are logged, never thrown.
   */
  onSessionsRevoked(listener: (event: SessionsRevokedEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Revokes one session and announces it; `false` if it did not exist or had already ended. */
  async revokeSession(sessionId: string, reason: RevocationReason): Promise<boolean> {
    const now = this.#clock.now();
    const revoked = await this.#store.revokeSession(sessionId, now, reason);
    if (revoked) this.#announce([sessionId], now);
    return revoked;
  }

  /**
   * Revokes every open session of a user but `exceptSessionId` (if given) and announces them;
   * returns their ids.
   */
  async revokeUserSessions(userId: string, reason: RevocationReason, exceptSessionId?: string): Promise<string[]> {
    const now = this.#clock.now();
    const sessionIds = await this.#store.revokeUserSessions(userId, now, reason, exceptSessionId);
    this.#announce(sessionIds, now);
    return sessionIds;
  }

  /**
   * The revocation feed: sessions revoked at or after `since` (clamped to the last access-token
   * lifetime, since older revocations concern only expired tokens), oldest first, and the
   * moment the answer describes.
   */
  async listRecent(since?: Date): Promise<RecentRevocations> {
    const generatedAt = this.#clock.now();
    const windowStart = addSeconds(generatedAt, -this.#feedWindowSeconds);
    // Nothing can have been revoked after now; a far-future `since` must not reach the store,
    // where SQLite's text timestamps would compare year 10000 before this year.
    if (since !== undefined && since > generatedAt) return { revoked: [], windowStart, generatedAt };
    const from = since !== undefined && since > windowStart ? since : windowStart;
    return { revoked: await this.#store.listRevokedSessions(from), windowStart, generatedAt };
  }

  #announce(sessionIds: readonly string[], revokedAt: Date): void {
    if (sessionIds.length === 0) return;
    for (const listener of this.#listeners) {
      try {
        listener({ sessionIds, revokedAt });
      } catch (error) {
        this.#logger.error({ err: error instanceof Error ? error.message : "unknown" }, "revocation listener failed");
      }
    }
  }
}
