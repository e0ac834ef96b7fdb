import type { SessionRecord, UserRecord } from "../store/store.js";

/** A registered user as the API shows it. */
export interface UserView {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
}

/** A user as an operator sees it: never the password hash. */
export interface AccountView extends UserView {
  readonly createdAt: Date;
  /** When the account was disabled; `null` while it is enabled. */
  readonly disabledAt: Date | null;
}

/** Which second factors a user has on. */
export interface MfaStatusView {
  /** TOTP is confirmed (a pending enrolment does not count). */
  readonly totp: boolean;
}

/** A user as an operator's list shows it: the account and its second factor. */
export interface ListedAccountView extends AccountView {
  readonly mfa: MfaStatusView;
}

/** One user in detail, for an operator. */
export interface AccountDetailsView extends ListedAccountView {
  /** Sessions neither revoked nor expired. */
  readonly openSessions: number;
}

/** A session as its owner or an operator sees it. */
export interface SessionView {
  readonly id: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  /** When the session ends unless refreshed: the earlier of idle and absolute expiry. */
  readonly expiresAt: Date;
  readonly userAgent: string | null;
  readonly ip: string | null;
  /** True for the session of the access token asking. */
  readonly current: boolean;
}

/** The view of a user row. */
export function userViewOf(user: UserRecord): UserView {
  return { id: user.id, username: user.username, roles: user.roles };
}

/** The operator's view of a user row. */
export function accountViewOf(user: UserRecord): AccountView {
  return { ...userViewOf(user), createdAt: user.createdAt, disabledAt: user.disabledAt ?? null };
}

/** Views of session rows; `currentSessionId` marks the asker's own (`null`: none). */
export function sessionViewsOf(sessions: readonly SessionRecord[], currentSessionId: string | null): SessionView[] {
  return sessions.map((session) => ({
    id: session.id,
    createdAt: session.createdAt,
    lastUsedAt: session.lastUsedAt,
    expiresAt: session.idleExpiresAt < session.expiresAt ? session.idleExpiresAt : session.expiresAt,
    userAgent: session.userAgent,
    ip: session.ip,
    current: session.id === currentSessionId,
  }));
}
