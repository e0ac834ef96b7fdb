import { type Kysely, Migrator, type Selectable, type Transaction, type UpdateResult, sql } from "kysely";
import type { RevocationReason } from "../core/revocation.js";
import type { SigningKeyState } from "../core/signing-key.js";
import { migrationProvider } from "./migrations.js";
import type { RotationStatements } from "./rotation-statements.js";
import {
  CURRENT_KEY_SLOT,
  NEXT_KEY_SLOT,
  type Database,
  type OneTimeTokensTable,
  type RefreshTokensTable,
  type SessionsTable,
  type UsersTable,
} from "./schema.js";
import { isTransientConflict, isUniqueViolation, translateStoreError } from "./store-errors.js";
import type {
  AuditEventRecord,
  EmailClaim,
  KeepingRoleOutcome,
  KeepingRoleUpdate,
  KeyEncryption,
  PurgeResult,
  RefreshTokenLookup,
  RefreshTokenRecord,
  RevokedSession,
  RotationWrite,
  SessionRecord,
  NewSigningKey,
  OneTimeTokenRecord,
  RecoveryCodeRecord,
  SigningKeyRecord,
  Store,
  StoreKind,
  TotpRecord,
  UserQuery,
  UserRecord,
} from "./store.js";
import { AUDIT_INSERT_ROWS, type AuditEventCursor, type AuditEventFilter } from "./store.js";

function toDate(value: Date | string | number): Date {
  if (value instanceof Date) return value;
  // SQLite keeps ISO-8601 text with a trailing Z; numbers are epoch milliseconds.
  return new Date(value);
}

function toNullableDate(value: Date | string | number | null): Date | null {
  return value === null ? null : toDate(value);
}

/** A user row as a record. */
export function toUser(row: Selectable<UsersTable>): UserRecord {
  return {
    id: row.id,
    username: row.username,
    usernameKey: row.username_key,
    passwordHash: row.password_hash,
    roles: JSON.parse(row.roles) as string[],
    createdAt: toDate(row.created_at),
    disabledAt: toNullableDate(row.disabled_at),
    email: row.email ?? null,
    emailKey: row.email_key ?? null,
    emailVerifiedAt: toNullableDate(row.email_verified_at ?? null),
    emailSetAt: toNullableDate(row.email_set_at ?? null),
  };
}

/** A session row as a record. */
export function toSession(row: Selectable<SessionsTable>): SessionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    createdAt: toDate(row.created_at),
    lastUsedAt: toDate(row.last_used_at),
    expiresAt: toDate(row.expires_at),
    idleExpiresAt: toDate(row.idle_expires_at),
    revokedAt: toNullableDate(row.revoked_at),
    revokedReason: row.revoked_reason,
    userAgent: row.user_agent,
    ip: row.ip,
    amr: amrOf(row.amr),
  };
}

/** The stored, space-separated methods of a session as a list; none stored: a password login. */
export function amrOf(stored: string | null | undefined): readonly string[] {
  const methods = (stored ?? "").split(" ").filter(Boolean);
  return Object.freeze(methods.length > 0 ? methods : ["pwd"]);
}

/** A one-time-token row as a record. */
function toOneTimeToken(row: Selectable<OneTimeTokensTable>): OneTimeTokenRecord {
  return {
    id: row.id,
    userId: row.user_id,
    purpose: row.purpose,
    tokenHash: row.token_hash,
    boundTo: row.bound_to,
    createdAt: toDate(row.created_at),
    expiresAt: toDate(row.expires_at),
    usedAt: toNullableDate(row.used_at),
  };
}

/** A refresh-token row as a record. */
export function toRefreshToken(row: Selectable<RefreshTokensTable>): RefreshTokenRecord {
  return {
    id: row.id,
    sessionId: row.session_id,
    tokenHash: row.token_hash,
    parentId: row.parent_id,
    createdAt: toDate(row.created_at),
    expiresAt: toDate(row.expires_at),
    usedAt: toNullableDate(row.used_at),
  };
}

/** A built UPDATE statement, not yet run. */
type UpdateQuery = { executeTakeFirst(): Promise<UpdateResult> };

/** Runs `update`: true when it changed a row, that is when a conditional update's check passed. */
async function updatedAny(update: UpdateQuery): Promise<boolean> {
  return (await update.executeTakeFirst()).numUpdatedRows > 0n;
}

/** A lookup row: its columns aliased `t_*`, `s_*` and `u_*` by table, and `read_at`. */
type Prefixed<P extends string, T> = { readonly [K in keyof T & string as `${P}${K}`]: T[K] };
type LookupRow = Prefixed<"t_", Selectable<RefreshTokensTable>> &
  Prefixed<"s_", Selectable<SessionsTable>> &
  Prefixed<"u_", Selectable<UsersTable>> & { readonly read_at: Date | string };

/**
 * A lookup row, its columns aliased `t_*`, `s_*` and `u_*` by table, with the database's clock as
 * `read_at`, as a {@link RefreshTokenLookup}.
 */
export function lookupOf(row: Record<string, unknown>): RefreshTokenLookup {
  // Read by name, not by scanning the row's keys per table: this runs on every refresh.
  const r = row as unknown as LookupRow;
  return {
    token: {
      id: r.t_id,
      sessionId: r.t_session_id,
      tokenHash: r.t_token_hash,
      parentId: r.t_parent_id,
      createdAt: toDate(r.t_created_at),
      expiresAt: toDate(r.t_expires_at),
      usedAt: toNullableDate(r.t_used_at),
    },
    session: {
      id: r.s_id,
      userId: r.s_user_id,
      createdAt: toDate(r.s_created_at),
      lastUsedAt: toDate(r.s_last_used_at),
      expiresAt: toDate(r.s_expires_at),
      idleExpiresAt: toDate(r.s_idle_expires_at),
      revokedAt: toNullableDate(r.s_revoked_at),
      revokedReason: r.s_revoked_reason,
      userAgent: r.s_user_agent,
      ip: r.s_ip,
      amr: amrOf(r.s_amr),
    },
    user: {
      id: r.u_id,
      username: r.u_username,
      usernameKey: r.u_username_key,
      passwordHash: r.u_password_hash,
      roles: JSON.parse(r.u_roles) as string[],
      createdAt: toDate(r.u_created_at),
      disabledAt: toNullableDate(r.u_disabled_at),
    },
    readAt: toDate(r.read_at),
  };
}

/** Rolls back a transaction whose user turned out not to exist. */
class UnknownUser extends Error {}

/** How often a transaction aborted by a deadlock or serialization failure is tried in all. */
const TRANSACTION_ATTEMPTS = 4;
/** How often a SQLite migration that lost a race with another process is tried in all. */
const MIGRATION_ATTEMPTS = 5;
/** The `settings` row whose lock serialises the calls of `updateUserKeepingRole()`; its value is unused. */
const ROLE_GUARD_SETTING = "role_guard";

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Aborts a signing-key replacement when another instance replaced the current key first. */
class LostElection extends Error {}

function stateOfSlot(slot: string | null): SigningKeyState {
  if (slot === CURRENT_KEY_SLOT) return "current";
  return slot === NEXT_KEY_SLOT ? "next" : "retired";
}

function isLostSqliteMigrationRace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("SQLITE_BUSY")) return true;
  return error instanceof Error && /already exists/i.test(error.message);
}

/** Options of {@link KyselyStore}. */
export interface KyselyStoreOptions {
  /** The refresh path, on the driver of the same database. */
  readonly rotation: RotationStatements;
  /** Lets go of the database on {@link KyselyStore.close}; default: `db.destroy()`. */
  readonly release?: () => Promise<void>;
  /** A Kysely instance for one run of migrations, destroyed afterwards; default: `db`. */
  readonly migrationDb?: () => Kysely<Database>;
}

/**
 * The {@link Store} over Kysely, one implementation for SQLite, PostgreSQL and MySQL/MariaDB; the
 * refresh path excepted, which runs on each driver ({@link RotationStatements}).
 */
export class KyselyStore implements Store {
  readonly kind: StoreKind;
  readonly #db: Kysely<Database>;
  readonly #release: () => Promise<void>;
  readonly #migrationDb: (() => Kysely<Database>) | undefined;
  readonly #rotation: RotationStatements;

  constructor(kind: StoreKind, db: Kysely<Database>, options: KyselyStoreOptions) {
    this.kind = kind;
    this.#db = db;
    this.#release = options.release ?? (() => db.destroy());
    this.#migrationDb = options.migrationDb;
    this.#rotation = options.rotation;
  }

  /** The encoding of a timestamp for this database. */
  #ts(date: Date): Date | string {
    return this.kind === "sqlite" ? date.toISOString() : date;
  }

  async #run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      translateStoreError(error);
    }
  }

  /** Runs the update `build` returns, as {@link updatedAny} does, translating store errors. */
  #updated(build: () => UpdateQuery): Promise<boolean> {
    return this.#run(() => updatedAny(build()));
  }

  /**
   * Runs `work` in a transaction, again (up to {@link TRANSACTION_ATTEMPTS} times in all) when
   * the database aborted it as a deadlock or serialization failure: those roll back fully, so
   * a retry is safe and is what MySQL and PostgreSQL ask for.
   */
  async #transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#db.transaction().execute(work);
      } catch (error) {
        if (attempt >= TRANSACTION_ATTEMPTS || !isTransientConflict(error)) throw error;
        await delay(attempt * 5 + Math.random() * 10);
      }
    }
  }

  async migrate(): Promise<void> {
    const db = this.#migrationDb?.() ?? this.#db;
    try {
      const migrator = new Migrator({ db, provider: migrationProvider(this.kind) });
      for (let attempt = 1; ; attempt += 1) {
        const { error } = await migrator.migrateToLatest();
        if (!error) return;
        // PostgreSQL and MySQL take a lock around migrations; SQLite's Kysely adapter does not, so
        // a second process migrating the same file can lose (SQLITE_BUSY*, "already exists").
        // Its transaction rolled back; a retry finds the schema the winner created.
        if (this.kind !== "sqlite" || attempt >= MIGRATION_ATTEMPTS || !isLostSqliteMigrationRace(error))
          translateStoreError(error);
        await delay(attempt * 50);
      }
    } finally {
      if (db !== this.#db) await db.destroy();
    }
  }

  async ping(): Promise<void> {
    await this.#run(() => sql`select 1`.execute(this.#db));
  }

  async close(): Promise<void> {
    await this.#release();
  }

  async createUser(user: UserRecord, releaseUnverifiedEmailBefore?: Date): Promise<boolean> {
    const emailKey = user.email && user.emailKey ? user.emailKey : null;
    const emailSetAt = user.emailSetAt ?? user.createdAt;
    const insert = (db: Kysely<Database>) =>
      db
        .insertInto("users")
        .values({
          id: user.id,
          username: user.username,
          username_key: user.usernameKey,
          password_hash: user.passwordHash,
          roles: JSON.stringify(user.roles),
          created_at: this.#ts(user.createdAt),
          ...(user.disabledAt ? { disabled_at: this.#ts(user.disabledAt) } : {}),
          ...(emailKey ? { email: user.email, email_key: emailKey, email_set_at: this.#ts(emailSetAt) } : {}),
        })
        .execute();
    try {
      if (emailKey && releaseUnverifiedEmailBefore) {
        await this.#transaction(async (trx) => {
          await this.#releaseStaleEmail(trx, emailKey, user.id, releaseUnverifiedEmailBefore, emailSetAt);
          await insert(trx);
        });
      } else await insert(this.#db);
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      translateStoreError(error);
    }
  }

  /**
   * Releases another user's claim on `emailKey` when it is unverified and was set before `before`:
   * one conditional update clears that user's address, then its unused one-time tokens (all of
   * them mailed to that address) are used at `now`.
   */
  async #releaseStaleEmail(
    trx: Transaction<Database>,
    emailKey: string,
    exceptId: string,
    before: Date,
    now: Date,
  ): Promise<void> {
    const holder = await trx
      .selectFrom("users")
      .select("id")
      .where("email_key", "=", emailKey)
      .where("id", "<>", exceptId)
      .executeTakeFirst();
    if (!holder) return;
    // Re-checked by the update itself: a verification landing meanwhile keeps the address.
    const cleared = await trx
      .updateTable("users")
      .set({ email: null, email_key: null, email_verified_at: null, email_set_at: null })
      .where("id", "=", holder.id)
      .where("email_key", "=", emailKey)
      .where("email_verified_at", "is", null)
      .where("email_set_at", "<", this.#ts(before))
      .executeTakeFirst();
    if (cleared.numUpdatedRows === 0n) return;
    await trx
      .updateTable("one_time_tokens")
      .set({ used_at: this.#ts(now) })
      .where("user_id", "=", holder.id)
      .where("used_at", "is", null)
      .execute();
  }

  findUserByUsername(usernameKey: string): Promise<UserRecord | null> {
    return this.#run(async () => {
      const row = await this.#db
        .selectFrom("users")
        .selectAll()
        .where("username_key", "=", usernameKey)
        .executeTakeFirst();
      return row ? toUser(row) : null;
    });
  }

  findUserById(id: string): Promise<UserRecord | null> {
    return this.#run(async () => {
      const row = await this.#db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? toUser(row) : null;
    });
  }

  setUserRoles(id: string, roles: readonly string[]): Promise<boolean> {
    return this.#updated(() =>
      this.#db
        .updateTable("users")
        .set({ roles: JSON.stringify(roles) })
        .where("id", "=", id),
    );
  }

  listUsers(afterId: string | null, limit: number): Promise<UserRecord[]> {
    return this.#run(async () => {
      let query = this.#db.selectFrom("users").selectAll().orderBy("id").limit(limit);
      if (afterId !== null) query = query.where("id", ">", afterId);
      return (await query.execute()).map(toUser);
    });
  }

  findUsers(query: UserQuery): Promise<UserRecord[]> {
    return this.#run(async () => {
      let select = this.#db.selectFrom("users").selectAll().orderBy("username_key").limit(query.limit);
      if (query.afterKey !== null) select = select.where("username_key", ">", query.afterKey);
      if (query.keyContains !== undefined && query.keyContains !== "")
        select = select.where(this.#contains("username_key", query.keyContains));
      // Roles are a JSON array of names that JSON.stringify writes unescaped: `"name"` is one element.
      if (query.role !== undefined) select = select.where(this.#contains("roles", JSON.stringify(query.role)));
      if (query.disabled !== undefined) select = select.where("disabled_at", query.disabled ? "is not" : "is", null);
      return (await select.execute()).map(toUser);
    });
  }

  /**
   * True where `column` contains `text`, byte for byte: no wildcards, and no case folding (SQLite's
   * LIKE folds ASCII case, MySQL's text collations fold case and accents).
   */
  #contains(column: "username_key" | "roles", text: string) {
    const ref = sql.ref(column);
    switch (this.kind) {
      case "sqlite":
        return sql<boolean>`instr(${ref}, ${text}) > 0`;
      case "postgres":
        return sql<boolean>`strpos(${ref}, ${text}) > 0`;
      case "mysql":
        return sql<boolean>`locate(cast(${text} as binary), cast(${ref} as binary)) > 0`;
    }
  }

  disableUser(id: string, now: Date): Promise<boolean> {
    return this.#updated(() =>
      this.#db
        .updateTable("users")
        .set({ disabled_at: this.#ts(now) })
        .where("id", "=", id)
        .where("disabled_at", "is", null),
    );
  }

  enableUser(id: string): Promise<boolean> {
    return this.#updated(() =>
      this.#db
        .updateTable("users")
        .set({ disabled_at: null })
        .where("id", "=", id)
        .where("disabled_at", "is not", null),
    );
  }

  updateUserKeepingRole(id: string, update: KeepingRoleUpdate, role: string): Promise<KeepingRoleOutcome> {
    return this.#run(async () => {
      // Once more when the lock row is missing, after creating it.
      for (let attempt = 1; ; attempt += 1) {
        const outcome = await this.#transaction(async (trx) => {
          if (!(await this.#takeRoleGuard(trx))) return null;
          // Plain reads: no user row is locked but the one written below. On MySQL/MariaDB
          // (REPEATABLE READ) the snapshot is taken at the first plain read, which follows the
          // lock: it sees every guarded change committed before the lock was granted. PostgreSQL
          // (READ COMMITTED) reads afresh at each statement.
          const holders = await trx
            .selectFrom("users")
            .select("id")
            .where("disabled_at", "is", null)
            .where(this.#contains("roles", JSON.stringify(role)))
            .execute();
          const user = await trx
            .selectFrom("users")
            .select(["id", "disabled_at"])
            .where("id", "=", id)
            .executeTakeFirst();
          if (!user) return "unchanged";
          const keeps = "roles" in update && update.roles.includes(role);
          if (!keeps && holders.length === 1 && holders[0]!.id === id) return "last_holder";
          if ("roles" in update) {
            await trx
              .updateTable("users")
              .set({ roles: JSON.stringify(update.roles) })
              .where("id", "=", id)
              .execute();
            return "updated";
          }
          if (user.disabled_at !== null) return "unchanged";
          await trx
            .updateTable("users")
            .set({ disabled_at: this.#ts(update.disabledAt) })
            .where("id", "=", id)
            .execute();
          return "updated";
        });
        if (outcome !== null) return outcome;
        if (attempt > 1) throw new Error(`the settings row ${ROLE_GUARD_SETTING} cannot be created`);
        await this.#createRoleGuard();
      }
    });
  }

  /**
   * Takes the lock that serialises {@link updateUserKeepingRole} calls, as the first statement of
   * `trx`: the `settings` row {@link ROLE_GUARD_SETTING}, `SELECT … FOR UPDATE`. One row, and not
   * the holders' rows: on MySQL/MariaDB a locking read of users by role (no index serves it)
   * would lock every user row and the gaps between them, stalling sign-ups and every other
   * change of a user until the transaction ends. `false` when the row is missing (nothing
   * locked: the caller creates it and starts again). SQLite runs one writer at a time: no lock.
   */
  async #takeRoleGuard(trx: Transaction<Database>): Promise<boolean> {
    if (this.kind === "sqlite") return true;
    const row = await trx
      .selectFrom("settings")
      .select("name")
      .where("name", "=", ROLE_GUARD_SETTING)
      .forUpdate()
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Creates the row {@link #takeRoleGuard} locks, unless another instance just did. */
  async #createRoleGuard(): Promise<void> {
    try {
      await this.#db.insertInto("settings").values({ name: ROLE_GUARD_SETTING, value: "" }).execute();
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
    }
  }

  setPasswordHash(id: string, passwordHash: string, expectedHash?: string): Promise<boolean> {
    return this.#run(() =>
      this.#transaction(async (trx) => {
        let update = trx.updateTable("users").set({ password_hash: passwordHash }).where("id", "=", id);
        if (expectedHash !== undefined) update = update.where("password_hash", "=", expectedHash);
        const result = await update.executeTakeFirst();
        if (result.numUpdatedRows === 0n) return false;
        // A new password ends a lock of the second step: whoever guessed codes knew the old one.
        await trx.updateTable("totp_credentials").set({ failures: 0 }).where("user_id", "=", id).execute();
        return true;
      }),
    );
  }

  deleteUser(id: string, now: Date): Promise<boolean> {
    return this.#run(() =>
      this.#transaction(async (trx) => {
        // The user row first: it is locked from here on, so no session can be added meanwhile.
        const user = await trx
          .updateTable("users")
          .set({ disabled_at: this.#ts(now) })
          .where("id", "=", id)
          .executeTakeFirst();
        if (user.numUpdatedRows === 0n) return false;
        const sessions = await trx
          .selectFrom("sessions")
          .select(["id", "revoked_at"])
          .where("user_id", "=", id)
          .execute();
        if (sessions.length > 0) {
          const ids = sessions.map((row) => row.id);
          await trx
            .insertInto("deleted_sessions")
            .values(sessions.map((row) => ({ id: row.id, revoked_at: row.revoked_at ?? this.#ts(now) })))
            .execute();
          await trx.deleteFrom("refresh_tokens").where("session_id", "in", ids).execute();
          await trx.deleteFrom("sessions").where("id", "in", ids).execute();
        }
        await trx.updateTable("audit_events").set({ ip: null, user_agent: null }).where("user_id", "=", id).execute();
        await trx.deleteFrom("one_time_tokens").where("user_id", "=", id).execute();
        await trx.deleteFrom("recovery_codes").where("user_id", "=", id).execute();
        await trx.deleteFrom("totp_credentials").where("user_id", "=", id).execute();
        await trx.deleteFrom("users").where("id", "=", id).execute();
        return true;
      }),
    );
  }

  async changeUsernameKey(id: string, from: string, to: string): Promise<boolean> {
    try {
      return await updatedAny(
        this.#db.updateTable("users").set({ username_key: to }).where("id", "=", id).where("username_key", "=", from),
      );
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      translateStoreError(error);
    }
  }

  #sessionValues(session: SessionRecord) {
    return {
      id: session.id,
      user_id: session.userId,
      created_at: this.#ts(session.createdAt),
      last_used_at: this.#ts(session.lastUsedAt),
      expires_at: this.#ts(session.expiresAt),
      idle_expires_at: this.#ts(session.idleExpiresAt),
      revoked_at: session.revokedAt ? this.#ts(session.revokedAt) : null,
      revoked_reason: session.revokedReason,
      user_agent: session.userAgent,
      ip: session.ip,
      amr: (session.amr ?? ["pwd"]).join(" "),
    };
  }

  #tokenValues(token: RefreshTokenRecord) {
    return {
      id: token.id,
      session_id: token.sessionId,
      token_hash: token.tokenHash,
      parent_id: token.parentId,
      created_at: this.#ts(token.createdAt),
      expires_at: this.#ts(token.expiresAt),
      used_at: token.usedAt ? this.#ts(token.usedAt) : null,
    };
  }

  createSession(session: SessionRecord, firstToken: RefreshTokenRecord): Promise<void> {
    return this.#run(() =>
      this.#transaction(async (trx) => {
        await trx.insertInto("sessions").values(this.#sessionValues(session)).execute();
        await trx.insertInto("refresh_tokens").values(this.#tokenValues(firstToken)).execute();
      }),
    );
  }

  findSession(id: string): Promise<SessionRecord | null> {
    return this.#run(async () => {
      const row = await this.#db.selectFrom("sessions").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? toSession(row) : null;
    });
  }

  listActiveSessions(userId: string, now: Date): Promise<SessionRecord[]> {
    return this.#run(async () => {
      const rows = await this.#db
        .selectFrom("sessions")
        .selectAll()
        .where("user_id", "=", userId)
        .where("revoked_at", "is", null)
        .where("expires_at", ">", this.#ts(now))
        .where("idle_expires_at", ">", this.#ts(now))
        .orderBy("created_at", "desc")
        .orderBy("id")
        .execute();
      return rows.map(toSession);
    });
  }

  revokeSession(id: string, now: Date, reason: RevocationReason): Promise<boolean> {
    return this.#updated(() =>
      this.#db
        .updateTable("sessions")
        .set({ revoked_at: this.#ts(now), revoked_reason: reason })
        .where("id", "=", id)
        .where("revoked_at", "is", null),
    );
  }

  revokeUserSessions(userId: string, now: Date, reason: RevocationReason, exceptSessionId?: string): Promise<string[]> {
    const revoke = (db: Kysely<Database> | Transaction<Database>) => {
      const open = db
        .updateTable("sessions")
        .set({ revoked_at: this.#ts(now), revoked_reason: reason })
        .where("user_id", "=", userId)
        .where("revoked_at", "is", null);
      return exceptSessionId === undefined ? open : open.where("id", "<>", exceptSessionId);
    };
    if (this.kind !== "mysql") {
      // One statement: the ids returned are exactly the sessions this call revoked.
      return this.#run(async () => (await revoke(this.#db).returning("id").execute()).map((row) => row.id));
    }
    // MySQL has no UPDATE … RETURNING: lock the rows, then revoke exactly those.
    return this.#run(() =>
      this.#transaction(async (trx) => {
        const open = await trx
          .selectFrom("sessions")
          .select("id")
          .where("user_id", "=", userId)
          .where("revoked_at", "is", null)
          .$if(exceptSessionId !== undefined, (query) => query.where("id", "<>", exceptSessionId!))
          .forUpdate()
          .execute();
        if (open.length === 0) return [];
        const ids = open.map((row) => row.id);
        await revoke(trx).where("id", "in", ids).execute();
        return ids;
      }),
    );
  }

  listRevokedSessions(since: Date): Promise<RevokedSession[]> {
    return this.#run(async () => {
      const rows = await this.#db
        .selectFrom("sessions")
        .select(["id", "revoked_at"])
        .where("revoked_at", ">=", this.#ts(since))
        .orderBy("revoked_at")
        .execute();
      const deleted = await this.#db
        .selectFrom("deleted_sessions")
        .select(["id", "revoked_at"])
        .where("revoked_at", ">=", this.#ts(since))
        .orderBy("revoked_at")
        .execute();
      return [...rows, ...deleted]
        .map((row) => ({ id: row.id, revokedAt: toDate(row.revoked_at!) }))
        .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime());
    });
  }

  // The refresh path runs on the driver, without query building (rotation-statements.ts).

  findRefreshToken(tokenHash: string): Promise<RefreshTokenLookup | null> {
    return this.#run(() => this.#rotation.findRefreshToken(tokenHash));
  }

  findSuccessor(parentId: string): Promise<RefreshTokenRecord | null> {
    return this.#run(() => this.#rotation.findSuccessor(parentId));
  }

  rotateRefreshToken(write: RotationWrite): Promise<boolean> {
    return this.#run(() => this.#rotation.rotateRefreshToken(write));
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.#run(async () => {
      const rows = await this.#db.selectFrom("signing_keys").selectAll().orderBy("created_at").orderBy("kid").execute();
      return rows.map((row) => ({
        kid: row.kid,
        alg: row.alg,
        publicKey: row.public_key,
        privateKeySealed: row.private_key_sealed,
        encryption: row.encryption as KeyEncryption,
        createdAt: toDate(row.created_at),
        retiredAt: toNullableDate(row.retired_at),
        current: row.slot === CURRENT_KEY_SLOT,
        state: stateOfSlot(row.slot),
        activatesAt: toDate(row.activates_at ?? row.created_at),
      }));
    });
  }

  async replaceCurrentSigningKey(key: NewSigningKey, expectedCurrentKid: string | null): Promise<boolean> {
    const now = this.#ts(key.createdAt);
    try {
      return await this.#run(() =>
        this.#transaction(async (trx) => {
          // The expected key leaves the slot first: a racer expecting it too then updates nothing.
          if (expectedCurrentKid !== null) {
            const retired = await trx
              .updateTable("signing_keys")
              .set({ retired_at: now, slot: null })
              .where("kid", "=", expectedCurrentKid)
              .where("slot", "=", CURRENT_KEY_SLOT)
              .executeTakeFirst();
            if (retired.numUpdatedRows === 0n) throw new LostElection();
          }
          // Keys stored without a slot (by earlier versions) retire too; a current one is left to the insert.
          await trx
            .updateTable("signing_keys")
            .set({ retired_at: now })
            .where("retired_at", "is", null)
            .where("slot", "is", null)
            .execute();
          // A key published to sign next shares the fate of the one replaced (an emergency may be its leak).
          await trx
            .updateTable("signing_keys")
            .set({ retired_at: now, slot: null })
            .where("slot", "=", NEXT_KEY_SLOT)
            .execute();
          // The single check-and-act when none was expected: the unique slot admits one insert.
          await trx
            .insertInto("signing_keys")
            .values({
              kid: key.kid,
              alg: key.alg,
              public_key: key.publicKey,
              private_key_sealed: key.privateKeySealed,
              encryption: key.encryption,
              created_at: now,
              retired_at: null,
              slot: CURRENT_KEY_SLOT,
              activates_at: now,
            })
            .execute();
          return true;
        }),
      );
    } catch (error) {
      if (error instanceof LostElection || isUniqueViolation(error)) return false;
      throw error;
    }
  }

  async retireSigningKey(kid: string, now: Date): Promise<void> {
    await this.#run(() =>
      this.#db
        .updateTable("signing_keys")
        .set({ retired_at: this.#ts(now), slot: null })
        .where("kid", "=", kid)
        .where("retired_at", "is", null)
        .execute(),
    );
  }

  async insertNextSigningKey(key: NewSigningKey): Promise<boolean> {
    try {
      // The single check-and-act: the unique slot admits one next key.
      await this.#run(() =>
        this.#db
          .insertInto("signing_keys")
          .values({
            kid: key.kid,
            alg: key.alg,
            public_key: key.publicKey,
            private_key_sealed: key.privateKeySealed,
            encryption: key.encryption,
            created_at: this.#ts(key.createdAt),
            retired_at: null,
            slot: NEXT_KEY_SLOT,
            activates_at: this.#ts(key.activatesAt),
          })
          .execute(),
      );
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  async promoteNextSigningKey(nextKid: string, expectedCurrentKid: string | null, now: Date): Promise<boolean> {
    try {
      return await this.#run(() =>
        this.#transaction(async (trx) => {
          // The current key leaves its slot first (the check-and-act): a racer expecting it too then
          // updates nothing, and the slot is free for the next key without a unique conflict.
          if (expectedCurrentKid !== null) {
            const retired = await trx
              .updateTable("signing_keys")
              .set({ retired_at: this.#ts(now), slot: null })
              .where("kid", "=", expectedCurrentKid)
              .where("slot", "=", CURRENT_KEY_SLOT)
              .executeTakeFirst();
            if (retired.numUpdatedRows === 0n) throw new LostElection();
          }
          const promoted = await trx
            .updateTable("signing_keys")
            .set({ slot: CURRENT_KEY_SLOT })
            .where("kid", "=", nextKid)
            .where("slot", "=", NEXT_KEY_SLOT)
            .executeTakeFirst();
          if (promoted.numUpdatedRows === 0n) throw new LostElection();
          return true;
        }),
      );
    } catch (error) {
      if (error instanceof LostElection || isUniqueViolation(error)) return false;
      throw error;
    }
  }

  async deleteRetiredSigningKeys(before: Date): Promise<number> {
    const result = await this.#run(() =>
      this.#db
        .deleteFrom("signing_keys")
        .where("slot", "is", null)
        .where("retired_at", "is not", null)
        .where("retired_at", "<", this.#ts(before))
        .executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }

  ensureSetting(name: string, value: string): Promise<string> {
    return this.#run(async () => {
      try {
        await this.#db.insertInto("settings").values({ name, value }).execute();
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
      }
      const row = await this.#db
        .selectFrom("settings")
        .select("value")
        .where("name", "=", name)
        .executeTakeFirstOrThrow();
      return row.value;
    });
  }

  findSetting(name: string): Promise<string | null> {
    return this.#run(async () => {
      const row = await this.#db.selectFrom("settings").select("value").where("name", "=", name).executeTakeFirst();
      return row?.value ?? null;
    });
  }

  #auditValues(event: AuditEventRecord) {
    return {
      id: event.id,
      type: event.type,
      user_id: event.userId,
      session_id: event.sessionId,
      ip: event.ip,
      user_agent: event.userAgent,
      details: event.details ? JSON.stringify(event.details) : null,
      created_at: this.#ts(event.createdAt),
    };
  }

  async insertAuditEvent(event: AuditEventRecord): Promise<void> {
    await this.insertAuditEvents([event]);
  }

  async insertAuditEvents(events: readonly AuditEventRecord[]): Promise<void> {
    await this.#run(async () => {
      for (let start = 0; start < events.length; start += AUDIT_INSERT_ROWS) {
        const rows = events.slice(start, start + AUDIT_INSERT_ROWS).map((event) => this.#auditValues(event));
        await this.#db.insertInto("audit_events").values(rows).execute();
      }
    });
  }

  listAuditEvents(
    filter: AuditEventFilter,
    after: AuditEventCursor | null,
    limit: number,
  ): Promise<AuditEventRecord[]> {
    return this.#run(async () => {
      let query = this.#db.selectFrom("audit_events").selectAll();
      if (filter.userId !== undefined) query = query.where("user_id", "=", filter.userId);
      if (filter.sessionId !== undefined) query = query.where("session_id", "=", filter.sessionId);
      if (filter.types !== undefined && filter.types.length > 0) query = query.where("type", "in", [...filter.types]);
      if (filter.since !== undefined) query = query.where("created_at", ">=", this.#ts(filter.since));
      if (filter.until !== undefined) query = query.where("created_at", "<", this.#ts(filter.until));
      if (after !== null) {
        // Keyset pagination on (created_at, id), both descending: a stable order that the
        // (…, created_at, id) indexes serve, whatever is inserted meanwhile.
        const at = this.#ts(after.createdAt);
        query = query.where((eb) =>
          eb.or([eb("created_at", "<", at), eb.and([eb("created_at", "=", at), eb("id", "<", after.id)])]),
        );
      }
      const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(limit).execute();
      return rows.map((row) => ({
        id: row.id,
        type: row.type,
        userId: row.user_id,
        sessionId: row.session_id,
        ip: row.ip,
        userAgent: row.user_agent,
        details: row.details === null ? null : (JSON.parse(row.details) as Record<string, unknown>),
        createdAt: toDate(row.created_at),
      }));
    });
  }

  deleteAuditEvents(before: Date, batchSize: number): Promise<number> {
    return this.#run(async () => {
      // Select a batch of ids, then delete by id: portable (no DELETE ... LIMIT) and short locks.
      const rows = await this.#db
        .selectFrom("audit_events")
        .select("id")
        .where("created_at", "<", this.#ts(before))
        .orderBy("created_at")
        .limit(batchSize)
        .execute();
      if (rows.length === 0) return 0;
      const ids = rows.map((row) => row.id);
      const deleted = await this.#db.deleteFrom("audit_events").where("id", "in", ids).executeTakeFirst();
      return Number(deleted.numDeletedRows);
    });
  }

  deleteExpired(before: Date, batchSize: number): Promise<PurgeResult> {
    return this.#run(async () => {
      // Select a batch of ids, then delete by id: portable (no DELETE ... LIMIT) and short locks.
      const tokenIds = await this.#db
        .selectFrom("refresh_tokens")
        .select("id")
        .where("expires_at", "<", this.#ts(before))
        .limit(batchSize)
        .execute();
      let refreshTokens = 0;
      if (tokenIds.length > 0) {
        // A successor points at its parent; unlink before the parent row goes.
        const ids = tokenIds.map((row) => row.id);
        await this.#db.updateTable("refresh_tokens").set({ parent_id: null }).where("parent_id", "in", ids).execute();
        const deleted = await this.#db.deleteFrom("refresh_tokens").where("id", "in", ids).executeTakeFirst();
        refreshTokens = Number(deleted.numDeletedRows);
      }
      const cutoff = this.#ts(before);
      const sessionIds = await this.#db
        .selectFrom("sessions")
        .select("id")
        .where((eb) =>
          eb.or([eb("expires_at", "<", cutoff), eb("idle_expires_at", "<", cutoff), eb("revoked_at", "<", cutoff)]),
        )
        .limit(batchSize)
        .execute();
      let sessions = 0;
      if (sessionIds.length > 0) {
        const ids = sessionIds.map((row) => row.id);
        const tokens = await this.#db.deleteFrom("refresh_tokens").where("session_id", "in", ids).executeTakeFirst();
        refreshTokens += Number(tokens.numDeletedRows);
        const deleted = await this.#db.deleteFrom("sessions").where("id", "in", ids).executeTakeFirst();
        sessions = Number(deleted.numDeletedRows);
      }
      const deletedIds = await this.#db
        .selectFrom("deleted_sessions")
        .select("id")
        .where("revoked_at", "<", cutoff)
        .limit(batchSize)
        .execute();
      if (deletedIds.length > 0) {
        const ids = deletedIds.map((row) => row.id);
        const deleted = await this.#db.deleteFrom("deleted_sessions").where("id", "in", ids).executeTakeFirst();
        sessions += Number(deleted.numDeletedRows);
      }
      return { refreshTokens, sessions };
    });
  }

  async setUserEmail(id: string, claim: EmailClaim | null): Promise<boolean> {
    const update = (db: Kysely<Database>) =>
      updatedAny(
        db
          .updateTable("users")
          .set((eb) =>
            claim
              ? {
                  // Setting the same unverified address again keeps the time it was first set, so its
                  // window still runs out. First: MySQL evaluates assignments left to right, so the
                  // columns compared must not have been assigned yet.
                  email_set_at: eb
                    .case()
                    .when(
                      eb.and([
                        eb("email_key", "=", claim.emailKey),
                        eb("email_verified_at", "is", null),
                        eb("email_set_at", "is not", null),
                      ]),
                    )
                    .then(eb.ref("email_set_at"))
                    .else(this.#ts(claim.setAt))
                    .end(),
                  email: claim.email,
                  email_key: claim.emailKey,
                  email_verified_at: null,
                }
              : { email: null, email_key: null, email_verified_at: null, email_set_at: null },
          )
          .where("id", "=", id),
      );
    try {
      const before = claim?.releaseUnverifiedBefore;
      if (!claim || !before) return await update(this.#db);
      return await this.#transaction(async (trx) => {
        await this.#releaseStaleEmail(trx, claim.emailKey, id, before, claim.setAt);
        // No such user: nothing was set, and nothing may be released for it either.
        if (!(await update(trx))) throw new UnknownUser();
        return true;
      });
    } catch (error) {
      if (isUniqueViolation(error) || error instanceof UnknownUser) return false;
      translateStoreError(error);
    }
  }

  findUserByEmailKey(emailKey: string): Promise<UserRecord | null> {
    return this.#run(async () => {
      const row = await this.#db.selectFrom("users").selectAll().where("email_key", "=", emailKey).executeTakeFirst();
      return row ? toUser(row) : null;
    });
  }

  markEmailVerified(id: string, emailKey: string, now: Date): Promise<boolean> {
    return this.#updated(() =>
      this.#db
        .updateTable("users")
        .set({ email_verified_at: this.#ts(now) })
        .where("id", "=", id)
        .where("email_key", "=", emailKey)
        .where("disabled_at", "is", null),
    );
  }

  createOneTimeToken(token: OneTimeTokenRecord): Promise<void> {
    return this.#run(async () => {
      await this.#db
        .insertInto("one_time_tokens")
        .values({
          id: token.id,
          user_id: token.userId,
          purpose: token.purpose,
          token_hash: token.tokenHash,
          bound_to: token.boundTo,
          created_at: this.#ts(token.createdAt),
          expires_at: this.#ts(token.expiresAt),
          used_at: token.usedAt ? this.#ts(token.usedAt) : null,
        })
        .execute();
    });
  }

  voidOneTimeTokens(userId: string, purpose: string, now: Date): Promise<number> {
    return this.#run(async () => {
      const result = await this.#db
        .updateTable("one_time_tokens")
        .set({ used_at: this.#ts(now) })
        .where("user_id", "=", userId)
        .where("purpose", "=", purpose)
        .where("used_at", "is", null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  deleteSpentOneTimeTokens(before: Date, batchSize: number): Promise<number> {
    return this.#run(async () => {
      const cutoff = this.#ts(before);
      // Select a batch of ids, then delete by id: portable (no DELETE ... LIMIT) and short locks.
      const rows = await this.#db
        .selectFrom("one_time_tokens as t")
        .select("t.id")
        .where((eb) =>
          eb.or([
            eb("t.expires_at", "<", cutoff),
            eb("t.used_at", "<", cutoff),
            eb.not(eb.exists(eb.selectFrom("users as u").select("u.id").whereRef("u.id", "=", "t.user_id"))),
          ]),
        )
        .limit(batchSize)
        .execute();
      if (rows.length === 0) return 0;
      const ids = rows.map((row) => row.id);
      const deleted = await this.#db.deleteFrom("one_time_tokens").where("id", "in", ids).executeTakeFirst();
      return Number(deleted.numDeletedRows);
    });
  }

  consumeOneTimeToken(
    tokenHash: string,
    purpose: string,
    now: Date,
    options: { readonly enabledUsersOnly?: boolean } = {},
  ): Promise<OneTimeTokenRecord | null> {
    return this.#run(async () => {
      // The single check-and-act: only the call whose update lands owns the token; token_hash is unique.
      let update = this.#db
        .updateTable("one_time_tokens")
        .set({ used_at: this.#ts(now) })
        .where("token_hash", "=", tokenHash)
        .where("purpose", "=", purpose)
        .where("used_at", "is", null)
        .where("expires_at", ">", this.#ts(now));
      if (options.enabledUsersOnly)
        update = update.where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom("users")
                .select("users.id")
                .whereRef("users.id", "=", "one_time_tokens.user_id")
                .where("users.disabled_at", "is not", null),
            ),
          ),
        );
      const used = await update.executeTakeFirst();
      if (used.numUpdatedRows === 0n) return null;
      const row = await this.#db
        .selectFrom("one_time_tokens")
        .selectAll()
        .where("token_hash", "=", tokenHash)
        .executeTakeFirst();
      return row ? toOneTimeToken(row) : null;
    });
  }

  findOneTimeToken(tokenHash: string, purpose: string, now: Date): Promise<OneTimeTokenRecord | null> {
    return this.#run(async () => {
      const row = await this.#db
        .selectFrom("one_time_tokens")
        .selectAll()
        .where("token_hash", "=", tokenHash)
        .where("purpose", "=", purpose)
        .where("used_at", "is", null)
        .where("expires_at", ">", this.#ts(now))
        .executeTakeFirst();
      return row ? toOneTimeToken(row) : null;
    });
  }

  reserveOneTimeTokenAttempt(
    tokenHash: string,
    purpose: string,
    maxAttempts: number,
    now: Date,
  ): Promise<OneTimeTokenRecord | null> {
    return this.#run(async () => {
      // The single check-and-act: an answer is checked only after its attempt is counted.
      const reserved = await this.#db
        .updateTable("one_time_tokens")
        .set((eb) => ({ attempts: eb("attempts", "+", 1) }))
        .where("token_hash", "=", tokenHash)
        .where("purpose", "=", purpose)
        .where("used_at", "is", null)
        .where("expires_at", ">", this.#ts(now))
        .where("attempts", "<", maxAttempts)
        .executeTakeFirst();
      if (reserved.numUpdatedRows === 0n) return null;
      const row = await this.#db
        .selectFrom("one_time_tokens")
        .selectAll()
        .where("token_hash", "=", tokenHash)
        .executeTakeFirst();
      return row ? toOneTimeToken(row) : null;
    });
  }

  findTotp(userId: string): Promise<TotpRecord | null> {
    return this.#run(async () => {
      const row = await this.#db
        .selectFrom("totp_credentials")
        .selectAll()
        .where("user_id", "=", userId)
        .executeTakeFirst();
      if (!row) return null;
      return {
        userId: row.user_id,
        secretSealed: row.secret_sealed,
        createdAt: toDate(row.created_at),
        confirmedAt: toNullableDate(row.confirmed_at),
        lastStep: row.last_step === null ? null : Number(row.last_step),
        failures: Number(row.failures),
      };
    });
  }

  async savePendingTotp(userId: string, secretSealed: string, now: Date): Promise<boolean> {
    const replacePending = () =>
      updatedAny(
        this.#db
          .updateTable("totp_credentials")
          .set({ secret_sealed: secretSealed, created_at: this.#ts(now), last_step: null })
          .where("user_id", "=", userId)
          .where("confirmed_at", "is", null),
      );
    try {
      if (await replacePending()) return true;
      await this.#db
        .insertInto("totp_credentials")
        .values({ user_id: userId, secret_sealed: secretSealed, created_at: this.#ts(now), confirmed_at: null })
        .execute();
      return true;
    } catch (error) {
      // A confirmed credential, or a racing enrolment that inserted first: only a pending one is replaced.
      if (isUniqueViolation(error)) return this.#run(replacePending);
      translateStoreError(error);
    }
  }

  confirmTotp(
    userId: string,
    secretSealed: string,
    step: number,
    now: Date,
    recoveryCodes: readonly RecoveryCodeRecord[],
  ): Promise<boolean> {
    return this.#run(() =>
      this.#transaction(async (trx) => {
        // The check-and-act: only the pending credential whose code was checked is confirmed.
        const confirmed = await trx
          .updateTable("totp_credentials")
          .set({ confirmed_at: this.#ts(now), last_step: step })
          .where("user_id", "=", userId)
          .where("secret_sealed", "=", secretSealed)
          .where("confirmed_at", "is", null)
          .executeTakeFirst();
        if (confirmed.numUpdatedRows === 0n) return false;
        await trx.deleteFrom("recovery_codes").where("user_id", "=", userId).execute();
        if (recoveryCodes.length > 0) {
          await trx
            .insertInto("recovery_codes")
            .values(
              recoveryCodes.map((code) => ({
                id: code.id,
                user_id: code.userId,
                code_hash: code.codeHash,
                created_at: this.#ts(code.createdAt),
                used_at: code.usedAt ? this.#ts(code.usedAt) : null,
              })),
            )
            .execute();
        }
        return true;
      }),
    );
  }

  acceptTotpStep(userId: string, step: number): Promise<boolean> {
    // The single check-and-act: a step at or before the last accepted one never passes again.
    return this.#updated(() =>
      this.#db
        .updateTable("totp_credentials")
        .set({ last_step: step })
        .where("user_id", "=", userId)
        .where("confirmed_at", "is not", null)
        .where((eb) => eb.or([eb("last_step", "is", null), eb("last_step", "<", step)])),
    );
  }

  findTotpUserIds(userIds: readonly string[]): Promise<string[]> {
    return this.#run(async () => {
      if (userIds.length === 0) return [];
      const rows = await this.#db
        .selectFrom("totp_credentials")
        .select("user_id")
        .where("user_id", "in", [...userIds])
        .where("confirmed_at", "is not", null)
        .execute();
      return rows.map((row) => row.user_id);
    });
  }

  deleteTotp(userId: string): Promise<boolean> {
    return this.#run(() =>
      this.#transaction(async (trx) => {
        await trx.deleteFrom("recovery_codes").where("user_id", "=", userId).execute();
        const deleted = await trx.deleteFrom("totp_credentials").where("user_id", "=", userId).executeTakeFirst();
        return deleted.numDeletedRows > 0n;
      }),
    );
  }

  reserveTotpAttempt(userId: string, maxFailures: number): Promise<number | null> {
    return this.#run(() =>
      this.#transaction(async (trx) => {
        // The check-and-act: the count only grows through this update, so racing answers cannot pass the cap.
        const reserved = await trx
          .updateTable("totp_credentials")
          .set((eb) => ({ failures: eb("failures", "+", 1) }))
          .where("user_id", "=", userId)
          .where("confirmed_at", "is not", null)
          .where("failures", "<", maxFailures)
          .executeTakeFirst();
        if (reserved.numUpdatedRows === 0n) return null;
        const row = await trx
          .selectFrom("totp_credentials")
          .select("failures")
          .where("user_id", "=", userId)
          .executeTakeFirst();
        return row ? Number(row.failures) : null;
      }),
    );
  }

  clearTotpFailures(userId: string): Promise<void> {
    return this.#run(async () => {
      await this.#db.updateTable("totp_credentials").set({ failures: 0 }).where("user_id", "=", userId).execute();
    });
  }

  useRecoveryCode(userId: string, codeHash: string, now: Date): Promise<boolean> {
    return this.#updated(() =>
      this.#db
        .updateTable("recovery_codes")
        .set({ used_at: this.#ts(now) })
        .where("user_id", "=", userId)
        .where("code_hash", "=", codeHash)
        .where("used_at", "is", null),
    );
  }

  countUnusedRecoveryCodes(userId: string): Promise<number> {
    return this.#run(async () => {
      const row = await this.#db
        .selectFrom("recovery_codes")
        .select((eb) => eb.fn.countAll<number | string | bigint>().as("count"))
        .where("user_id", "=", userId)
        .where("used_at", "is", null)
        .executeTakeFirstOrThrow();
      return Number(row.count);
    });
  }
}
