import { isTokenSet, type TokenSet } from "./token-set.js";

/** What one tab (or client instance) tells the others on the channel. */
export type TabMessage =
  | { readonly type: "tokens"; readonly reason: "login" | "refresh"; readonly tokens: TokenSet }
  /** The session ended at `at` (epoch ms); sessions received after that are not affected. */
  | { readonly type: "ended"; readonly reason: "logged_out" | "session_expired"; readonly at: number };

/** Cross-tab coordination: one exclusive lock and one broadcast channel, both named after the channel. */
export interface TabCoordinator {
  /** Runs `task` holding the cross-tab lock (Web Locks), or directly where there are none. */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
  /** Sends `message` to the other instances on the channel; never to this one. */
  post(message: TabMessage): void;
  /**
   * Resolves once this instance has applied the last message any instance posted (or after
   * {@link CATCH_UP_TIMEOUT_MS}). Called holding the lock, it tells whether the previous holder's
   * tokens have arrived here, which a broadcast alone cannot: its delivery is not ordered with the lock.
   */
  caughtUp(): Promise<void>;
  close(): void;
}

/** How long {@link TabCoordinator.caughtUp} waits for a message the ledger says was posted. */
export const CATCH_UP_TIMEOUT_MS = 1000;

interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/** A minimal `Storage`: where the id of the last message posted is kept. */
interface LedgerStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Coordinates nothing: for one client alone, e.g. in Node. */
export const soloCoordinator: TabCoordinator = Object.freeze({
  exclusive: <T>(task: () => Promise<T>) => task(),
  post: () => undefined,
  caughtUp: () => Promise.resolve(),
  close: () => undefined,
});

/** How many message ids an instance remembers having applied. */
const REMEMBERED_IDS = 32;

/**
 * A coordinator over `BroadcastChannel(name)` and, where present, `navigator.locks` under the
 * same name. Each message carries a random id, and the id of the last one posted is written to
 * `localStorage` under `<name>:last` (an id only, never a token). Messages that do not have the
 * shape of a {@link TabMessage} are ignored. `onMessage` may return a promise: a message counts
 * as applied when it settles.
 */
export function createTabCoordinator(
  name: string,
  onMessage: (message: TabMessage) => void | Promise<void>,
): TabCoordinator {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  const Channel = (globalThis as { BroadcastChannel?: typeof BroadcastChannel }).BroadcastChannel;
  const channel = Channel === undefined ? null : new Channel(name);
  const ledger = channel === null ? null : ledgerStorage();
  const ledgerKey = `${name}:last`;
  const applied: string[] = [];
  const waiters = new Map<string, () => void>();
  const remember = (id: string) => {
    applied.push(id);
    if (applied.length > REMEMBERED_IDS) applied.shift();
    waiters.get(id)?.();
    waiters.delete(id);
  };
  // A message posted before this instance existed never reaches it: not something to wait for.
  const before = readLedger(ledger, ledgerKey);
  if (before !== null) applied.push(before);
  if (channel !== null) {
    // Node's channels keep the process alive; listening for other instances should not.
    (channel as { unref?: () => void }).unref?.();
    channel.onmessage = (event: MessageEvent<unknown>) => {
      const data = event.data as { id?: unknown; message?: unknown } | null;
      if (typeof data !== "object" || data === null || !isTabMessage(data.message)) return;
      const id = typeof data.id === "string" ? data.id : null;
      void Promise.resolve()
        .then(() => onMessage(data.message as TabMessage))
        .catch(() => undefined)
        .finally(() => id !== null && remember(id));
    };
  }
  return {
    exclusive: (task) => (locks === undefined ? task() : locks.request(name, task)),
    post: (message) => {
      if (channel === null) return;
      const id = randomId();
      remember(id);
      channel.postMessage({ id, message });
      try {
        ledger?.setItem(ledgerKey, id);
      } catch {
        // Storage full or refused: the others fall back to the broadcast alone.
      }
    },
    caughtUp: () => {
      const last = readLedger(ledger, ledgerKey);
      // Even without a ledger, let messages already queued be delivered first.
      if (last === null || applied.includes(last)) return new Promise((resolve) => setTimeout(resolve, 0));
      const id = last;
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(id);
          resolve();
        }, CATCH_UP_TIMEOUT_MS);
        waiters.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    close: () => {
      channel?.close();
      for (const wake of waiters.values()) wake();
      waiters.clear();
    },
  };
}

/** `localStorage` where a page has one and lets it be used; `null` elsewhere (Node, workers, sandboxes). */
function ledgerStorage(): LedgerStorage | null {
  try {
    const storage = (globalThis as { localStorage?: LedgerStorage }).localStorage;
    return storage !== undefined && typeof storage.getItem === "function" ? storage : null;
  } catch {
    return null; // reading localStorage throws in sandboxed frames
  }
}

function readLedger(ledger: LedgerStorage | null, key: string): string | null {
  try {
    return ledger?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function isTabMessage(value: unknown): value is TabMessage {
  if (typeof value !== "object" || value === null) return false;
  const message = value as Record<string, unknown>;
  if (message.type === "tokens")
    return (message.reason === "login" || message.reason === "refresh") && isTokenSet(message.tokens);
  if (message.type === "ended")
    return (message.reason === "logged_out" || message.reason === "session_expired") && Number.isFinite(message.at);
  return false;
}
