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
  close(): void;
}

interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/** Coordinates nothing: for one client alone, e.g. in Node. */
export const soloCoordinator: TabCoordinator = Object.freeze({
  exclusive: <T>(task: () => Promise<T>) => task(),
  post: () => undefined,
  close: () => undefined,
});

/**
 * A coordinator over `BroadcastChannel(name)` and, where present, `navigator.locks` under the
 * same name. Messages that do not have the shape of a {@link TabMessage} are ignored.
 */
export function createTabCoordinator(name: string, onMessage: (message: TabMessage) => void): TabCoordinator {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  const Channel = (globalThis as { BroadcastChannel?: typeof BroadcastChannel }).BroadcastChannel;
  const channel = Channel === undefined ? null : new Channel(name);
  if (channel !== null) {
    // Node's channels keep the process alive; listening for other instances should not.
    (channel as { unref?: () => void }).unref?.();
    channel.onmessage = (event: MessageEvent<unknown>) => {
      if (isTabMessage(event.data)) onMessage(event.data);
    };
  }
  return {
    exclusive: (task) => (locks === undefined ? task() : locks.request(name, task)),
    post: (message) => channel?.postMessage(message),
    close: () => channel?.close(),
  };
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
