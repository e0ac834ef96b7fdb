import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { SigningKeyState } from "../core/signing-key.js";
import type { PurgeResult, Store } from "../store/store.js";
import type { AuditTrail } from "./audit-trail.js";
import type { ServiceConfig } from "./config.js";
import { checkRoleNames } from "./credential-policy.js";
import type { PasswordHasher } from "./password-hasher.js";
import { OPERATOR_CONTEXT } from "./request-context.js";
import type { SessionRevocations } from "./session-revocations.js";
import type { SigningKeys, StartedRotation } from "./signing-keys.js";
import { createUser } from "./user-creation.js";
import { type SessionView, sessionViewsOf, type UserView } from "./views.js";
import { findUserByName } from "./username-keys.js";

/** A signing key as an operator sees it; never the private part. */
export interface SigningKeyView {
  readonly kid: string;
  readonly alg: string;
  /** `next` (published, signs from `activatesAt`), `current` (signs) or `retired` (verifies only). */
  readonly state: SigningKeyState;
  readonly encryption: string;
  readonly createdAt: Date;
  /** When it signs, or began to. */
  readonly activatesAt: Date;
  readonly retiredAt: Date | null;
}

/** Dependencies of {@link AdminService}. */
export interface AdminServiceDependencies {
  readonly store: Store;
  readonly config: Readonly<ServiceConfig>;
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly keys: SigningKeys;
  readonly revocations: SessionRevocations;
  readonly audit: AuditTrail;
}

/** The operator's use cases: accounts and roles, a user's sessions, revocations, purge and signing keys. */
export class AdminService {
  readonly #store: Store;
  readonly #config: Readonly<ServiceConfig>;
  readonly #clock: Clock;
  readonly #hasher: PasswordHasher;
  readonly #keys: SigningKeys;
  readonly #revocations: SessionRevocations;
  readonly #audit: AuditTrail;

  constructor(deps: AdminServiceDependencies) {
    this.#store = deps.store;
    this.#config = deps.config;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#keys = deps.keys;
    this.#revocations = deps.revocations;
    this.#audit = deps.audit;
  }

  /**
   * Creates an account with the default roles, whether registration is open or closed. Throws
   * `invalid_request` for a bad username or password, `username_taken`.
   */
  createUser(username: string, password: string): Promise<UserView> {
    const deps = { store: this.#store, clock: this.#clock, hasher: this.#hasher, audit: this.#audit };
    return createUser(deps, { username, password, roles: this.#config.defaultRoles }, OPERATOR_CONTEXT);
  }

  /** Replaces a user's roles. Throws `invalid_request` for an unknown user or a bad role name. */
  async setUserRoles(username: string, roles: readonly string[]): Promise<UserView> {
    const unique = checkRoleNames(roles);
    const user = await findUserByName(this.#store, username);
    if (!user || !(await this.#store.setUserRoles(user.id, unique))) fail("invalid_request", "no such user");
    return { id: user.id, username: user.username, roles: unique };
  }

  /** A user's open sessions, newest first. Throws `invalid_request` for an unknown user. */
  async listUserSessions(username: string): Promise<SessionView[]> {
    const user = await findUserByName(this.#store, username);
    if (!user) fail("invalid_request", "no such user");
    return sessionViewsOf(await this.#store.listActiveSessions(user.id, this.#clock.now()), null);
  }

  /**
   * Revokes a session by id, or every session of a user when `target` is `{ username }`.
   * Returns the revoked session ids (none for one already revoked); an unknown user or session
   * id is `invalid_request`.
   */
  async revokeSessions(target: { sessionId: string } | { username: string }): Promise<string[]> {
    let revoked: string[];
    if ("sessionId" in target) {
      // An unknown id is a typo worth saying; an already revoked session is simply done.
      if (!(await this.#store.findSession(target.sessionId))) fail("invalid_request", "no such session");
      revoked = (await this.#revocations.revokeSession(target.sessionId, "admin")) ? [target.sessionId] : [];
    } else {
      const user = await findUserByName(this.#store, target.username);
      if (!user) fail("invalid_request", "no such user");
      revoked = await this.#revocations.revokeUserSessions(user.id, "admin");
    }
    for (const sessionId of revoked)
      await this.#audit.record("session_revoked", OPERATOR_CONTEXT, { sessionId }, { reason: "admin" });
    return revoked;
  }

  /**
   * Deletes expired refresh tokens and ended sessions, then audit events older than
   * `auditRetention`, `batchSize` rows at a time so no lock is held long. Revoked sessions stay
   * until their access tokens have expired, for the revocation feed.
   */
  async purge(batchSize: number): Promise<PurgeResult & { readonly auditEvents: number }> {
    const now = this.#clock.now();
    const before = addSeconds(now, -this.#config.accessTokenTtlSeconds);
    let refreshTokens = 0;
    let sessions = 0;
    for (;;) {
      const batch = await this.#store.deleteExpired(before, batchSize);
      refreshTokens += batch.refreshTokens;
      sessions += batch.sessions;
      if (batch.refreshTokens === 0 && batch.sessions === 0) break;
    }
    const auditBefore = addSeconds(now, -this.#config.auditRetentionSeconds);
    let auditEvents = 0;
    for (;;) {
      const deleted = await this.#store.deleteAuditEvents(auditBefore, batchSize);
      auditEvents += deleted;
      if (deleted === 0) return { refreshTokens, sessions, auditEvents };
    }
  }

  /** Every stored signing key, next, current and retired, oldest first. */
  async listSigningKeys(): Promise<SigningKeyView[]> {
    const records = await this.#store.listSigningKeys();
    return records.map(({ kid, alg, state, encryption, createdAt, activatesAt, retiredAt }) => ({
      kid,
      alg,
      state,
      encryption,
      createdAt,
      activatesAt,
      retiredAt,
    }));
  }

  /**
   * Starts a signing-key rotation: a next key, published now, signs one JWKS cache lifetime
   * later; `immediately` makes it sign at once (an emergency). Returns the key and when it signs.
   * Throws `TypeError` for HS256.
   */
  rotateSigningKey(options: { readonly immediately?: boolean } = {}): Promise<StartedRotation> {
    return this.#keys.rotate(options.immediately ?? false);
  }
}
