import { join } from "node:path";
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

/** Tessera's services over a real SQLite file in a temporary directory, with a frozen clock. */
export async function serviceFixture(options: TesseraOptions = {}, hasher?: PasswordHasher): Promise<ServiceFixture> {
  const dir = temporaryDirectory();
  const databaseUrl = `sqlite:${join(dir.path, "tessera.db")}`;
  const clock = new FrozenClock();
  const base: TesseraOptions = {
    databaseUrl,
    secret: "service-test-secret-0123456789-abcdefgh",
    issuer: "https://issuer.test",
    ...options,
  };
  // The store's clock is SQLite's: the same frozen clock, so grace windows follow advance().
  const store = openStore({ url: databaseUrl, clock });
  await store.migrate();
  const services = await createServices({
    store,
    config: resolveConfig(base),
    clock,
    logger: silentLogger,
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
        logger: silentLogger,
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
