import { createHash } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { isTesseraError, TesseraError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { RateLimitConfig } from "./server-config.js";

// ioredis is loaded only where a Redis URL is configured: a server without Redis does not carry
// its ~15 MB. Synchronously (it is CommonJS), so opening stays synchronous.
const requireModule = createRequire(import.meta.url);
const loadRedis = (): typeof import("ioredis") => requireModule("ioredis") as typeof import("ioredis");

/** An account's failures in a row are forgotten this long after the first of them, in seconds. */
export const ACCOUNT_FAILURE_MEMORY_SECONDS = 86400;

/**
 * Seconds between attempts on an account after `failures` failed logins in a row: none below
 * `threshold` (0: never), then 1, 2, 4, … doubling with each failure, at most `maxSeconds`.
 */
export function accountDelaySeconds(failures: number, threshold: number, maxSeconds: number): number {
  if (threshold === 0 || failures < threshold) return 0;
  return Math.min(maxSeconds, 2 ** Math.min(failures - threshold, 30));
}

/** Refusals counted as failed attempts by {@link RateLimits.login}: wrong passwords and wrong second-factor codes. */
export const LOGIN_FAILURE_CODES = Object.freeze([
  "invalid_credentials",
  "mfa_login_invalid",
  "invalid_mfa_code",
] as const);

/**
 * Account mails one address (password reset) or one account (email verification) may ask for
 * per hour: `TESSERA_RATE_LIMIT` ÷ 6, at least 1 (5 at the default 30).
 */
export function accountMailsPerHour(rateLimitPerMinute: number): number {
  return Math.max(1, Math.ceil(rateLimitPerMinute / 6));
}

function isLoginFailure(error: unknown): boolean {
  return LOGIN_FAILURE_CODES.some((code) => isTesseraError(error, code));
}

function rateLimited(msBeforeNext: number): TesseraError {
  return new TesseraError("rate_limited", "a rate limit was reached", {
    retryAfterSeconds: Math.max(1, Math.ceil(msBeforeNext / 1000)),
  });
}

/** Consumes a point of `key`; throws `rate_limited` with the limit's own wait when there is none left. */
async function take(limiter: RateLimiterAbstract, key: string, options?: { customDuration: number }): Promise<void> {
  try {
    await limiter.consume(key, 1, options);
  } catch (outcome) {
    if (outcome instanceof RateLimiterRes) throw rateLimited(outcome.msBeforeNext);
    throw outcome;
  }
}

// Usernames stay out of Redis keys: a digest is as good a key and tells nothing.
function accountKey(usernameKey: string): string {
  return createHash("sha256").update(usernameKey).digest("base64url").slice(0, 22);
}

/**
 * The Redis of the limits: commands fail at once while it is away (no offline queue), so the
 * limiters use their in-memory insurance without waiting; one warning per outage.
 */
function openRedis(url: string, logger: Logger): Redis {
  const redis = new (loadRedis().Redis)(url, {
    connectTimeout: 1000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
  });
  let down = false;
  redis.on("error", (error: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err: error.message }, "Redis unreachable: rate limits are kept per process until it answers");
  });
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    logger.info({}, "Redis answers again: rate limits are shared again");
  });
  return redis;
}

/** Options of {@link RateLimits.open}. */
export interface RateLimitsOptions {
  /** Shares the limits between instances; without it they are per process. */
  readonly redisUrl: string | null;
  readonly logger: Logger;
}

/**
 * Tessera's rate limits, shared between instances through Redis when there is one. Each limiter
 * is insured by an in-memory one: while Redis is unreachable the limits hold per process, never
 * off. Refusals are `rate_limited` errors carrying the seconds to wait.
 */
export class RateLimits {
  readonly #config: Readonly<RateLimitConfig>;
  readonly #redis: Redis | null;
  /** Register, refresh, token: requests per client IP per minute. */
  readonly #client: RateLimiterAbstract | null;
  /** Login attempts per client IP and account per minute. */
  readonly #login: RateLimiterAbstract | null;
  /** Failed logins per client IP per hour, counted before the check and refunded unless it fails. */
  readonly #ipFailures: RateLimiterAbstract | null;
  /** An account's failed logins in a row, from any IP. */
  readonly #accountFailures: RateLimiterAbstract | null;
  /** One attempt per delay window on a slowed-down account. */
  readonly #accountGate: RateLimiterAbstract | null;
  /** Password-reset mails asked for per email address per hour. */
  readonly #resetAddress: RateLimiterAbstract | null;
  /** Password-reset requests per client IP per hour. */
  readonly #resetIp: RateLimiterAbstract | null;
  /** Verification mails asked for per account per hour. */
  readonly #verificationMail: RateLimiterAbstract | null;

  private constructor(config: Readonly<RateLimitConfig>, redis: Redis | null) {
    this.#config = config;
    this.#redis = redis;
    const on = config.rateLimitPerMinute > 0;
    const limiter = (name: string, points: number, duration: number, flood = false): RateLimiterAbstract | null => {
      if (!on || points <= 0) return null;
      const options = { keyPrefix: `tessera:${name}`, points, duration };
      const memory = new RateLimiterMemory(options);
      if (!redis) return memory;
      return new RateLimiterRedis({
        ...options,
        storeClient: redis,
        insuranceLimiter: memory,
        rejectIfRedisNotReady: true,
        // A client over its limit is refused from memory until the window ends: a flood costs no Redis calls.
        ...(flood ? { inMemoryBlockOnConsumed: points + 1 } : {}),
      });
    };
    const perMinute = config.rateLimitPerMinute;
    this.#client = limiter("client", perMinute * 10, 60, true);
    this.#login = limiter("login", perMinute, 60, true);
    this.#ipFailures = limiter("ip-failures", config.ipLoginFailuresPerHour, 3600);
    const slowed = config.accountFailuresBeforeDelay > 0;
    // Only counted, never refused by itself: the gate below does the refusing.
    this.#accountFailures = slowed ? limiter("account-failures", 1_000_000, ACCOUNT_FAILURE_MEMORY_SECONDS) : null;
    this.#accountGate = slowed ? limiter("account-gate", 1, config.accountMaxDelaySeconds) : null;
    this.#resetAddress = limiter("reset-address", accountMailsPerHour(perMinute), 3600);
    this.#resetIp = limiter("reset-ip", perMinute, 3600);
    this.#verificationMail = limiter("verification-mail", accountMailsPerHour(perMinute), 3600);
  }

  /** The limits of `config`; connects to Redis only when a limit is on and `redisUrl` is set. */
  static open(config: Readonly<RateLimitConfig>, options: RateLimitsOptions): RateLimits {
    const redis =
      config.rateLimitPerMinute > 0 && options.redisUrl ? openRedis(options.redisUrl, options.logger) : null;
    return new RateLimits(config, redis);
  }

  /**
   * An `onRequest` hook limiting requests per client IP (register, refresh, `/oauth/token`), or
   * `undefined` when that limit is off. One counter update per request.
   */
  get perClient(): ((request: FastifyRequest) => Promise<void>) | undefined {
    const client = this.#client;
    return client ? (request) => take(client, request.ip) : undefined;
  }

  /**
   * Runs `attempt`, a password or second-factor check for `usernameKey` from `ip`, within the login
   * limits, or throws `rate_limited` without running it. Each attempt is counted against the IP
   * and the account before it runs; a failure ({@link LOGIN_FAILURE_CODES}) keeps the count, any
   * other error refunds it, a success refunds the IP and resets the account. Unknown and known usernames are
   * counted alike, so the limits tell nothing about which exist.
   */
  async login<T>(ip: string, usernameKey: string, attempt: () => Promise<T>): Promise<T> {
    if (!this.#login) return attempt();
    const account = accountKey(usernameKey);
    await take(this.#login, `${ip}|${account}`);
    // Counted before the check, against the IP and the account, so that concurrent attempts cannot
    // overrun the caps nor all pass the account's admission; refunded unless it fails.
    if (this.#ipFailures) await take(this.#ipFailures, ip);
    try {
      await this.#admitAccount(account);
    } catch (error) {
      await this.#refund(ip);
      throw error;
    }
    let result: T;
    try {
      result = await attempt();
    } catch (error) {
      if (!isLoginFailure(error)) await Promise.all([this.#refund(ip), this.#accountFailures?.reward(account)]);
      throw error;
    }
    await Promise.all([this.#refund(ip), this.#accountFailures?.delete(account), this.#accountGate?.delete(account)]);
    return result;
  }

  /**
   * Counts a password-reset request for the address key `emailKey` from `ip`: at most
   * `TESSERA_RATE_LIMIT` ÷ 6 (at least 1) per address and `TESSERA_RATE_LIMIT` per IP an hour.
   * Throws `rate_limited` beyond either. Unknown and known addresses are counted alike.
   */
  async passwordReset(ip: string, emailKey: string): Promise<void> {
    if (this.#resetIp) await take(this.#resetIp, ip);
    if (this.#resetAddress) await take(this.#resetAddress, accountKey(`email:${emailKey}`));
  }

  /**
   * Counts a request of the account `userId` to set its address, each of which may mail a
   * verification link: at most `TESSERA_RATE_LIMIT` ÷ 6 (at least 1) an hour, whatever the
   * address. Throws `rate_limited` beyond that.
   */
  async verificationMail(userId: string): Promise<void> {
    if (this.#verificationMail) await take(this.#verificationMail, userId);
  }

  /** Closes the Redis connection, if any. */
  async close(): Promise<void> {
    const redis = this.#redis;
    if (redis) await redis.quit().catch(() => redis.disconnect());
  }

  // Counts the attempt against the account first: the count it sees includes every attempt
  // racing it. A slowed-down account admits one attempt per window, whichever IP or instance asks
  // first; a refused attempt is not counted.
  async #admitAccount(account: string): Promise<void> {
    if (!this.#accountFailures || !this.#accountGate) return;
    const counted = await this.#accountFailures.penalty(account);
    const failures = counted.consumedPoints - 1;
    const { accountFailuresBeforeDelay, accountMaxDelaySeconds } = this.#config;
    const delay = accountDelaySeconds(failures, accountFailuresBeforeDelay, accountMaxDelaySeconds);
    try {
      if (delay > 0) await take(this.#accountGate, account, { customDuration: delay });
    } catch (error) {
      await this.#accountFailures.reward(account);
      throw error;
    }
  }

  async #refund(ip: string): Promise<void> {
    await this.#ipFailures?.reward(ip);
  }
}
