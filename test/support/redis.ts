import { Redis } from "ioredis";

/** The Redis the tests use: `TESSERA_TEST_REDIS_URL` or 127.0.0.1:6379. */
export const TEST_REDIS_URL = process.env.TESSERA_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * `false` when Redis answers; otherwise the reason to skip. When `CI=true` an unreachable
 * Redis is an error, never a skip.
 */
export async function redisSkipReason(): Promise<string | false> {
  const client = new Redis(TEST_REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.ping();
    return false;
  } catch {
    const reason = `Redis not reachable at ${TEST_REDIS_URL}; set TESSERA_TEST_REDIS_URL to run these tests`;
    if (process.env.CI === "true") throw new Error(`${reason} (CI=true: not skipping)`);
    return reason;
  } finally {
    client.disconnect();
  }
}
