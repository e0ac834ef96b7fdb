import { type Clock, systemClock } from "../core/clock.js";
import type { Logger } from "../core/logger.js";
import type { PublicJwk } from "../core/signing-key.js";
import { openStore } from "../store/open-store.js";
import type { Store, StoreKind } from "../store/store.js";
import { AccountMail } from "./account-mail.js";
import { AccountService } from "./account-service.js";
import { AdminService } from "./admin-service.js";
import { AuditTrail } from "./audit-trail.js";
import { AuthService } from "./auth-service.js";
import { createSmtpMailer } from "./mailer.js";
import { MfaService } from "./mfa-service.js";
import type { ServiceConfig } from "./config.js";
import { createArgon2Hasher, limitConcurrentHashing, type PasswordHasher } from "./password-hasher.js";
import { TokenIntrospection } from "./introspection.js";
import { SessionRevocations } from "./session-revocations.js";
import { SigningKeys } from "./signing-keys.js";
import { upgradeUsernameKeys } from "./username-keys.js";

/** The services of one Tessera instance over one store, sharing one key ring and one config. */
export interface TesseraServices {
  readonly config: Readonly<ServiceConfig>;
  /** The end user's flows. */
  readonly auth: AuthService;
  /** The end user's own account: password change and reset, email address. */
  readonly account: AccountService;
  /** The second factor: TOTP enrolment and removal, the second step of a login. */
  readonly mfa: MfaService;
  /** The operator's commands. */
  readonly admin: AdminService;
  /** RFC 7662: whether a token is active, for resource servers. */
  readonly introspection: TokenIntrospection;
  /** Signing and verification keys, reloaded and rotated here. */
  readonly keys: SigningKeys;
  /** Every session revocation, announced to listeners and listed for the feed. */
  readonly revocations: SessionRevocations;
  /** The audit trail: buffered writes, listing, and a count of events lost. */
  readonly audit: AuditTrail;
  /** Public keys for the JWKS endpoint. */
  readonly jwks: { readonly keys: readonly PublicJwk[] };
  /** Succeeds when the store answers; throws `store_unavailable` otherwise. */
  checkReady(): Promise<void>;
  /** Writes the audit events still buffered, then closes the store. */
  close(): Promise<void>;
}

/** Dependencies of {@link createServices}. */
export interface ServicesDependencies {
  /** A migrated store; closed by `close()`. */
  readonly store: Store;
  readonly config: Readonly<ServiceConfig>;
  readonly logger: Logger;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Default: argon2id with the documented cost. Either runs under `config`'s hashing limit. */
  readonly hasher?: PasswordHasher;
  /**
   * Make a key of the configured algorithm the current signing key, as a server starting up does.
   * Default true; false for commands that sign nothing and must not replace the servers' key.
   */
  readonly electSigningKey?: boolean;
}

/**
 * Brings stored username keys to the current form (once per database), loads (or creates) the
 * signing keys and builds the services over a migrated store.
 */
export async function createServices(deps: ServicesDependencies): Promise<TesseraServices> {
  const { store, config, logger, clock = systemClock } = deps;
  const hasher = limitConcurrentHashing(deps.hasher ?? createArgon2Hasher(), {
    concurrency: config.passwordHashConcurrency,
    queue: config.passwordHashQueue,
  });
  await upgradeUsernameKeys(store, logger);
  const audit = new AuditTrail(store, clock, logger);
  const mailer =
    config.smtpUrl !== null && config.mailFrom !== null ? createSmtpMailer(config.smtpUrl, config.mailFrom) : null;
  const keys = await SigningKeys.load(config, { store, clock, logger, audit }, deps.electSigningKey ?? true);
  const revocations = new SessionRevocations(store, clock, logger, config.accessTokenTtlSeconds);
  const mail = new AccountMail({
    store,
    clock,
    logger,
    mailer,
    issuer: config.issuer,
    logLinks: config.developmentMode,
  });
  const mfa = new MfaService({
    store,
    clock,
    hasher,
    audit,
    secret: config.secret,
    issuer: config.issuer,
    logger,
    revocations,
    mail,
  });
  const auth = await AuthService.create({ store, config, clock, hasher, keys, revocations, audit, logger, mfa, mail });
  const account = new AccountService({ store, clock, hasher, revocations, audit, logger, mail });
  const admin = new AdminService({ store, config, clock, hasher, keys, revocations, audit, mfa });
  const introspection = new TokenIntrospection({ store, config, clock, auth });
  return Object.freeze({
    config,
    auth,
    account,
    mfa,
    admin,
    introspection,
    keys,
    revocations,
    audit,
    get jwks() {
      return keys.jwks;
    },
    checkReady: () => store.ping(),
    close: async () => {
      mailer?.close();
      await audit.close();
      await store.close();
    },
  });
}

function storeFor(config: Readonly<ServiceConfig>, logger: Logger, poolSize = config.databasePoolSize): Store {
  return openStore({
    url: config.databaseUrl,
    poolSize,
    onPoolError: (error) => logger.warn({ err: error.message }, "database connection error"),
  });
}

/** Opens the configured store, migrates it, and builds the services; `electSigningKey` as in {@link createServices}. */
export async function openServices(
  config: Readonly<ServiceConfig>,
  logger: Logger,
  electSigningKey = true,
): Promise<TesseraServices> {
  const store = storeFor(config, logger);
  try {
    await store.migrate();
    return await createServices({ store, config, logger, electSigningKey });
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Creates or upgrades the configured database's schema and brings stored username keys to the
 * current form; returns which database it is.
 */
export async function migrateDatabase(config: Readonly<ServiceConfig>, logger: Logger): Promise<StoreKind> {
  const store = storeFor(config, logger, 1);
  try {
    await store.migrate();
    await upgradeUsernameKeys(store, logger);
    return store.kind;
  } finally {
    await store.close();
  }
}
