import { TesseraError } from "../core/errors.js";

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "ER_LOCK_WAIT_TIMEOUT",
  // mysql2 gave up waiting for an answer; MySQL's max_execution_time.
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_QUERY_TIMEOUT",
  // PostgreSQL: too_many_connections, lock_not_available, query_canceled (statement_timeout),
  // idle_in_transaction_session_timeout.
  "53300",
  "55P03",
  "57014",
  "25P03",
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_CANTOPEN",
  "SQLITE_IOERR",
  "SQLITE_FULL",
  "SQLITE_READONLY",
]);

const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /pool is closed|pool is ending|cannot use a pool after calling end/i,
  /client has encountered a connection error/i,
  /connection is in closed state|can't add new command when connection is in closed state/i,
  /the database connection is not open/i,
  /client was closed and is not queryable/i,
  // pg's query_timeout; MariaDB's max_statement_time (error 1969, which has no code name).
  /^query read timeout$/i,
  /max_statement_time exceeded/i,
];

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** True when `error` says a unique constraint was violated, on any of the three databases. */
export function isUniqueViolation(error: unknown): boolean {
  const code = errorCode(error);
  return (
    code === "23505" ||
    code === "ER_DUP_ENTRY" ||
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}

/**
 * True when the database aborted a transaction to break a deadlock or a serialization
 * conflict: MySQL/MariaDB `ER_LOCK_DEADLOCK`, PostgreSQL 40001/40P01, SQLite's stale WAL
 * snapshot. The transaction was rolled back whole and may simply be run again.
 */
export function isTransientConflict(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ER_LOCK_DEADLOCK" || code === "40001" || code === "40P01" || code === "SQLITE_BUSY_SNAPSHOT";
}

/**
 * True when `error` means the database cannot serve now: unreachable, shutting down, out of
 * connections, or a statement or lock wait past its deadline.
 */
export function isConnectionError(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined) {
    // PostgreSQL: class 08 is connection exceptions, 57P0x is operator intervention/shutdown.
    if (CONNECTION_CODES.has(code) || code.startsWith("08") || /^57P0[1-3]$/.test(code)) return true;
    if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_BUSY")) return true;
  }
  if ((error as { fatal?: unknown } | null)?.fatal === true) return true;
  const message = error instanceof Error ? error.message : "";
  if (CONNECTION_MESSAGES.some((pattern) => pattern.test(message))) return true;
  const errors = (error as { errors?: unknown } | null)?.errors;
  return Array.isArray(errors) && errors.some(isConnectionError);
}

/**
 * Rethrows connection failures, and conflicts still unresolved after the store's retries, as
 * `store_unavailable` (503: the client may retry); anything else unchanged.
 */
export function translateStoreError(error: unknown): never {
  if (error instanceof TesseraError) throw error;
  if (isConnectionError(error) || isTransientConflict(error)) {
    throw new TesseraError("store_unavailable", "the database is unavailable", { cause: error });
  }
  throw error;
}
