import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { SigningKeyState } from "../core/signing-key.js";
import type { PurgeResult, Store, UserRecord } from "../store/store.js";
import type { AuditTrail } from "./audit-trail.js";
import type { ServiceConfig } from "./config.js";
import { checkNewPassword, checkRoleNames, normalizeUsername, USERNAME_LENGTH } from "./credential-policy.js";
import type { MfaService } from "./mfa-service.js";
import type { PasswordHasher } from "./password-hasher.js";
import { OPERATOR_CONTEXT, type RequestContext } from "./request-context.js";
import type { SessionRevocations } from "./session-revocations.js";
import type { SigningKeys, StartedRotation } from "./signing-keys.js";
import { createUser } from "./user-creation.js";
import {
  type AccountDetailsView,
  type AccountView,
  accountViewOf,
  type ListedAccountView,
  type SessionView,
  sessionViewsOf,
} from "./views.js";
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

/** Who acts on an account: the operator at the CLI, or an admin through the API. */
export interface AdminActor {
  /** `"operator"` for the CLI, the admin's user id for the API; audit events record it as `by`. */
  readonly by: string;
  /** Where the request came from. */
  readonly context: RequestContext;
}

/** The role that admits a user to the admin API; the service keeps at least one enabled user holding it. */
export const ADMIN_ROLE = "admin";

/** How {@link AdminService.disableUser}, {@link AdminService.setUserRoles} and {@link AdminService.deleteUser} act. */
export interface AdminChangeOptions {
  /**
   * Also when the user is the last enabled admin, leaving none (the CLI's `--force`: an operator
   * can always make an admin again with `tessera user set-roles`). Default `false`: `last_admin`.
   */
  readonly force?: boolean;
}

/** The operator at the command line. */
export const OPERATOR: AdminActor = Object.freeze({ by: "operator", context: OPERATOR_CONTEXT });

/** A user named by id (the API) or by username (the CLI, folded as at login); a bare string is a username. */
export type UserReference = { readonly id: string } | { readonly username: string } | string;

/** Users per page of {@link AdminService.listUsers}: the default and the most a page may hold. */
export const USER_LIST_LIMIT = Object.freeze({ default: 50, max: 200 });

/** Which users {@link AdminService.listUsers} lists. */
export interface UserListQuery {
  /** Text the username contains, compared as usernames are (NFKC_Casefold). */
  readonly search?: string;
  /** Only users holding this role. */
  readonly role?: string;
  /** Only disabled (`true`) or enabled (`false`) users. */
  readonly disabled?: boolean;
  /** Users per page, 1 to {@link USER_LIST_LIMIT}`.max`; default {@link USER_LIST_LIMIT}`.default`. */
  readonly limit?: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
}

/** One page of users. */
export interface UserPage {
  readonly users: readonly ListedAccountView[];
  /** Pass as `cursor` for the next page; `null` on the last page. */
  readonly nextCursor: string | null;
}

function lastAdmin(user: UserRecord): never {
  fail("last_admin", `${user.username} is the last enabled admin; make another admin first`);
}

// The cursor is the last username key of a page, base64url-encoded: opaque to clients, and
// a cursor that does not round-trip is refused rather than guessed at.
function cursorOfKey(key: string): string {
  return Buffer.from(key, "utf8").toString("base64url");
}

function keyOfCursor(cursor: string): string {
  const key = Buffer.from(cursor, "base64url").toString("utf8");
  if (key === "" || [...key].length > USERNAME_LENGTH.max || cursorOfKey(key) !== cursor)
    fail("invalid_request", "cursor is not one this server handed out");
  return key;
}

/** Rows deleted by {@link AdminService.purge}. */
export interface PurgeSummary extends PurgeResult {
  /** Mailed single-use tokens: used, expired, or of a user that is gone. */
  readonly oneTimeTokens: number;
  readonly auditEvents: number;
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
  /** The second factor: its status in user views, and its reset. */
  readonly mfa: MfaService;
}

/** What {@link AdminService.resetMfa} did. */
export interface MfaReset {
  /** Whether TOTP was on (a pending enrolment is removed too, but was not on). */
  readonly totpRemoved: boolean;
  /** The sessions revoked. */
  readonly revoked: string[];
}

/**
 * The operator's use cases, from the CLI and the admin API: accounts (add, list, show, disable,
 * enable, roles, password, second-factor reset, delete), a user's sessions, revocations, purge and signing keys.
 */
export class AdminService {
  readonly #store: Store;
  readonly #config: Readonly<ServiceConfig>;
  readonly #clock: Clock;
  readonly #hasher: PasswordHasher;
  readonly #keys: SigningKeys;
  readonly #revocations: SessionRevocations;
  readonly #audit: AuditTrail;
  readonly #mfa: MfaService;

  constructor(deps: AdminServiceDependencies) {
    this.#store = deps.store;
    this.#config = deps.config;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#keys = deps.keys;
    this.#revocations = deps.revocations;
    this.#audit = deps.audit;
    this.#mfa = deps.mfa;
  }

  /**
   * Creates an account with `roles` (default: the configured default roles), whatever
   * registration says, and records `user_registered` by `actor`. Throws `invalid_request` for a
   * bad username, password or role name, `username_taken`.
   */
  async createUser(
    username: string,
    password: string,
    roles: readonly string[] | undefined = undefined,
    actor: AdminActor = OPERATOR,
  ): Promise<AccountView> {
    const checked = roles === undefined ? this.#config.defaultRoles : checkRoleNames(roles);
    const deps = { store: this.#store, clock: this.#clock, hasher: this.#hasher, audit: this.#audit };
    return createUser(deps, { username, password, roles: checked }, actor.context, { by: actor.by });
  }

  /**
   * One page of users in username order, filtered by `query`; `nextCursor` fetches the next page
   * (`null` on the last). Throws `invalid_request` for a bad limit, cursor, search or role.
   */
  async listUsers(query: UserListQuery = {}): Promise<UserPage> {
    const limit = query.limit ?? USER_LIST_LIMIT.default;
    if (!Number.isInteger(limit) || limit < 1 || limit > USER_LIST_LIMIT.max)
      fail("invalid_request", `limit must be a whole number from 1 to ${USER_LIST_LIMIT.max}`);
    if (query.search !== undefined && [...query.search].length > USERNAME_LENGTH.max)
      fail("invalid_request", `search must be at most ${USERNAME_LENGTH.max} characters`);
    if (query.role !== undefined) checkRoleNames([query.role]);
    // Searching folds like usernames do: `ALI` finds `Alice` and `ａｌｉ` finds `ali`.
    const keyContains = query.search === undefined ? undefined : normalizeUsername(query.search);
    const records = await this.#store.findUsers({
      ...(keyContains === undefined ? {} : { keyContains }),
      ...(query.role === undefined ? {} : { role: query.role }),
      ...(query.disabled === undefined ? {} : { disabled: query.disabled }),
      afterKey: query.cursor === undefined ? null : keyOfCursor(query.cursor),
      limit: limit + 1,
    });
    const page = records.slice(0, limit);
    const last = page.at(-1);
    const withTotp = await this.#mfa.enabledAmong(page.map((user) => user.id));
    return {
      users: page.map((user) => ({ ...accountViewOf(user), mfa: { totp: withTotp.has(user.id) } })),
      nextCursor: records.length > limit && last ? cursorOfKey(last.usernameKey) : null,
    };
  }

  /** A user with their second factor and the number of their open sessions. Throws `user_not_found`. */
  async showUser(reference: UserReference): Promise<AccountDetailsView> {
    const user = await this.#findUser(reference);
    const open = await this.#store.listActiveSessions(user.id, this.#clock.now());
    const totp = await this.#mfa.isEnabled(user.id);
    return { ...accountViewOf(user), mfa: { totp }, openSessions: open.length };
  }

  /**
   * Resets a user's second factor, for one who lost the authenticator and the recovery codes:
   * removes the TOTP credential (also a pending one) and the recovery codes, then revokes and
   * announces every session, since a lost authenticator may be a stolen one. Doing it again
   * still revokes any open session. Records `mfa_disabled` (when TOTP was on) and
   * `session_revoked` for each session. Throws `user_not_found`.
   */
  async resetMfa(reference: UserReference, actor: AdminActor = OPERATOR): Promise<MfaReset> {
    const user = await this.#findUser(reference);
    const totpRemoved = await this.#mfa.resetTotp(user.id, actor.by, actor.context);
    return { totpRemoved, revoked: await this.#revokeAll(user.id, actor) };
  }

  /**
   * Disables a user: login then fails exactly as with a wrong password, every session is revoked
   * and announced, and every pending `mfa_token` is void. Records `user_disabled` (once) and `session_revoked` for each session.
   * Throws `user_not_found`, `last_admin` (unless `options.force`) for the last enabled admin,
   * changing nothing.
   */
  async disableUser(
    reference: UserReference,
    actor: AdminActor = OPERATOR,
    options: AdminChangeOptions = {},
  ): Promise<AccountView> {
    const user = await this.#findUser(reference);
    if (await this.#disable(user, options))
      await this.#audit.record("user_disabled", actor.context, { userId: user.id }, { by: actor.by });
    // A login's second step pending now stays void, also once the user is enabled again.
    await this.#mfa.voidChallenges(user.id);
    // Also when it already was disabled: a session opened by a login racing the first call ends here.
    await this.#revokeAll(user.id, actor);
    return accountViewOf((await this.#store.findUserById(user.id)) ?? user);
  }

  /** Enables a disabled user; their sessions stay revoked. Records `user_enabled` (once). Throws `user_not_found`. */
  async enableUser(reference: UserReference, actor: AdminActor = OPERATOR): Promise<AccountView> {
    const user = await this.#findUser(reference);
    if (await this.#store.enableUser(user.id))
      await this.#audit.record("user_enabled", actor.context, { userId: user.id }, { by: actor.by });
    return accountViewOf({ ...user, disabledAt: null });
  }

  /**
   * Replaces a user's roles (they reach access tokens at the next refresh) and records
   * `roles_changed`. Throws `invalid_request` for a bad role name, `user_not_found`, `last_admin`
   * (unless `options.force`) when the roles lack {@link ADMIN_ROLE} and the user is the last
   * enabled admin, changing nothing.
   */
  async setUserRoles(
    reference: UserReference,
    roles: readonly string[],
    actor: AdminActor = OPERATOR,
    options: AdminChangeOptions = {},
  ): Promise<AccountView> {
    const unique = checkRoleNames(roles);
    const user = await this.#findUser(reference);
    const outcome = options.force
      ? (await this.#store.setUserRoles(user.id, unique)) && "updated"
      : await this.#store.updateUserKeepingRole(user.id, { roles: unique }, ADMIN_ROLE);
    if (outcome === "last_holder") lastAdmin(user);
    if (outcome !== "updated") fail("user_not_found", "no such user");
    await this.#audit.record(
      "roles_changed",
      actor.context,
      { userId: user.id },
      { by: actor.by, from: user.roles, to: unique },
    );
    return accountViewOf({ ...user, roles: unique });
  }

  /**
   * Sets a user's password and revokes (and announces) every session of theirs; returns the
   * revoked session ids. Records `password_changed` and `session_revoked` for each session.
   * Throws `invalid_request` for a bad password, `user_not_found`.
   */
  async setPassword(reference: UserReference, password: string, actor: AdminActor = OPERATOR): Promise<string[]> {
    checkNewPassword(password);
    const user = await this.#findUser(reference);
    if (!(await this.#store.setPasswordHash(user.id, await this.#hasher.hash(password))))
      fail("user_not_found", "no such user");
    await this.#audit.record("password_changed", actor.context, { userId: user.id }, { by: actor.by });
    return this.#revokeAll(user.id, actor);
  }

  /**
   * Deletes a user and their personal data: the account, sessions and refresh tokens (user agents
   * and IP addresses), and the IP address and user agent of their audit events, which stay under
   * the user id. Sessions are revoked and announced first, and resource servers polling the feed
   * still see them revoked. Records `session_revoked` for each open session and `user_deleted`.
   * Throws `user_not_found`, `last_admin` (unless `options.force`) for the last enabled admin,
   * changing nothing.
   */
  async deleteUser(
    reference: UserReference,
    actor: AdminActor = OPERATOR,
    options: AdminChangeOptions = {},
  ): Promise<void> {
    const user = await this.#findUser(reference);
    // Disabled first, so that no login opens a session while the others are revoked; a disabled
    // user is no admin the check counts, so this step alone decides whether the last one may go.
    await this.#disable(user, options);
    await this.#revokeAll(user.id, actor);
    // This instance's buffered events of the user are written first, so that the scrub reaches them.
    await this.#audit.flush();
    if (!(await this.#store.deleteUser(user.id, this.#clock.now()))) fail("user_not_found", "no such user");
    // After the deletion: this event keeps the operator's address, not the user's.
    await this.#audit.record("user_deleted", actor.context, { userId: user.id }, { by: actor.by });
  }

  /** A user's open sessions, newest first. Throws `user_not_found`. */
  async listUserSessions(reference: UserReference): Promise<SessionView[]> {
    const user = await this.#findUser(reference);
    return sessionViewsOf(await this.#store.listActiveSessions(user.id, this.#clock.now()), null);
  }

  /**
   * Revokes one session (of the user `owner`, when given) and announces it; records
   * `session_revoked`. Returns the revoked session ids: none for one already revoked. Throws
   * `user_not_found` for an unknown owner, `session_not_found` for an unknown session or one of
   * another user.
   */
  async revokeSession(sessionId: string, actor: AdminActor = OPERATOR, owner?: UserReference): Promise<string[]> {
    const user = owner === undefined ? null : await this.#findUser(owner);
    const session = await this.#store.findSession(sessionId);
    // An unknown id is a typo worth saying; an already revoked session is simply done.
    if (!session || (user !== null && session.userId !== user.id)) fail("session_not_found", "no such session");
    if (!(await this.#revocations.revokeSession(sessionId, "admin"))) return [];
    await this.#recordRevoked(session.userId, [sessionId], actor);
    return [sessionId];
  }

  /** Revokes and announces every open session of a user; returns their ids. Throws `user_not_found`. */
  async revokeUserSessions(reference: UserReference, actor: AdminActor = OPERATOR): Promise<string[]> {
    const user = await this.#findUser(reference);
    return this.#revokeAll(user.id, actor);
  }

  /**
   * Revokes a session by id, or every session of a user when `target` is `{ username }`, as
   * {@link revokeSession} and {@link revokeUserSessions} do.
   */
  revokeSessions(
    target: { readonly sessionId: string } | { readonly username: string },
    actor: AdminActor = OPERATOR,
  ): Promise<string[]> {
    return "sessionId" in target ? this.revokeSession(target.sessionId, actor) : this.revokeUserSessions(target, actor);
  }

  /** Disables `user` unless it is the last enabled admin (or `options.force`); true when it was enabled. */
  async #disable(user: UserRecord, options: AdminChangeOptions): Promise<boolean> {
    const now = this.#clock.now();
    if (options.force) return this.#store.disableUser(user.id, now);
    const outcome = await this.#store.updateUserKeepingRole(user.id, { disabledAt: now }, ADMIN_ROLE);
    if (outcome === "last_holder") lastAdmin(user);
    return outcome === "updated";
  }

  async #findUser(reference: UserReference): Promise<UserRecord> {
    const user =
      typeof reference === "string"
        ? await findUserByName(this.#store, reference)
        : "id" in reference
          ? await this.#store.findUserById(reference.id)
          : await findUserByName(this.#store, reference.username);
    return user ?? fail("user_not_found", "no such user");
  }

  async #revokeAll(userId: string, actor: AdminActor): Promise<string[]> {
    const revoked = await this.#revocations.revokeUserSessions(userId, "admin");
    await this.#recordRevoked(userId, revoked, actor);
    return revoked;
  }

  async #recordRevoked(userId: string, sessionIds: readonly string[], actor: AdminActor): Promise<void> {
    for (const sessionId of sessionIds)
      await this.#audit.record(
        "session_revoked",
        actor.context,
        { userId, sessionId },
        { reason: "admin", by: actor.by },
      );
  }

  /**
   * Deletes expired refresh tokens and ended sessions, one-time tokens (mailed links) that were
   * used or expired or whose user is gone, then audit events older than `auditRetention`,
   * `batchSize` rows at a time so no lock is held long. Revoked sessions stay until their access
   * tokens have expired, for the revocation feed.
   */
  async purge(batchSize: number): Promise<PurgeSummary> {
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
    let oneTimeTokens = 0;
    for (;;) {
      const deleted = await this.#store.deleteSpentOneTimeTokens(now, batchSize);
      oneTimeTokens += deleted;
      if (deleted === 0) break;
    }
    const auditBefore = addSeconds(now, -this.#config.auditRetentionSeconds);
    let auditEvents = 0;
    for (;;) {
      const deleted = await this.#store.deleteAuditEvents(auditBefore, batchSize);
      auditEvents += deleted;
      if (deleted === 0) return { refreshTokens, sessions, oneTimeTokens, auditEvents };
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
