import { type Kysely, type Migration, type MigrationProvider, sql } from "kysely";
import { LIMITS, type StoreKind } from "./store.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on today's schema types
type AnyDb = Kysely<any>;

function timestampType(kind: StoreKind) {
  switch (kind) {
    case "postgres":
      return sql`timestamptz`;
    case "mysql":
      return sql`datetime(3)`;
    case "sqlite":
      return sql`text`;
  }
}

function initialSchema(kind: StoreKind): Migration {
  const ts = timestampType(kind);
  const id = "varchar(36)";
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable("users")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("username", `varchar(${LIMITS.username})`, (c) => c.notNull())
        .addColumn("username_key", `varchar(${LIMITS.username})`, (c) => c.notNull().unique())
        .addColumn("password_hash", "varchar(255)", (c) => c.notNull())
        .addColumn("roles", "text", (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("sessions")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("user_id", id, (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("last_used_at", ts, (c) => c.notNull())
        .addColumn("expires_at", ts, (c) => c.notNull())
        .addColumn("idle_expires_at", ts, (c) => c.notNull())
        .addColumn("revoked_at", ts)
        .addColumn("revoked_reason", `varchar(${LIMITS.reason})`)
        .addColumn("user_agent", `varchar(${LIMITS.userAgent})`)
        .addColumn("ip", `varchar(${LIMITS.ip})`)
        .execute();
      await db.schema.createIndex("sessions_user_id_idx").on("sessions").column("user_id").execute();
      await db.schema.createIndex("sessions_idle_expires_at_idx").on("sessions").column("idle_expires_at").execute();
      await db.schema.createIndex("sessions_expires_at_idx").on("sessions").column("expires_at").execute();
      await db.schema.createIndex("sessions_revoked_at_idx").on("sessions").column("revoked_at").execute();
      await db.schema
        .createTable("refresh_tokens")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("session_id", id, (c) => c.notNull().references("sessions.id").onDelete("cascade"))
        .addColumn("token_hash", "varchar(64)", (c) => c.notNull().unique())
        // Unique: a token has at most one successor, whatever races happen above.
        .addColumn("parent_id", id, (c) => c.unique())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("expires_at", ts, (c) => c.notNull())
        .addColumn("used_at", ts)
        .execute();
      await db.schema.createIndex("refresh_tokens_session_id_idx").on("refresh_tokens").column("session_id").execute();
      await db.schema.createIndex("refresh_tokens_expires_at_idx").on("refresh_tokens").column("expires_at").execute();
      await db.schema
        .createTable("signing_keys")
        .addColumn("kid", "varchar(64)", (c) => c.primaryKey())
        .addColumn("alg", "varchar(16)", (c) => c.notNull())
        .addColumn("public_key", "text", (c) => c.notNull())
        .addColumn("private_key_sealed", "text", (c) => c.notNull())
        .addColumn("encryption", "varchar(16)", (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("retired_at", ts)
        .execute();
      await db.schema
        .createTable("settings")
        .addColumn("name", "varchar(64)", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("audit_events")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("type", "varchar(64)", (c) => c.notNull())
        .addColumn("user_id", id)
        .addColumn("session_id", id)
        .addColumn("ip", `varchar(${LIMITS.ip})`)
        .addColumn("user_agent", `varchar(${LIMITS.userAgent})`)
        .addColumn("details", "text")
        .addColumn("created_at", ts, (c) => c.notNull())
        .execute();
      await db.schema.createIndex("audit_events_user_id_idx").on("audit_events").column("user_id").execute();
      await db.schema.createIndex("audit_events_created_at_idx").on("audit_events").column("created_at").execute();
    },
  };
}

/**
 * Username keys compare byte for byte. MySQL/MariaDB gave `username_key` the database's default
 * collation (`utf8mb4_general_ci`, case- and accent-insensitive), so `bob` and `böb`, or `οδος`
 * and `οδοσ`, were one key there and two elsewhere; the service alone decides what is one name.
 * PostgreSQL and SQLite already compare exactly.
 */
function exactUsernameKeys(kind: StoreKind): Migration {
  return {
    async up(db: AnyDb) {
      if (kind !== "mysql") return;
      await db.schema
        .alterTable("users")
        .modifyColumn(
          "username_key",
          sql`varchar(${sql.lit(LIMITS.username)}) character set utf8mb4 collate utf8mb4_bin`,
          (c) => c.notNull(),
        )
        .execute();
    },
  };
}

// At most one current signing key: instances starting together elect it by inserting into this
// unique column. Unique indexes admit many NULLs on all three databases (retired keys hold NULL).
const currentSigningKey: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable("signing_keys").addColumn("slot", "varchar(16)").execute();
    await db.schema.createIndex("signing_keys_slot_idx").on("signing_keys").column("slot").unique().execute();
  },
};

/**
 * Operators disable and delete users. `users.disabled_at` marks a disabled account (null: enabled).
 * A deleted user's sessions go with their personal data, but resource servers polling the
 * revocation feed must still hear that those sessions ended: `deleted_sessions` keeps only the
 * session id and when it ended, until `deleteExpired` removes it. `audit_events` has no foreign
 * key to `users`, so a user's events outlive the user (with `ip` and `user_agent` scrubbed).
 */
function userLifecycle(kind: StoreKind): Migration {
  const ts = timestampType(kind);
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable("users").addColumn("disabled_at", ts).execute();
      await db.schema
        .createTable("deleted_sessions")
        .addColumn("id", "varchar(36)", (c) => c.primaryKey())
        .addColumn("revoked_at", ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("deleted_sessions_revoked_at_idx")
        .on("deleted_sessions")
        .column("revoked_at")
        .execute();
    },
  };
}

/**
 * Audit listing filters by user, by session or by time only, newest first with a (created_at, id)
 * cursor: one composite index per path. They replace the single-column ones, so each refresh's
 * audit row updates three indexes, no more.
 */
function auditQueries(kind: StoreKind): Migration {
  return {
    async up(db: AnyDb) {
      const drop = (name: string) =>
        kind === "mysql" ? db.schema.dropIndex(name).on("audit_events") : db.schema.dropIndex(name);
      await db.schema
        .createIndex("audit_events_user_time_idx")
        .on("audit_events")
        .columns(["user_id", "created_at", "id"])
        .execute();
      await db.schema
        .createIndex("audit_events_session_time_idx")
        .on("audit_events")
        .columns(["session_id", "created_at", "id"])
        .execute();
      await db.schema.createIndex("audit_events_time_idx").on("audit_events").columns(["created_at", "id"]).execute();
      await drop("audit_events_user_id_idx").execute();
      await drop("audit_events_created_at_idx").execute();
    },
  };
}

// The signing-key schedule: a key published ahead of use holds the unique slot "next" (so racing
// instances create one), and `activates_at` says when it signs (for the current and retired keys:
// when they began to). Keys stored before hold NULL there, read as their `created_at`.
function keySchedule(kind: StoreKind): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable("signing_keys").addColumn("activates_at", timestampType(kind)).execute();
    },
  };
}

// The user's own account: an optional email address (unique by its casefolded key, so NULLs
// never collide) and when it was verified, and single-use tokens sent by mail, stored as their
// SHA-256 only. `bound_to` names the state a token was issued for (a fingerprint of the password
// hash, the address): once that changes the token is void.
function accounts(kind: StoreKind): Migration {
  const ts = timestampType(kind);
  const id = "varchar(36)";
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable("users").addColumn("email", `varchar(${LIMITS.email})`).execute();
      await db.schema.alterTable("users").addColumn("email_key", `varchar(${LIMITS.email})`).execute();
      await db.schema.alterTable("users").addColumn("email_verified_at", ts).execute();
      await db.schema.createIndex("users_email_key_idx").unique().on("users").column("email_key").execute();
      await db.schema
        .createTable("one_time_tokens")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("user_id", id, (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("purpose", `varchar(${LIMITS.reason})`, (c) => c.notNull())
        .addColumn("token_hash", "varchar(64)", (c) => c.notNull().unique())
        .addColumn("bound_to", "varchar(64)", (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("expires_at", ts, (c) => c.notNull())
        .addColumn("used_at", ts)
        .execute();
      await db.schema.createIndex("one_time_tokens_user_id_idx").on("one_time_tokens").column("user_id").execute();
      await db.schema
        .createIndex("one_time_tokens_expires_at_idx")
        .on("one_time_tokens")
        .column("expires_at")
        .execute();
    },
  };
}

// A second factor: each user's TOTP secret (sealed by the service; pending until confirmed) with
// the last time step a code was accepted for, so no code is accepted twice, and the count of wrong
// answers in a row that locks the second step; single-use recovery codes by their keyed digest,
// unique per user; the methods each session was opened with (sessions opened before were
// password logins); and a count of wrong answers on one-time tokens, which void an MFA login's
// token at a limit.
function totp(kind: StoreKind): Migration {
  const ts = timestampType(kind);
  const id = "varchar(36)";
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable("totp_credentials")
        .addColumn("user_id", id, (c) => c.primaryKey().references("users.id").onDelete("cascade"))
        .addColumn("secret_sealed", "varchar(255)", (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("confirmed_at", ts)
        .addColumn("last_step", "bigint")
        .addColumn("failures", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable("recovery_codes")
        .addColumn("id", id, (c) => c.primaryKey())
        .addColumn("user_id", id, (c) => c.notNull().references("users.id").onDelete("cascade"))
        .addColumn("code_hash", "varchar(64)", (c) => c.notNull())
        .addColumn("created_at", ts, (c) => c.notNull())
        .addColumn("used_at", ts)
        .execute();
      await db.schema
        .createIndex("recovery_codes_user_code_idx")
        .on("recovery_codes")
        .columns(["user_id", "code_hash"])
        .unique()
        .execute();
      await db.schema
        .alterTable("sessions")
        .addColumn("amr", `varchar(${LIMITS.amr})`, (c) => c.notNull().defaultTo("pwd"))
        .execute();
      await db.schema
        .alterTable("one_time_tokens")
        .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
    },
  };
}

// An unverified address gives way to a newcomer once its verification window has passed, which
// needs the moment it was set. Addresses stored before are counted from now.
function emailClaims(kind: StoreKind): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable("users").addColumn("email_set_at", timestampType(kind)).execute();
      const now = new Date();
      await db
        .updateTable("users")
        .set({ email_set_at: kind === "sqlite" ? now.toISOString() : now })
        .where("email_key", "is not", null)
        .execute();
    },
  };
}

/** Tessera's migrations, in order, for the given database. */
export function migrationProvider(kind: StoreKind): MigrationProvider {
  return {
    getMigrations: () =>
      Promise.resolve({
        "0001_initial": initialSchema(kind),
        "0002_exact_username_keys": exactUsernameKeys(kind),
        "0003_current_signing_key": currentSigningKey,
        "0004_user_lifecycle": userLifecycle(kind),
        "0005_audit_queries": auditQueries(kind),
        "0006_key_schedule": keySchedule(kind),
        "0007_accounts": accounts(kind),
        "0008_totp": totp(kind),
        "0009_email_claims": emailClaims(kind),
      }),
  };
}
