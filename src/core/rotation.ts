import { addSeconds } from "./clock.js";
import type { ErrorCode } from "./errors.js";

/** The state of a presented refresh token that the rotation rules look at. */
export interface RotationToken {
  readonly expiresAt: Date;
  readonly usedAt: Date | null;
}

/** The state of the token's session that the rotation rules look at. */
export interface RotationSession {
  readonly expiresAt: Date;
  readonly revokedAt: Date | null;
}

/** What to do with a presented refresh token. */
export type RotationDecision =
  /** Mark it used and issue its successor. */
  | { readonly action: "rotate" }
  /** A repeat within the grace window: hand back the same successor again. */
  | { readonly action: "repeat" }
  /** A used token came back: revoke the whole session. */
  | { readonly action: "revoke_session"; readonly code: "refresh_token_reused" }
  /** Refuse without side effects. */
  | { readonly action: "reject"; readonly code: ErrorCode };

/** Inputs of {@link decideRotation}. */
export interface RotationInput {
  readonly token: RotationToken;
  readonly session: RotationSession;
  /** The successor issued for the token, if it was used; `null` otherwise. */
  readonly successor: RotationToken | null;
  /** The time the session and token expiries are judged at. */
  readonly now: Date;
  /**
   * When the request arrived, on the clock that stamped `token.usedAt` (the database's): the
   * grace window is judged by it, so a request held up on its way to the database is judged as
   * of when it was sent, and instances with different clocks judge alike. Default: `now`.
   */
  readonly arrivedAt?: Date;
  /** How long after first use a repeat still gets the same successor, in seconds. */
  readonly graceSeconds: number;
}

/**
 * The rotation rules. A used token presented again within the grace window, while its
 * successor is still unused, gets that successor again (racing tabs and retries). A request
 * that arrived before the token's first use was racing that use, not replaying the token: it
 * gets the same successor whatever became of it since. Any other use of a used token is reuse:
 * the session is revoked.
 */
export function decideRotation({
  token,
  session,
  successor,
  now,
  arrivedAt = now,
  graceSeconds,
}: RotationInput): RotationDecision {
  if (session.revokedAt) return { action: "reject", code: "session_revoked" };
  if (now >= session.expiresAt) return { action: "reject", code: "session_expired" };
  if (token.usedAt) {
    if (successor && arrivedAt < token.usedAt) return { action: "repeat" };
    const inGrace = arrivedAt < addSeconds(token.usedAt, graceSeconds);
    if (inGrace && successor && !successor.usedAt && now < successor.expiresAt) return { action: "repeat" };
    return { action: "revoke_session", code: "refresh_token_reused" };
  }
  if (now >= token.expiresAt) return { action: "reject", code: "refresh_token_expired" };
  return { action: "rotate" };
}
