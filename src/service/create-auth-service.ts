import { systemClock } from "../core/clock.js";
import { openStore } from "../store/open-store.js";
import { AuthService } from "./auth-service.js";
import { resolveConfig, type TesseraOptions } from "./config.js";
import type { ServiceLogger } from "./key-ring.js";

/** Opens the store named by the options, migrates it, and builds the service. */
export async function createAuthService(options: TesseraOptions, logger: ServiceLogger): Promise<AuthService> {
  const config = resolveConfig(options);
  const store = openStore({
    url: config.databaseUrl,
    poolSize: config.databasePoolSize,
    onPoolError: (error) => logger.warn({ err: error.message }, "database connection error"),
  });
  try {
    await store.migrate();
    return await AuthService.create({ store, config, clock: systemClock, logger });
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}
