import assert from "node:assert/strict";
import { join } from "node:path";
import { TesseraError } from "../../src/core/errors.js";
import type { Logger } from "../../src/core/logger.js";
import { resolveConfig, type TesseraOptions } from "../../src/http/server-config.js";
import type { AuthService } from "../../src/service/auth-service.js";
import { createArgon2Hasher, type PasswordHasher } from "../../src/service/password-hasher.js";
import { createServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/store.js";
import { FrozenClock } from "./clock.js";
import { temporaryDirectory } from "./server.js";

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A password hasher that counts verifications, around the real argon2id one. */
export function countingHasher(): PasswordHasher & { verifications: number } {
  const real = createArgon2Hasher();
  const counter = {
    verifications: 0,
    hash: (password: string) => real.hash(password),
    verify: (hash: string, password: string) => {
      counter.verifications += 1;
      return real.verify(hash, password);
    },
  };
  return counter;
}

export interface ServiceFixture {
  readonly services: TesseraServices;
  /** `services.auth`. */
  readonly service: AuthService;
  readonly store: Store;
  readonly clock: FrozenClock;
  readonly databaseUrl: string;
  /** Another service on the same database (a second instance or a restart). */
  another(options?: TesseraOptions): Promise<TesseraServices>;
  close(): Promise<void>;
}

/** What else {@link serviceFixture} may be given. */
export interface ServiceFixtureExtras {
  /** Where the services log; default silent. */
  readonly logger?: Logger;
}

/**
 * Tessera's services with a frozen clock, over a real SQLite file in a temporary directory or,
 * given `options.databaseUrl`, over that database (which the caller drops). On SQLite the store's
 * clock is the same frozen clock; PostgreSQL and MySQL stamp with their own, so the frozen clock
 * then follows the system clock (shifted by `advance()`).
 */
export async function serviceFixture(
  options: TesseraOptions = {},
  hasher?: PasswordHasher,
  extras: ServiceFixtureExtras = {},
): Promise<ServiceFixture> {
  const dir = temporaryDirectory();
  const databaseUrl = options.databaseUrl ?? `sqlite:${join(dir.path, "tessera.db")}`;
  const onSqlite = databaseUrl.startsWith("sqlite:");
  const clock = onSqlite ? new FrozenClock() : FrozenClock.onSystemTime();
  const logger = extras.logger ?? silentLogger;
  const base: TesseraOptions = {
    secret: "service-test-secret-0123456789-abcdefgh",
    issuer: "https://issuer.test",
    ...options,
    databaseUrl,
  };
  // The store's clock is SQLite's: the same frozen clock, so grace windows follow advance().
  const store = openStore({ url: databaseUrl, clock });
  await store.migrate();
  const services = await createServices({
    store,
    config: resolveConfig(base),
    clock,
    logger,
    ...(hasher ? { hasher } : {}),
  });
  const others: TesseraServices[] = [];
  return {
    services,
    service: services.auth,
    store,
    clock,
    databaseUrl,
    async another(more = {}) {
      const otherStore = openStore({ url: databaseUrl, clock });
      const other = await createServices({
        store: otherStore,
        config: resolveConfig({ ...base, ...more }),
        clock,
        logger,
      });
      others.push(other);
      return other;
    },
    async close() {
      for (const other of others) await other.close();
      await services.close();
      dir.remove();
    },
  };
}

/** Asserts that `promise` rejects with a {@link TesseraError} of `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof TesseraError && error.code === code);
}
