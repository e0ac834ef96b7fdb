import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Prefix of every refresh token, so secret scanners can find leaked ones. */
export const REFRESH_TOKEN_PREFIX = "tsr_";

const BODY_LENGTH = 43; // 32 bytes, base64url without padding
const CHECKSUM_LENGTH = 6; // 4 bytes, base64url without padding
const SHAPE = /^tsr_[A-Za-z0-9_-]{49}$/;

/** Length of every refresh token in characters. */
export const REFRESH_TOKEN_LENGTH = REFRESH_TOKEN_PREFIX.length + BODY_LENGTH + CHECKSUM_LENGTH;

function checksum(body: string): string {
  return createHash("sha256").update(REFRESH_TOKEN_PREFIX).update(body).digest().subarray(0, 4).toString("base64url");
}

function formatToken(secret: Buffer): string {
  const body = secret.toString("base64url");
  return `${REFRESH_TOKEN_PREFIX}${body}${checksum(body)}`;
}

/** A new refresh token: `tsr_` + 32 random bytes (base64url) + a 6-character checksum. */
export function generateRefreshToken(random: (size: number) => Buffer = randomBytes): string {
  return formatToken(random(32));
}

/**
 * True when `value` has the shape and checksum of a refresh token. Lets garbage be rejected
 * before any database query; says nothing about whether the token exists.
 */
export function isWellFormedRefreshToken(value: string): boolean {
  if (value.length !== REFRESH_TOKEN_LENGTH || !SHAPE.test(value)) return false;
  const body = value.slice(REFRESH_TOKEN_PREFIX.length, REFRESH_TOKEN_PREFIX.length + BODY_LENGTH);
  const expected = Buffer.from(checksum(body));
  const actual = Buffer.from(value.slice(-CHECKSUM_LENGTH));
  // The decoded body must re-encode to itself: rejects non-canonical base64url tails.
  return timingSafeEqual(expected, actual) && Buffer.from(body, "base64url").toString("base64url") === body;
}

/** The SHA-256 of a refresh token, hex encoded: the only form a refresh token is stored in. */
export function hashRefreshToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * The successor of `presented`: HMAC-SHA256 under the rotation key, formatted as a refresh
 * token. Deterministic, so a repeat within the grace window yields the very same successor
 * without it ever being stored in plain text.
 */
export function deriveSuccessorToken(rotationKey: Buffer, presented: string): string {
  return formatToken(createHmac("sha256", rotationKey).update(presented).digest());
}
