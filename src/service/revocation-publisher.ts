import { createRequire } from "node:module";
import { epochSeconds } from "../core/clock.js";
import type { Logger } from "../core/logger.js";
import { encodeRevocationMessage, REVOCATION_CHANNEL } from "../core/revocation.js";
import type { SessionRevocations } from "./session-revocations.js";

// ioredis is loaded only where a Redis URL is configured: a server without Redis does not carry
// its ~15 MB. Synchronously (it is CommonJS), so opening stays synchronous.
const requireModule = createRequire(import.meta.url);
const loadRedis = (): typeof import("ioredis") => requireModule("ioredis") as typeof import("ioredis");

/** Options of {@link publishRevocations}. */
export interface RevocationPublisherOptions {
  readonly redisUrl: string;
  readonly logger: Pick<Logger, "warn">;
  /**
   * A long-running server drops messages while Redis is away (the feed still lists every
   * revocation), so requests never wait on Redis. A one-shot command sets this to hold its
   * messages until the connection is up, so they go out before it exits.
   */
  readonly queueWhileConnecting?: boolean;
}

/**
 * Publishes every revocation announced by `revocations` on {@link REVOCATION_CHANNEL}, where
 * verifiers subscribed to it pick it up at once.
 * A Redis outage is logged, never thrown. Returns `close`, which waits for the messages
 * already handed to Redis, then disconnects.
 */
export function publishRevocations(
  revocations: SessionRevocations,
  options: RevocationPublisherOptions,
): () => Promise<void> {
  const { logger, queueWhileConnecting = false } = options;
  const redis = new (loadRedis().Redis)(options.redisUrl, {
    lazyConnect: true,
    connectTimeout: 2000,
    enableOfflineQueue: queueWhileConnecting,
    maxRetriesPerRequest: 1,
    // A server reconnects for ever; a command gives up after a few tries.
    retryStrategy: (attempt) => (queueWhileConnecting && attempt > 2 ? null : Math.min(attempt * 200, 5000)),
  });
  let down = false;
  redis.on("error", (error: Error) => {
    if (!down) logger.warn({ err: error.message }, "Redis for revocations unreachable; the feed still serves them");
    down = true;
  });
  redis.on("ready", () => {
    down = false;
  });
  redis.connect().catch(() => undefined);

  const pending = new Set<Promise<unknown>>();
  const stop = revocations.onSessionsRevoked((event) => {
    const message = encodeRevocationMessage(event.sessionIds, epochSeconds(event.revokedAt));
    const sent = redis.publish(REVOCATION_CHANNEL, message).catch((error: unknown) => {
      logger.warn(
        { err: error instanceof Error ? error.message : "unknown", count: event.sessionIds.length },
        "revocation not published to Redis",
      );
    });
    pending.add(sent);
    void sent.finally(() => pending.delete(sent));
  });

  return async () => {
    stop();
    await Promise.all(pending);
    if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
    else redis.disconnect();
  };
}
