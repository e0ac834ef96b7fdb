import type { ColumnType } from "kysely";

/** Timestamps: ISO-8601 UTC text on SQLite, `timestamptz` on PostgreSQL, `DATETIME(3)` in UTC on MySQL. */
export type TimestampColumn = ColumnType<Date | string, Date | string, Date | string>;

/** Row of `users`. */
export interface UsersTable {
  id: string;
  username: string;
  username_key: string;
  password_hash: string;
  /** JSON array of role names. */
  roles: string;
  created_at: TimestampColumn;
  /** When an operator disabled the account; null while it is enabled. */
  disabled_at: TimestampColumn | null;
  email: string | null;
  /** Unique; null when the user has no address. */
  email_key: string | null;
  email_verified_at: TimestampColumn | null;
  /** When the user first set the current address (setting it again keeps it); null when there is none. */
  email_set_at: TimestampColumn | null;
}

/** Row of `one_time_tokens`: a single-use token sent by mail, by its SHA-256. */
export interface OneTimeTokensTable {
  id: string;
  user_id: string;
  purpose: string;
  token_hash: string;
  bound_to: string;
  created_at: TimestampColumn;
  expires_at: TimestampColumn;
  used_at: TimestampColumn | null;
  /** Wrong answers given with the token (an MFA login's codes); the token is used up at the limit. */
  attempts: ColumnType<number, number | undefined, number>;
}

/** Row of `totp_credentials`: a user's TOTP secret, sealed; pending until `confirmed_at` is set. */
export interface TotpCredentialsTable {
  user_id: string;
  secret_sealed: string;
  created_at: TimestampColumn;
  confirmed_at: TimestampColumn | null;
  /** The latest time step a code was accepted for (RFC 6238 T); null before any. */
  last_step: ColumnType<number | string | null, number | null, number | null>;
  /** Second-factor answers in a row not followed by a right one; locked at a limit. */
  failures: ColumnType<number, number | undefined, number>;
}

/** Row of `recovery_codes`: one single-use recovery code, by its keyed digest (HMAC-SHA256). */
export interface RecoveryCodesTable {
  id: string;
  user_id: string;
  code_hash: string;
  created_at: TimestampColumn;
  used_at: TimestampColumn | null;
}

/** Row of `sessions`: one login. */
export interface SessionsTable {
  id: string;
  user_id: string;
  created_at: TimestampColumn;
  last_used_at: TimestampColumn;
  expires_at: TimestampColumn;
  idle_expires_at: TimestampColumn;
  revoked_at: TimestampColumn | null;
  revoked_reason: string | null;
  user_agent: string | null;
  ip: string | null;
  /** RFC 8176 methods the session was opened with, space-separated (`pwd`, `pwd otp`). */
  amr: ColumnType<string, string | undefined, string>;
}

/** Row of `refresh_tokens`: only the SHA-256 of each token. */
export interface RefreshTokensTable {
  id: string;
  session_id: string;
  token_hash: string;
  parent_id: string | null;
  created_at: TimestampColumn;
  expires_at: TimestampColumn;
  used_at: TimestampColumn | null;
}

/** Row of `signing_keys`: public JWK JSON and the sealed private key. */
export interface SigningKeysTable {
  kid: string;
  alg: string;
  public_key: string;
  private_key_sealed: string;
  encryption: string;
  created_at: TimestampColumn;
  retired_at: TimestampColumn | null;
  /** {@link CURRENT_KEY_SLOT} for the one key new tokens are signed with (a unique column), else null. */
  slot: string | null;
  /** When the key signs (`next`) or began to sign; null for keys stored before the schedule. */
  activates_at: TimestampColumn | null;
}

/** The `signing_keys.slot` value of the current key; retired and superseded keys hold null. */
export const CURRENT_KEY_SLOT = "current";

/** The `signing_keys.slot` value of the key published to sign next. */
export const NEXT_KEY_SLOT = "next";

/** Row of `settings`: server-wide values such as the development secret. */
export interface SettingsTable {
  name: string;
  value: string;
}

/** Row of `deleted_sessions`: a deleted user's session, kept (id only) for the revocation feed. */
export interface DeletedSessionsTable {
  id: string;
  revoked_at: TimestampColumn;
}

/** Row of `audit_events`. */
export interface AuditEventsTable {
  id: string;
  type: string;
  user_id: string | null;
  session_id: string | null;
  ip: string | null;
  user_agent: string | null;
  /** JSON object, or null. */
  details: string | null;
  created_at: TimestampColumn;
}

/** Tessera's tables as Kysely sees them. */
export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  signing_keys: SigningKeysTable;
  settings: SettingsTable;
  audit_events: AuditEventsTable;
  deleted_sessions: DeletedSessionsTable;
  one_time_tokens: OneTimeTokensTable;
  totp_credentials: TotpCredentialsTable;
  recovery_codes: RecoveryCodesTable;
}
