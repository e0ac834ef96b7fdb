import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.js";
import type { RevocationReason } from "../core/revocation.js";
import type { Store } from "../store/store.js";
import { type RequestContext, storedContext } from "./request-context.js";

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
] as const;

/** One of {@link AUDIT_EVENT_TYPES}. */
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/** Whom an audit event concerns. */
export interface AuditSubject {
  readonly userId?: string | null;
  readonly sessionId?: string | null;
}

/** Details kept with an event; never a token, password or secret. */
export type AuditDetails = Readonly<Record<string, unknown>> & { readonly reason?: RevocationReason };

/** Writes audit events to the store, stamped with the clock and the request's origin. */
export class AuditTrail {
  readonly #store: Store;
  readonly #clock: Clock;

  constructor(store: Store, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** Records one event. */
  async record(
    type: AuditEventType,
    context: RequestContext,
    subject: AuditSubject,
    details: AuditDetails | null = null,
  ): Promise<void> {
    const { ip, userAgent } = storedContext(context);
    await this.#store.insertAuditEvent({
      id: randomUUID(),
      type,
      userId: subject.userId ?? null,
      sessionId: subject.sessionId ?? null,
      ip,
      userAgent,
      details,
      createdAt: this.#clock.now(),
    });
  }
}
