import { hash } from "node:crypto";
import type { AccessTokenClaims } from "../core/access-token.js";
import type { VerificationKey } from "../core/signing-key.js";

/** Default number of verified tokens kept. */
export const DEFAULT_TOKEN_CACHE_ENTRIES = 1000;

/** A verified token: its claims, and the `kid` and key that verified it. */
export interface VerifiedToken {
  readonly claims: AccessTokenClaims;
  readonly kid: string | undefined;
  readonly key: VerificationKey;
}

interface Entry extends VerifiedToken {
  /** The token's `exp`, in Unix seconds. */
  readonly expiresAt: number;
}

/**
 * Claims of recently verified tokens, least recently used evicted first. Keyed by the SHA-256
 * of the whole token, so two tokens never share an entry and no token is kept in memory.
 */
export class TokenCache {
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry>();

  /** `maxEntries` of 0 keeps nothing. */
  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** False when `maxEntries` is 0: nothing is kept, so there is nothing to look up. */
  get enabled(): boolean {
    return this.#maxEntries > 0;
  }

  /** `token` as it was verified, if it has not expired at `nowSeconds`. */
  get(token: string, nowSeconds: number): VerifiedToken | undefined {
    if (this.#maxEntries === 0) return undefined;
    const key = keyOf(token);
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    // No clock skew here: a cached token is served only strictly before its exp.
    if (nowSeconds >= entry.expiresAt) return undefined;
    this.#entries.set(key, entry);
    return entry;
  }

  /** Forgets `token`. */
  delete(token: string): void {
    this.#entries.delete(keyOf(token));
  }

  /** Remembers verified `token` until its `exp`. */
  set(token: string, verified: VerifiedToken): void {
    if (this.#maxEntries === 0) return;
    const key = keyOf(token);
    this.#entries.delete(key);
    this.#entries.set(key, { ...verified, expiresAt: verified.claims.exp });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries) break;
      this.#entries.delete(oldest);
    }
  }
}

function keyOf(token: string): string {
  // One-shot: no Hash object per lookup.
  return hash("sha256", token, "base64url");
}
