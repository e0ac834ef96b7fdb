import { isTokenSet, type TokenSet } from "./token-set.js";

/**
 * Where the client keeps the session's tokens. Methods may be synchronous or return promises.
 * Tabs that should share one session must share the storage (e.g. {@link localStorageStorage}).
 */
export interface TokenStorage {
  /** The stored tokens, or `null` when there are none. */
  get(): TokenSet | null | Promise<TokenSet | null>;
  set(tokens: TokenSet): void | Promise<void>;
  remove(): void | Promise<void>;
}

/** The part of the Web Storage API (`localStorage`, `sessionStorage`) that {@link webStorage} uses. */
export type WebStorageLike = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** The key under which the web storage adapters keep the tokens by default. */
export const DEFAULT_STORAGE_KEY = "tessera.tokens";

/** Keeps the tokens in memory: lost on reload, invisible to other tabs and to scripts reading storage. */
export function memoryStorage(initial: TokenSet | null = null): TokenStorage {
  let tokens = initial;
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
    remove: () => {
      tokens = null;
    },
  };
}

/**
 * Keeps the tokens as JSON under `key` in a Web Storage area. Anything unreadable under the
 * key counts as no tokens. Note that any script on the origin can read Web Storage.
 */
export function webStorage(area: WebStorageLike, key: string = DEFAULT_STORAGE_KEY): TokenStorage {
  if (typeof key !== "string" || key === "") throw new TypeError("webStorage: key must be a non-empty string");
  return {
    get: () => {
      const text = area.getItem(key);
      if (text === null) return null;
      try {
        const parsed: unknown = JSON.parse(text);
        return isTokenSet(parsed) ? parsed : null;
      } catch {
        return null;
      }
    },
    set: (tokens) => area.setItem(key, JSON.stringify(tokens)),
    remove: () => area.removeItem(key),
  };
}

/** {@link webStorage} over `globalThis.localStorage`, shared by every tab of the origin. Throws `TypeError` where there is none. */
export function localStorageStorage(key: string = DEFAULT_STORAGE_KEY): TokenStorage {
  const area = (globalThis as { localStorage?: WebStorageLike }).localStorage;
  if (area === undefined) throw new TypeError("localStorageStorage: globalThis.localStorage is not available here");
  return webStorage(area, key);
}
