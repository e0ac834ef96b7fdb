/**
 * The revocation contract between the server and `tessera/verify`: the reasons a session ends,
 * the JSON of `GET /auth/revocations`, and the Redis message. Written and parsed only here.
 */

/** The Redis channel on which revocations are published and `tessera/verify` listens. */
export const REVOCATION_CHANNEL = "tessera:revocations";

/** Why a session was revoked, as stored with it and recorded in the audit trail. */
export const REVOCATION_REASONS = [
  "logout",
  "logout_all",
  "logout_others",
  "user",
  "revocation",
  "admin",
  "refresh_token_reused",
  "password_changed",
  "mfa_enabled",
] as const;

/** One of {@link REVOCATION_REASONS}. */
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** Longest session id a verifier accepts from the feed or the channel, in characters. */
export const MAX_SID_LENGTH = 128;

/** A revoked session: its id and when it was revoked, in Unix seconds. */
export interface RevocationEntry {
  readonly sid: string;
  readonly revokedAt: number;
}

/** The body of `GET /auth/revocations`. */
export interface RevocationFeedBody {
  readonly revoked: readonly { readonly sid: string; readonly revoked_at: number }[];
  /** How far back the feed reaches: one access-token lifetime, in seconds. */
  readonly window_seconds: number;
  /** The moment the answer describes, in Unix seconds. */
  readonly generated_at: number;
}

/** The content of a feed answer, times in Unix seconds. */
export interface RevocationList {
  readonly entries: readonly RevocationEntry[];
  readonly windowSeconds: number;
  readonly generatedAt: number;
}

function isSid(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_SID_LENGTH;
}

function isSeconds(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/** The feed body for revoked sessions; times in Unix seconds. */
export function encodeRevocationFeed(feed: RevocationList): RevocationFeedBody {
  return {
    revoked: feed.entries.map((entry) => ({ sid: entry.sid, revoked_at: entry.revokedAt })),
    window_seconds: feed.windowSeconds,
    generated_at: feed.generatedAt,
  };
}

/** Parses a `GET /auth/revocations` body; `null` when it is not one. */
export function parseRevocationFeed(body: unknown): RevocationList | null {
  if (typeof body !== "object" || body === null) return null;
  const { revoked, window_seconds: windowSeconds, generated_at: generatedAt } = body as Record<string, unknown>;
  if (!Array.isArray(revoked) || !isSeconds(windowSeconds) || windowSeconds === 0 || !isSeconds(generatedAt))
    return null;
  const entries: RevocationEntry[] = [];
  for (const item of revoked as unknown[]) {
    const { sid, revoked_at: revokedAt } = (item ?? {}) as Record<string, unknown>;
    if (!isSid(sid) || !isSeconds(revokedAt)) return null;
    entries.push({ sid, revokedAt });
  }
  return { entries, windowSeconds, generatedAt };
}

/** The channel message for sessions revoked at one moment: `{"sids":[…],"revoked_at":<unix s>}`. */
export function encodeRevocationMessage(sessionIds: readonly string[], revokedAt: number): string {
  return JSON.stringify({ sids: sessionIds, revoked_at: revokedAt });
}

/** Parses a message of {@link REVOCATION_CHANNEL}; `null` when it is not one. */
export function parseRevocationMessage(message: string): RevocationEntry[] | null {
  let body: unknown;
  try {
    body = JSON.parse(message);
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null) return null;
  const { sids, revoked_at: revokedAt } = body as Record<string, unknown>;
  if (!Array.isArray(sids) || !sids.every(isSid) || !isSeconds(revokedAt)) return null;
  return sids.map((sid) => ({ sid, revokedAt }));
}
