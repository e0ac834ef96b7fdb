import { createHash } from "node:crypto";
import type { AccessTokenClaims } from "../core/access-token.js";

/** Default number of verified tokens kept. */
export const DEFAULT_TOKEN_CACHE_ENTRIES = 1000;

interface Entry {
  readonly claims: AccessTokenClaims;
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

  /** The claims of `token` if it was verified and has not expired at `nowSeconds`. */
  get(token: string, nowSeconds: number): AccessTokenClaims | undefined {
    const key = keyOf(token);
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    // No clock skew here: a cached token is served only strictly before its exp.
    if (nowSeconds >= entry.expiresAt) return undefined;
    this.#entries.set(key, entry);
    return entry.claims;
  }

  /** Remembers verified `claims` of `token` until its `exp`. */
  set(token: string, claims: AccessTokenClaims): void {
    if (this.#maxEntries === 0) return;
    const key = keyOf(token);
    this.#entries.delete(key);
    this.#entries.set(key, { claims, expiresAt: claims.exp });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries) break;
      this.#entries.delete(oldest);
    }
  }
}

function keyOf(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64url");
}
