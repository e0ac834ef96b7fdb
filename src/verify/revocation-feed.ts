import { readCappedText } from "./read-capped.js";
import type { Redis } from "ioredis";
import { type Clock, epochSeconds } from "../core/clock.js";
import { parseRevocationFeed, parseRevocationMessage } from "../core/revocation.js";
import type { RevokedSessions } from "./revoked-sessions.js";
import type { VerifierLogger } from "./verifier-options.js";

/** Options of {@link RevocationFeed}. */
export interface RevocationFeedOptions {
  readonly url: string;
  readonly intervalSeconds: number;
  readonly redisUrl: string | null;
  readonly channel: string;
  /** `null`: the feed's window, at least twice the interval. */
  readonly maxStalenessSeconds: number | null;
  readonly timeoutMs: number;
  readonly fetch: typeof globalThis.fetch;
  readonly clock: Clock;
  readonly logger: VerifierLogger;
  readonly revoked: RevokedSessions;
}

/** Seconds each poll re-reads before the previous answer's `generated_at`. */
const FEED_OVERLAP_SECONDS = 30;
const MAX_FEED_BODY_LENGTH = 4 * 1024 * 1024;

/**
 * Keeps {@link RevokedSessions} current: polls Tessera's revocation feed every interval and,
 * when a Redis URL is given, also takes revocations pushed on the channel. Failures are logged
 * and retried; they never throw. Knows how old what it knows is ({@link ageSeconds}), so the
 * verifier can refuse tokens it cannot check ({@link isStale}). Timers are unref'ed; {@link close}
 * stops everything.
 */
export class RevocationFeed {
  readonly #options: RevocationFeedOptions;
  readonly #timer: NodeJS.Timeout;
  #lastGeneratedAt: number | null = null;
  /** When the feed last answered, in epoch ms on the verifier's clock; `null` until it has. */
  #lastPollAt: number | null = null;
  /** When the last Redis message arrived over a subscription that has been up since before {@link #lastPollAt}. */
  #lastMessageAt: number | null = null;
  /** When the current Redis subscription started, in epoch ms; `null` while not subscribed. */
  #subscribedAt: number | null = null;
  #staleWarned = false;
  #polling: Promise<void> | null = null;
  #redis: Redis | null = null;
  #redisDown = false;
  #subscribed = false;
  #closed = false;
  /** Settles after the first poll, successful or not. */
  readonly ready: Promise<void>;
  #settled = false;

  constructor(options: RevocationFeedOptions) {
    this.#options = options;
    this.ready = this.poll().then(() => {
      this.#settled = true;
    });
    this.#timer = setInterval(() => void this.poll(), options.intervalSeconds * 1000);
    this.#timer.unref();
    if (options.redisUrl !== null) {
      this.#subscribe(options.redisUrl).catch((error: unknown) => {
        options.logger.warn(
          { err: error instanceof Error ? error.message : "unknown" },
          "Redis revocation channel could not start; polling continues",
        );
      });
    }
  }

  /** True once {@link ready} has settled: a caller may check tokens without awaiting it. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Fetches the feed once (joining a poll already running). Never throws. */
  poll(): Promise<void> {
    this.#polling ??= this.#fetchFeed().finally(() => {
      this.#polling = null;
    });
    return this.#polling;
  }

  async #fetchFeed(): Promise<void> {
    const { url, timeoutMs, clock, logger, revoked } = this.#options;
    const target = new URL(url);
    // Overlap: several Tessera instances stamp revocations with their own clocks, which may lag
    // the one that answered last; re-reading a few ids is cheap, missing one is not.
    if (this.#lastGeneratedAt !== null)
      target.searchParams.set("since", String(Math.max(0, this.#lastGeneratedAt - FEED_OVERLAP_SECONDS)));
    try {
      const response = await this.#options.fetch(target, {
        headers: { accept: "application/json" },
        redirect: "error",
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!response.ok) throw new Error(`the revocation feed answered ${response.status}`);
      const text = await readCappedText(response, MAX_FEED_BODY_LENGTH, "revocation feed");
      const feed = parseRevocationFeed(JSON.parse(text));
      if (feed === null) throw new Error("the revocation feed response is not understood");
      const now = epochSeconds(clock.now());
      revoked.setWindowSeconds(feed.windowSeconds);
      for (const entry of feed.entries) revoked.add(entry.sid, entry.revokedAt, now);
      revoked.prune(now);
      this.#lastGeneratedAt = feed.generatedAt;
      this.#lastPollAt = clock.now().getTime();
      this.#staleWarned = false;
    } catch (error) {
      logger.warn(
        { err: error instanceof Error ? error.message : "unknown", url: target.origin + target.pathname },
        "revocation feed poll failed; will retry",
      );
      if (!this.#staleWarned && this.isStale(clock.now().getTime())) {
        this.#staleWarned = true;
        logger.warn(
          { ageSeconds: this.ageSeconds(clock.now().getTime()), maxStalenessSeconds: this.maxStalenessSeconds },
          "revocation state too old: refusing tokens (revocation_feed_unavailable) until the feed answers",
        );
      }
    }
  }

  /** Seconds the revocation state may age before tokens are refused: the option, else the feed's window (≥ 2 polls). */
  get maxStalenessSeconds(): number {
    const { maxStalenessSeconds, intervalSeconds, revoked } = this.#options;
    return maxStalenessSeconds ?? Math.max(revoked.windowSeconds, 2 * intervalSeconds);
  }

  /** Seconds since the last good poll (or a Redis message after it); `null` until the feed first answered. */
  ageSeconds(nowMs: number): number | null {
    if (this.#lastPollAt === null) return null;
    return Math.max(0, nowMs - Math.max(this.#lastPollAt, this.#lastMessageAt ?? 0)) / 1000;
  }

  /** True when tokens must be refused: the feed never answered, or not within {@link maxStalenessSeconds}. */
  isStale(nowMs: number): boolean {
    const age = this.ageSeconds(nowMs);
    return age === null || age > this.maxStalenessSeconds;
  }

  async #subscribe(redisUrl: string): Promise<void> {
    const { channel, logger, revoked, clock } = this.#options;
    const { Redis } = await import("ioredis");
    if (this.#closed) return;
    const redis = new Redis(redisUrl, {
      lazyConnect: true,
      autoResubscribe: false,
      maxRetriesPerRequest: null,
      retryStrategy: (attempt) => Math.min(attempt * 200, 5000),
    });
    this.#redis = redis;
    const warnOnce = (error: unknown, message: string) => {
      if (this.#redisDown) return;
      this.#redisDown = true;
      logger.warn({ err: error instanceof Error ? error.message : "unknown" }, message);
    };
    redis.on("error", (error: Error) =>
      warnOnce(error, "Redis revocation channel unreachable; polling continues, reconnecting"),
    );
    redis.on("close", () => {
      this.#subscribed = false;
      this.#subscribedAt = null;
    });
    // Subscribes on every (re)connection; what was published meanwhile is still in the feed.
    redis.on("ready", () => {
      if (this.#redisDown) void this.poll();
      this.#redisDown = false;
      redis.subscribe(channel).then(
        () => {
          this.#subscribed = true;
          this.#subscribedAt = clock.now().getTime();
        },
        (error: unknown) => warnOnce(error, "Redis subscribe failed; polling continues"),
      );
    });
    redis.on("message", (received: string, message: string) => {
      if (received !== channel) return;
      const entries = parseRevocationMessage(message);
      if (entries === null) return logger.warn({ channel }, "ignored a malformed revocation message");
      const now = epochSeconds(clock.now());
      for (const entry of entries) revoked.add(entry.sid, entry.revokedAt, now);
      // A message vouches for freshness only when nothing could have been missed since the last
      // good poll: the subscription it came over was already up then.
      const subscribedAt = this.#subscribedAt;
      if (subscribedAt !== null && this.#lastPollAt !== null && subscribedAt <= this.#lastPollAt)
        this.#lastMessageAt = clock.now().getTime();
    });
    // A failed first connection is retried by ioredis's retryStrategy.
    await redis
      .connect()
      .catch((error: unknown) =>
        warnOnce(error, "Redis revocation channel unreachable; polling continues, reconnecting"),
      );
  }

  /** True once subscribed to the Redis channel. */
  get subscribed(): boolean {
    return this.#subscribed;
  }

  /** Stops polling and closes the Redis connection. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const redis = this.#redis;
    this.#redis = null;
    if (redis !== null) {
      if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    }
    await this.#polling;
  }
}
