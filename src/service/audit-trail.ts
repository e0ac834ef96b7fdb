import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { RevocationReason } from "../core/revocation.js";
import type { AuditEventCursor, AuditEventFilter, AuditEventRecord, Store } from "../store/store.js";
import { type RequestContext, storedContext } from "./request-context.js";
import { findUserByName } from "./username-keys.js";

/** What the audit trail records. */
export const AUDIT_EVENT_TYPES = [
  "user_registered",
  "login_succeeded",
  "login_failed",
  "token_refreshed",
  "refresh_grace_repeat",
  "refresh_token_reused",
  "logout",
  "session_revoked",
  "sessions_revoked",
  "user_disabled",
  "user_enabled",
  "user_deleted",
  "roles_changed",
  "password_changed",
  "key_created",
  "key_rotated",
  "key_retired",
  "email_changed",
  "email_verified",
  "password_reset",
  "mfa_enabled",
  "mfa_disabled",
  "mfa_login_failed",
  "mfa_locked",
  "recovery_code_used",
] as const;

/** One of {@link AUDIT_EVENT_TYPES}. */
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/**
 * Why a login failed, kept in `login_failed` events' `details.reason` only: the client always
 * gets the same `invalid_credentials` answer, so it cannot tell which names exist.
 */
export const LOGIN_FAILURE_REASONS = ["unknown_user", "wrong_password", "user_disabled"] as const;

/** One of {@link LOGIN_FAILURE_REASONS}. */
export type LoginFailureReason = (typeof LOGIN_FAILURE_REASONS)[number];

/**
 * Why the second step of an MFA login failed, kept in `mfa_login_failed` events' `details.reason`
 * only: the client always gets the same `invalid_grant` answer.
 */
export const MFA_FAILURE_REASONS = [
  "unknown_mfa_token",
  "wrong_code",
  "replayed_code",
  "wrong_recovery_code",
  "totp_off",
  "user_disabled",
  "stale_mfa_token",
  "mfa_locked",
] as const;

/** One of {@link MFA_FAILURE_REASONS}. */
export type MfaFailureReason = (typeof MFA_FAILURE_REASONS)[number];

/** Whom an audit event concerns. */
export interface AuditSubject {
  readonly userId?: string | null;
  readonly sessionId?: string | null;
}

/**
 * Details kept with an event; never a token, password or secret. `reason`: why a session ended or
 * a login failed; `by`: who revoked (a user id, an admin's user id, or `operator` for the CLI).
 */
export type AuditDetails = Readonly<Record<string, unknown>> & {
  readonly reason?: RevocationReason | LoginFailureReason | MfaFailureReason;
  readonly by?: string;
};

/** How events are buffered before they are written. */
export interface AuditBufferOptions {
  /** Longest an event waits in memory before its batch is written, in ms. */
  readonly flushIntervalMs: number;
  /** Events per multi-row insert; a full batch is written at once. */
  readonly batchSize: number;
  /** Events held at most (waiting or being written); beyond it new events are dropped and counted. */
  readonly capacity: number;
}

/** The buffer's defaults: 50 ms, batches of 100, at most 10 000 events in memory. */
export const AUDIT_BUFFER: Readonly<AuditBufferOptions> = Object.freeze({
  flushIntervalMs: 50,
  batchSize: 100,
  capacity: 10_000,
});

/** Why events were lost: the store refused their batch, or the buffer was full. */
export const AUDIT_LOSS_REASONS = ["store_error", "buffer_full"] as const;

/** One of {@link AUDIT_LOSS_REASONS}. */
export type AuditLossReason = (typeof AUDIT_LOSS_REASONS)[number];

/** Page sizes of {@link AuditTrail.list}: the default and the largest accepted. */
export const AUDIT_PAGE_LIMIT = Object.freeze({ default: 50, max: 500 });

/** Longest cursor, user or session value a query accepts, in characters. */
export const AUDIT_QUERY_FIELD_MAX = 128;

/** The fields of an {@link AuditQuery}: the API's query parameters and the CLI's flags. */
export const AUDIT_QUERY_FIELDS = ["user", "session", "type", "since", "until", "limit", "cursor"] as const;

/** A query of the audit trail as text, as `GET /admin/audit` and `tessera audit list` take it. */
export interface AuditQuery extends Partial<Record<(typeof AUDIT_QUERY_FIELDS)[number], string>> {
  /** A user id or username; the id of a deleted user still finds its events. */
  readonly user?: string;
  readonly session?: string;
  /** Comma-separated {@link AUDIT_EVENT_TYPES}. */
  readonly type?: string;
  /** Inclusive: `2026-01-01` (UTC midnight) or an ISO 8601 date-time with `Z` or an offset. */
  readonly since?: string;
  /** Exclusive, in the same forms as `since`. */
  readonly until?: string;
  /** Events per page, 1 to {@link AUDIT_PAGE_LIMIT}.max; default {@link AUDIT_PAGE_LIMIT}.default. */
  readonly limit?: string;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
}

/** An audit event as an operator sees it: the stored event, as it was written. */
export type AuditEventView = AuditEventRecord;

/** One page of audit events, newest first; `nextCursor` is `null` on the last page. */
export interface AuditPage {
  readonly events: readonly AuditEventView[];
  readonly nextCursor: string | null;
}

const QUEUED: Promise<void> = Promise.resolve();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
const CURSOR = /^(\d{1,15}):([A-Za-z0-9-]{1,64})$/;
/** Pauses before each retry of a batch the store refused; then it is counted as lost. */
const AUDIT_RETRY_PAUSES_MS = [200, 1_000] as const;
/** Failed writes are logged at most this often, with the count lost meanwhile. */
const LOSS_LOG_INTERVAL_MS = 10_000;

/**
 * Records audit events without slowing the requests that cause them: {@link record} queues an
 * event in memory and returns at once; batches are written by multi-row inserts every
 * `flushIntervalMs` or as soon as `batchSize` events wait. A refused batch is tried twice more
 * (after 200 ms and 1 s). A failed write never fails a request: it is logged (without the
 * events' content) and counted through {@link onEventsLost}. Events
 * still in memory when the process dies (`kill -9`) are lost; {@link close} writes them.
 */
export class AuditTrail {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #buffer: Readonly<AuditBufferOptions>;
  readonly #listeners = new Set<(count: number, reason: AuditLossReason) => void>();
  #queue: AuditEventRecord[] = [];
  #inFlight = 0;
  #writing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #unloggedLosses = 0;
  #lastLossLogAt = -Infinity;

  constructor(store: Store, clock: Clock, logger: Logger, buffer: Readonly<AuditBufferOptions> = AUDIT_BUFFER) {
    this.#store = store;
    this.#clock = clock;
    this.#logger = logger;
    this.#buffer = Object.freeze({ ...buffer });
  }

  /**
   * Queues one event, stamped now with the request's origin. Never throws and never waits for the
   * database: the promise is settled already (it exists so callers may `await` it alike); use
   * {@link flush} to wait until the event is written.
   */
  record(
    type: AuditEventType,
    context: RequestContext,
    subject: AuditSubject,
    details: AuditDetails | null = null,
  ): Promise<void> {
    if (this.#queue.length + this.#inFlight >= this.#buffer.capacity) {
      this.#lost(1, "buffer_full");
      return QUEUED;
    }
    const { ip, userAgent } = storedContext(context);
    this.#queue.push({
      id: randomUUID(),
      type,
      userId: subject.userId ?? null,
      sessionId: subject.sessionId ?? null,
      ip,
      userAgent,
      details,
      createdAt: this.#clock.now(),
    });
    if (this.#queue.length >= this.#buffer.batchSize) this.#startWriting();
    else if (this.#timer === null && this.#writing === null) {
      this.#timer = setTimeout(() => this.#startWriting(), this.#buffer.flushIntervalMs);
      this.#timer.unref();
    }
    return QUEUED;
  }

  /** Writes every queued event; resolves when they are written (or counted as lost). Never rejects. */
  async flush(): Promise<void> {
    this.#startWriting();
    while (this.#writing !== null) await this.#writing;
  }

  /** Writes what is queued; call before closing the store. */
  close(): Promise<void> {
    return this.flush();
  }

  /**
   * Calls `listener` with the number of events lost and why, each time some are. Returns a
   * function that removes it. Listener errors are ignored.
   */
  onEventsLost(listener: (count: number, reason: AuditLossReason) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A page of events matching `query`, newest first, after this instance's queued events are
   * written. Throws `invalid_request` for a bad filter, limit or cursor, or an unknown username.
   */
  async list(query: AuditQuery): Promise<AuditPage> {
    const filter = await this.#filterOf(query);
    const limit = pageLimitOf(query.limit);
    const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
    await this.flush();
    const rows = await this.#store.listAuditEvents(filter, after, limit + 1);
    const events = rows.slice(0, limit);
    const last = events.at(-1);
    return {
      events: events.map((row) => ({ ...row })),
      nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
    };
  }

  async #filterOf(query: AuditQuery): Promise<AuditEventFilter> {
    const since = query.since === undefined ? undefined : parseAuditTime(query.since, "since");
    const until = query.until === undefined ? undefined : parseAuditTime(query.until, "until");
    if (since && until && since >= until) fail("invalid_request", "since must be before until");
    const session = query.session === undefined ? undefined : boundedText(query.session, "session");
    return {
      ...(query.user === undefined ? {} : { userId: await this.#userIdOf(boundedText(query.user, "user")) }),
      ...(session === undefined ? {} : { sessionId: session }),
      ...(query.type === undefined ? {} : { types: eventTypesOf(query.type) }),
      ...(since === undefined ? {} : { since }),
      ...(until === undefined ? {} : { until }),
    };
  }

  async #userIdOf(user: string): Promise<string> {
    const byId = UUID.test(user) ? await this.#store.findUserById(user) : null;
    if (byId) return byId.id;
    const byName = await findUserByName(this.#store, user);
    if (byName) return byName.id;
    // A deleted user's events keep its id.
    if (UUID.test(user)) return user.toLowerCase();
    return fail("invalid_request", "no such user");
  }

  #startWriting(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    // One writer at a time; it takes whatever is queued when it finishes a batch.
    if (this.#writing !== null || this.#queue.length === 0) return;
    this.#writing = this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#buffer.batchSize);
        this.#inFlight = batch.length;
        try {
          await this.#writeWithRetries(batch);
        } catch (error) {
          this.#lost(batch.length, "store_error", error);
        } finally {
          this.#inFlight = 0;
        }
      }
    } finally {
      this.#writing = null;
    }
  }

  /**
   * One batch, tried again after a pause when the store refuses it (a deadline, a restart, a full
   * pool), so that a brief outage loses nothing; the batch counts as lost only after the last try.
   * A multi-row insert is one statement: it is written whole or not at all.
   */
  async #writeWithRetries(batch: readonly AuditEventRecord[]): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await this.#store.insertAuditEvents(batch);
        return;
      } catch (error) {
        const pause = AUDIT_RETRY_PAUSES_MS[attempt];
        if (pause === undefined) throw error;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  #lost(count: number, reason: AuditLossReason, error?: unknown): void {
    for (const listener of this.#listeners) {
      try {
        listener(count, reason);
      } catch {
        // A metrics listener must not break the writer.
      }
    }
    this.#unloggedLosses += count;
    const now = Date.now();
    if (now - this.#lastLossLogAt < LOSS_LOG_INTERVAL_MS) return;
    this.#lastLossLogAt = now;
    // The count and the cause only: events carry addresses and user ids, never logged here.
    const cause = error instanceof Error ? error.message : undefined;
    this.#logger.error(
      { lost: this.#unloggedLosses, reason, ...(cause === undefined ? {} : { err: cause }) },
      "audit events could not be written",
    );
    this.#unloggedLosses = 0;
  }
}

function boundedText(value: string, name: string): string {
  if (value.length === 0 || value.length > AUDIT_QUERY_FIELD_MAX)
    fail("invalid_request", `${name} must be 1 to ${AUDIT_QUERY_FIELD_MAX} characters`);
  return value;
}

function eventTypesOf(text: string): AuditEventType[] {
  const types = text.split(",").map((type) => type.trim());
  for (const type of types) {
    if (!(AUDIT_EVENT_TYPES as readonly string[]).includes(type))
      fail("invalid_request", `type must be a comma-separated list of ${AUDIT_EVENT_TYPES.join(", ")}`);
  }
  return [...new Set(types as AuditEventType[])];
}

function pageLimitOf(text: string | undefined): number {
  if (text === undefined) return AUDIT_PAGE_LIMIT.default;
  const limit = /^\d{1,6}$/.test(text) ? Number(text) : Number.NaN;
  if (!(limit >= 1 && limit <= AUDIT_PAGE_LIMIT.max))
    fail("invalid_request", `limit must be a whole number from 1 to ${AUDIT_PAGE_LIMIT.max}`);
  return limit;
}

/**
 * A moment of an audit query: `YYYY-MM-DD` (UTC midnight) or an ISO 8601 date-time with `Z` or an
 * offset (a time without a zone would depend on the reader's). Throws `invalid_request` naming
 * `name` otherwise, and for dates before 1970 or after 9999.
 */
export function parseAuditTime(text: string, name: string): Date {
  const day = DATE_ONLY.test(text) ? text : DATE_TIME.exec(text)?.[1];
  const date = DATE_ONLY.test(text) ? new Date(`${text}T00:00:00Z`) : new Date(day === undefined ? Number.NaN : text);
  const year = date.getUTCFullYear();
  // Date would roll 2026-02-30 over to March; a calendar date must be one.
  const realDay = day !== undefined && !Number.isNaN(date.getTime()) && isCalendarDate(day);
  if (!realDay || year < 1970 || year > 9999)
    fail("invalid_request", `${name} must be a date (2026-01-31) or a date-time with a zone (2026-01-31T12:00:00Z)`);
  return date;
}

function isCalendarDate(day: string): boolean {
  return new Date(`${day}T00:00:00Z`).toISOString().slice(0, 10) === day;
}

function encodeCursor(event: AuditEventCursor): string {
  return Buffer.from(`${event.createdAt.getTime()}:${event.id}`, "utf8").toString("base64url");
}

function decodeCursor(text: string): AuditEventCursor {
  const match = /^[A-Za-z0-9_-]{1,128}$/.test(text)
    ? CURSOR.exec(Buffer.from(text, "base64url").toString("utf8"))
    : null;
  if (!match) return fail("invalid_request", "cursor is not one this server handed out");
  return { createdAt: new Date(Number(match[1])), id: match[2]! };
}
