import type { RevocationReason } from "../core/revocation.js";
import type { SigningKeyState } from "../core/signing-key.js";

/** A user row. */
export interface UserRecord {
  readonly id: string;
  /** As registered (NFKC-normalized), shown back to the user. */
  readonly username: string;
  /** The unique lookup form (the service's NFKC_Casefold of the username), compared byte for byte. */
  readonly usernameKey: string;
  readonly passwordHash: string;
  readonly roles: readonly string[];
  readonly createdAt: Date;
  /** When an operator disabled the account; `null` (as the store reads it) or absent while it is enabled. */
  readonly disabledAt?: Date | null;
  /** The user's email address as given; `null` or absent when there is none. */
  readonly email?: string | null;
  /** The unique lookup form of {@link email} (the service's casefold), compared byte for byte. */
  readonly emailKey?: string | null;
  /** When the current address was verified; `null` or absent while it is not. */
  readonly emailVerifiedAt?: Date | null;
  /** When the user first set the current address (setting it again keeps it); `null` or absent when there is none. */
  readonly emailSetAt?: Date | null;
}

/** An address as {@link Store.setUserEmail} stores it on a user, unverified. */
export interface EmailClaim {
  readonly email: string;
  /** The unique lookup form of {@link email}. */
  readonly emailKey: string;
  /**
   * Now: the user's new `emailSetAt`, unless the user already has this key, unverified: then its
   * `emailSetAt` stays, so setting an address again never extends its claim.
   */
  readonly setAt: Date;
  /**
   * Another user's claim on the key gives way when it is unverified and was set before this
   * moment: see {@link Store.setUserEmail}. Absent: every claim blocks.
   */
  readonly releaseUnverifiedBefore?: Date;
}

/** A single-use token sent by mail, as stored: only its SHA-256. */
export interface OneTimeTokenRecord {
  readonly id: string;
  readonly userId: string;
  /** What it is for, e.g. `email_verification`, `password_reset`. */
  readonly purpose: string;
  readonly tokenHash: string;
  /** A fingerprint of the state it was issued for; the service voids the token when that changed. */
  readonly boundTo: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly usedAt: Date | null;
}

/** Which users {@link Store.findUsers} lists, and which page of them. */
export interface UserQuery {
  /** Only users whose `usernameKey` contains this text (compared byte for byte, no wildcards). */
  readonly keyContains?: string;
  /** Only users holding this role. */
  readonly role?: string;
  /** Only disabled (`true`) or enabled (`false`) users. */
  readonly disabled?: boolean;
  /** Users whose `usernameKey` follows this one; `null` starts at the first. */
  readonly afterKey: string | null;
  /** At most this many users. */
  readonly limit: number;
}

/** A session row: one login, holding a chain of refresh tokens. */
export interface SessionRecord {
  readonly id: string;
  readonly userId: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  /** Absolute end of the session. */
  readonly expiresAt: Date;
  /** Expiry of the newest refresh token: the session ends if it is not refreshed by then. */
  readonly idleExpiresAt: Date;
  readonly revokedAt: Date | null;
  readonly revokedReason: string | null;
  readonly userAgent: string | null;
  readonly ip: string | null;
  /** RFC 8176 methods the session was opened with (`["pwd"]`, `["pwd", "otp"]`); absent: `["pwd"]`. */
  readonly amr?: readonly string[];
}

/** A user's TOTP credential: the secret sealed by the service, pending until confirmed. */
export interface TotpRecord {
  readonly userId: string;
  readonly secretSealed: string;
  readonly createdAt: Date;
  /** When the enrolment was confirmed with a code; `null` while it is pending. */
  readonly confirmedAt: Date | null;
  /** The latest RFC 6238 time step a code was accepted for; `null` before any. */
  readonly lastStep: number | null;
  /**
   * Second-factor answers in a row not followed by a right one (counted before each is checked);
   * the second step is locked at a limit, until a password change or an operator's reset.
   */
  readonly failures: number;
}

/** A single-use recovery code, as stored: only its keyed digest (HMAC-SHA256). */
export interface RecoveryCodeRecord {
  readonly id: string;
  readonly userId: string;
  readonly codeHash: string;
  readonly createdAt: Date;
  readonly usedAt: Date | null;
}

/** A refresh token row; the token itself is never stored, only its SHA-256. */
export interface RefreshTokenRecord {
  readonly id: string;
  readonly sessionId: string;
  readonly tokenHash: string;
  /** The token this one succeeded, `null` for the first token of a session. */
  readonly parentId: string | null;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly usedAt: Date | null;
}

/** A refresh token with its session and the session's user, as one lookup returns them. */
export interface RefreshTokenLookup {
  readonly token: RefreshTokenRecord;
  readonly session: SessionRecord;
  readonly user: UserRecord;
  /** The database's clock when the row was read (see {@link Store}): `token.usedAt` compares with it. */
  readonly readAt: Date;
}

/** How a stored private key is encrypted. */
export type KeyEncryption = "secret" | "development";

/** A signing key row; the private key is encrypted. */
export interface SigningKeyRecord {
  readonly kid: string;
  readonly alg: string;
  readonly publicKey: string;
  readonly privateKeySealed: string;
  readonly encryption: KeyEncryption;
  readonly createdAt: Date;
  readonly retiredAt: Date | null;
  /** True for the one key new tokens are signed with (`state` is `"current"`). */
  readonly current: boolean;
  /** `next`: published, signing from `activatesAt`; `current`: signing; `retired`: verifying only. */
  readonly state: SigningKeyState;
  /** When it signs (`next`) or began to sign (`current`, `retired`); `createdAt` for older keys. */
  readonly activatesAt: Date;
}

/** What {@link Store.insertNextSigningKey} and {@link Store.replaceCurrentSigningKey} store. */
export type NewSigningKey = Omit<SigningKeyRecord, "current" | "state" | "retiredAt">;

/** An audit event. */
export interface AuditEventRecord {
  readonly id: string;
  readonly type: string;
  readonly userId: string | null;
  readonly sessionId: string | null;
  readonly ip: string | null;
  readonly userAgent: string | null;
  readonly details: Readonly<Record<string, unknown>> | null;
  readonly createdAt: Date;
}

/** Which audit events {@link Store.listAuditEvents} returns; each field given narrows the list. */
export interface AuditEventFilter {
  readonly userId?: string;
  readonly sessionId?: string;
  /** Events of any of these types (none: every type). */
  readonly types?: readonly string[];
  /** Events created at or after this moment. */
  readonly since?: Date;
  /** Events created before this moment. */
  readonly until?: Date;
}

/** Where a page of audit events ended: its last event's `createdAt` and `id`. */
export interface AuditEventCursor {
  readonly createdAt: Date;
  readonly id: string;
}

/** Most rows one audit insert statement carries (8 parameters each, within every driver's limit). */
export const AUDIT_INSERT_ROWS = 500;

/** A revoked session and when it was revoked. */
export interface RevokedSession {
  readonly id: string;
  readonly revokedAt: Date;
}

/** The successor written by {@link Store.rotateRefreshToken}. */
export interface RotationWrite {
  readonly presentedId: string;
  readonly sessionId: string;
  readonly successor: RefreshTokenRecord;
  /** The session's new `lastUsedAt`. The presented token's `usedAt` is the database's clock. */
  readonly now: Date;
}

/** The change {@link Store.updateUserKeepingRole} makes to one user: new roles, or disabling at a moment. */
export type KeepingRoleUpdate = { readonly roles: readonly string[] } | { readonly disabledAt: Date };

/**
 * What {@link Store.updateUserKeepingRole} did: `updated`; `unchanged` when there is no such user
 * or (disabling) it already is disabled; `last_holder`, changing nothing, when the user is the
 * last enabled holder of the role and the change would take it away.
 */
export type KeepingRoleOutcome = "updated" | "unchanged" | "last_holder";

/** Rows removed by {@link Store.deleteExpired}. */
export interface PurgeResult {
  readonly refreshTokens: number;
  readonly sessions: number;
}

/**
 * Everything Tessera persists. A missing row is `null`; constraint outcomes are return
 * values; an unreachable database throws `TesseraError("store_unavailable")`, also when it does
 * not answer within a deadline (PostgreSQL and MySQL: `STORE_DEADLINES` of `open-store.ts`).
 *
 * One clock for the grace window: a refresh token's `usedAt` and a lookup's `readAt` are the
 * database's clock, which every instance shares whatever its own clock says: PostgreSQL's
 * `now()`, MySQL's `NOW(3)`, and for SQLite, which has no clock but its host's, the clock the
 * store was opened with (the system clock unless a test injects its own). Every other timestamp
 * is the caller's, as given.
 */
export interface Store {
  /** Which database this is: `"sqlite"`, `"postgres"` or `"mysql"`. */
  readonly kind: StoreKind;
  /** Creates or upgrades the schema; safe when several instances start at once. */
  migrate(): Promise<void>;
  /** Succeeds when the database answers. */
  ping(): Promise<void>;
  /** Closes the connections; the store is unusable afterwards. */
  close(): Promise<void>;

  /**
   * Inserts a user, with its email address (unverified, set at `emailSetAt`, else `createdAt`)
   * when `email` and `emailKey` are given; `false`, changing nothing, when the username key or the
   * email key is taken. Given `releaseUnverifiedEmailBefore`, another user's claim on the email
   * key that is unverified and was set before that moment is released first, in the same
   * transaction, as {@link setUserEmail} does.
   */
  createUser(user: UserRecord, releaseUnverifiedEmailBefore?: Date): Promise<boolean>;
  /** The user whose `usernameKey` this is, or `null`. */
  findUserByUsername(usernameKey: string): Promise<UserRecord | null>;
  /** The user with this id, or `null`. */
  findUserById(id: string): Promise<UserRecord | null>;
  /** Replaces a user's roles; `false` when there is no such user. */
  setUserRoles(id: string, roles: readonly string[]): Promise<boolean>;
  /**
   * Sets a user's roles or disables it, as {@link setUserRoles} and {@link disableUser} do, unless
   * that leaves no enabled user holding `role`: then `last_holder`, changing nothing. One
   * transaction first locks one `settings` row that every such call locks (SELECT … FOR UPDATE;
   * SQLite serialises writers), then reads the holders, so of two calls racing to take the role
   * from its last two holders exactly one wins. No user row is locked but the one changed.
   */
  updateUserKeepingRole(id: string, update: KeepingRoleUpdate, role: string): Promise<KeepingRoleOutcome>;
  /** Users in `id` order: at most `limit` of those whose id follows `afterId` (from the first when `null`). */
  listUsers(afterId: string | null, limit: number): Promise<UserRecord[]>;
  /** Users matching `query`, in `usernameKey` order (the database's order of that column). */
  findUsers(query: UserQuery): Promise<UserRecord[]>;
  /** Marks a user disabled at `now`; `false` when there is no such user or it already is disabled. */
  disableUser(id: string, now: Date): Promise<boolean>;
  /** Clears a user's disabled mark; `false` when there is no such user or it is not disabled. */
  enableUser(id: string): Promise<boolean>;
  /**
   * Replaces a user's password hash; `false` when there is no such user, or, given `expectedHash`,
   * when the stored hash is no longer that one (one conditional update: of two racing changes
   * made from the same hash, one wins). Clears the user's count of wrong second-factor answers
   * (see {@link TotpRecord.failures}) in the same transaction.
   */
  setPasswordHash(id: string, passwordHash: string, expectedHash?: string): Promise<boolean>;
  /**
   * Deletes a user with their sessions and refresh tokens and clears `ip` and `user_agent` of
   * their audit events (the events stay), in one transaction. Each deleted session stays listed
   * by {@link listRevokedSessions}, as revoked when it was (at `now` if it was open), until
   * {@link deleteExpired} passes it. `false`, changing nothing, when there is no such user.
   */
  deleteUser(id: string, now: Date): Promise<boolean>;
  /**
   * Sets a user's `usernameKey` to `to` if it is still `from`, in one conditional update; `false`,
   * changing nothing, when it is not or another user has `to`.
   */
  changeUsernameKey(id: string, from: string, to: string): Promise<boolean>;

  /** Inserts a session and its first refresh token in one transaction. */
  createSession(session: SessionRecord, firstToken: RefreshTokenRecord): Promise<void>;
  /** The session with this id, revoked or not, or `null`. */
  findSession(id: string): Promise<SessionRecord | null>;
  /** Sessions of a user that are neither revoked nor expired at `now`, newest first. */
  listActiveSessions(userId: string, now: Date): Promise<SessionRecord[]>;
  /** Marks a session revoked; `false` if it did not exist or was already revoked. */
  revokeSession(id: string, now: Date, reason: RevocationReason): Promise<boolean>;
  /** Revokes every unrevoked session of a user but `exceptSessionId` (if given); returns their ids. */
  revokeUserSessions(userId: string, now: Date, reason: RevocationReason, exceptSessionId?: string): Promise<string[]>;
  /** Sessions revoked at or after `since` (deleted users' sessions too), oldest revocation first. */
  listRevokedSessions(since: Date): Promise<RevokedSession[]>;

  /** The refresh token with this SHA-256, with its session and user (one query), or `null`. */
  findRefreshToken(tokenHash: string): Promise<RefreshTokenLookup | null>;
  /** The token issued when `parentId` was used, if any. */
  findSuccessor(parentId: string): Promise<RefreshTokenRecord | null>;
  /**
   * Marks the presented token used, inserts its successor and advances the session's
   * `lastUsedAt`/`idleExpiresAt`, in one transaction. The check-and-act is one conditional
   * update ("used where not used", after the session row was locked by "where not revoked"), so
   * of racing calls exactly one wins. Returns `false`, writing nothing, when another request got
   * there first or the session is revoked.
   */
  rotateRefreshToken(write: RotationWrite): Promise<boolean>;

  /** Every signing key, retired ones too, oldest first. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Stores `key` (its private part already sealed, `current` ignored) as the current signing key
   * and retires every other unretired key at `key.createdAt`, in one transaction, provided the
   * current key is still `expectedCurrentKid` (`null`: there is none). The check-and-act is a
   * unique column, so of racing calls with the same expectation exactly one wins; the others
   * return `false`, writing nothing, and read the winner with {@link listSigningKeys}.
   */
  replaceCurrentSigningKey(key: NewSigningKey, expectedCurrentKid: string | null): Promise<boolean>;
  /** Marks a key retired (and no longer current) at `now`, unless it already is retired. */
  retireSigningKey(kid: string, now: Date): Promise<void>;
  /**
   * Stores `key` as the next signing key, to sign from `key.activatesAt`. The check-and-act is
   * the unique slot: of racing calls exactly one inserts; the others (and any call while a next
   * key exists) return `false`, writing nothing.
   */
  insertNextSigningKey(key: NewSigningKey): Promise<boolean>;
  /**
   * Makes the next key `nextKid` current and retires `expectedCurrentKid` at `now`, in one
   * transaction, provided both still hold their slots (`null`: no current key). Of racing calls
   * exactly one wins; the others return `false`, writing nothing.
   */
  promoteNextSigningKey(nextKid: string, expectedCurrentKid: string | null, now: Date): Promise<boolean>;
  /** Deletes keys retired before `before`, private parts with them; returns how many. */
  deleteRetiredSigningKeys(before: Date): Promise<number>;

  /** Stores `value` under `name` unless a value is there already; returns the stored value. */
  ensureSetting(name: string, value: string): Promise<string>;
  /** The value stored under `name`, or `null`. */
  findSetting(name: string): Promise<string | null>;

  /** Appends an audit event. */
  insertAuditEvent(event: AuditEventRecord): Promise<void>;
  /** Appends audit events with multi-row inserts (at most {@link AUDIT_INSERT_ROWS} rows a statement). */
  insertAuditEvents(events: readonly AuditEventRecord[]): Promise<void>;
  /**
   * Audit events matching `filter`, newest first (by `createdAt`, then `id`, both descending), at
   * most `limit`, starting after `after` (from the newest when `null`). Events written while
   * pages are read never shift or repeat the pages that follow.
   */
  listAuditEvents(filter: AuditEventFilter, after: AuditEventCursor | null, limit: number): Promise<AuditEventRecord[]>;
  /**
   * Deletes up to `batchSize` audit events created before `before`; returns how many. Call
   * repeatedly until it returns 0; small batches keep locks short.
   */
  deleteAuditEvents(before: Date, batchSize: number): Promise<number>;

  /**
   * Deletes up to `batchSize` refresh tokens that expired before `before`, and up to
   * `batchSize` sessions that ended (expired, went idle or were revoked) before `before`
   * together with their remaining tokens, and up to `batchSize` deleted users' sessions revoked
   * before `before` (counted as sessions); the result counts every row deleted. Each statement
   * commits on its own: call repeatedly until both counts are 0; small batches keep locks short.
   */
  deleteExpired(before: Date, batchSize: number): Promise<PurgeResult>;

  /**
   * Sets a user's email address and its unique key, unverified, set at `claim.setAt` (the key the
   * user already has unverified keeps the time it was first set), or clears them with `null`;
   * `false`, changing nothing, when there is no such user or another user holds that key. Another
   * user's claim gives way when it is unverified and was set before `claim.releaseUnverifiedBefore`:
   * in one transaction, one conditional update clears that user's address and the unused one-time
   * tokens of that user are used at `claim.setAt`, then the address is set. A verified claim, or a
   * newer one, always holds.
   */
  setUserEmail(id: string, claim: EmailClaim | null): Promise<boolean>;
  /** The user whose email key is exactly `emailKey`, or `null`. */
  findUserByEmailKey(emailKey: string): Promise<UserRecord | null>;
  /**
   * Marks the user's address verified at `now` if it still has the key `emailKey` and is not
   * disabled; `false` when the user is gone, disabled, or changed the address meanwhile.
   */
  markEmailVerified(id: string, emailKey: string, now: Date): Promise<boolean>;
  /** Stores a single-use token (its hash only). */
  createOneTimeToken(token: OneTimeTokenRecord): Promise<void>;
  /** Marks every unused token of `purpose` of the user used at `now`; returns how many. */
  voidOneTimeTokens(userId: string, purpose: string, now: Date): Promise<number>;
  /**
   * Deletes up to `batchSize` one-time tokens that expired or were used before `before`, or whose
   * user is gone; returns how many. Call repeatedly until it returns 0; small batches keep locks short.
   */
  deleteSpentOneTimeTokens(before: Date, batchSize: number): Promise<number>;
  /**
   * Uses the unused, unexpired token of `purpose` with this hash, as one conditional update, and
   * returns it; `null` when there is none (unknown, other purpose, expired, or already used, also
   * by a racing call: exactly one caller wins). With `enabledUsersOnly`, a token of a disabled
   * user is `null` too, and stays unused.
   */
  consumeOneTimeToken(
    tokenHash: string,
    purpose: string,
    now: Date,
    options?: { readonly enabledUsersOnly?: boolean },
  ): Promise<OneTimeTokenRecord | null>;
  /** The unused, unexpired token of `purpose` with this hash, or `null`; changes nothing. */
  findOneTimeToken(tokenHash: string, purpose: string, now: Date): Promise<OneTimeTokenRecord | null>;
  /**
   * Reserves one answer on the unused, unexpired token of `purpose` with this hash, before the
   * answer is checked, as one conditional update (`attempts = attempts + 1` while fewer than
   * `maxAttempts`), and returns the token; `null` when there is no such token or its attempts are
   * spent (of racing calls, at most `maxAttempts` in all ever get it).
   */
  reserveOneTimeTokenAttempt(
    tokenHash: string,
    purpose: string,
    maxAttempts: number,
    now: Date,
  ): Promise<OneTimeTokenRecord | null>;

  /** The user's TOTP credential, pending or confirmed, or `null`. */
  findTotp(userId: string): Promise<TotpRecord | null>;
  /**
   * Stores a pending TOTP secret for the user, replacing a pending one; `false`, changing nothing,
   * when the user's TOTP is confirmed (or the user is gone).
   */
  savePendingTotp(userId: string, secretSealed: string, now: Date): Promise<boolean>;
  /**
   * Confirms the user's pending TOTP credential if its secret is still `secretSealed`, accepting
   * time step `step`, and replaces the user's recovery codes with `recoveryCodes`, in one
   * transaction; `false`, writing nothing, when there is no such pending credential.
   */
  confirmTotp(
    userId: string,
    secretSealed: string,
    step: number,
    now: Date,
    recoveryCodes: readonly RecoveryCodeRecord[],
  ): Promise<boolean>;
  /**
   * Accepts a code of time step `step` for the user's confirmed TOTP, as one conditional update:
   * `false` when TOTP is not confirmed or a code of this step or a later one was accepted already
   * (of racing calls with one step, exactly one wins).
   */
  acceptTotpStep(userId: string, step: number): Promise<boolean>;
  /** Of `userIds`, those whose TOTP credential is confirmed (TOTP on), in no particular order. */
  findTotpUserIds(userIds: readonly string[]): Promise<string[]>;
  /** Deletes the user's TOTP credential and recovery codes; `false` when there was no credential. */
  deleteTotp(userId: string): Promise<boolean>;
  /**
   * Counts one second-factor answer of the user, before it is checked, as one conditional update
   * (`failures = failures + 1` while fewer than `maxFailures`), and returns the new count; `null`
   * when the user has no confirmed TOTP or the count is at `maxFailures` (locked).
   */
  reserveTotpAttempt(userId: string, maxFailures: number): Promise<number | null>;
  /** Clears the user's count of second-factor answers in a row (a right answer was given). */
  clearTotpFailures(userId: string): Promise<void>;
  /**
   * Uses the user's unused recovery code with this digest at `now`, as one conditional update;
   * `false` when there is none (unknown, another user's, or used, also by a racing call).
   */
  useRecoveryCode(userId: string, codeHash: string, now: Date): Promise<boolean>;
  /** How many of the user's recovery codes are unused. */
  countUnusedRecoveryCodes(userId: string): Promise<number>;
}

/** The databases Tessera stores into. */
export const STORE_KINDS = ["sqlite", "postgres", "mysql"] as const;

/** One of {@link STORE_KINDS}. */
export type StoreKind = (typeof STORE_KINDS)[number];

/** The store kind a database URL selects. Throws `TypeError` for an unknown scheme. */
export function storeKindOf(url: string): StoreKind {
  const scheme = url.slice(0, url.indexOf(":")).toLowerCase();
  if (scheme === "sqlite" || scheme === "file") return "sqlite";
  if (scheme === "postgres" || scheme === "postgresql") return "postgres";
  if (scheme === "mysql" || scheme === "mariadb") return "mysql";
  throw new TypeError("database URL must start with sqlite:, postgres:// or mysql://");
}

/** Length limits shared by the schema and the HTTP validation. */
export const LIMITS = Object.freeze({ username: 64, userAgent: 512, ip: 64, reason: 64, email: 254, amr: 64 });
