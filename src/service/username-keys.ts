import type { Logger } from "../core/logger.js";
import type { Store, UserRecord } from "../store/store.js";
import { isPossibleUsernameKey, normalizeUsername, usernameLookupKeys } from "./credential-policy.js";

/** The setting that says every stored username key was brought to the current comparison form. */
export const USERNAME_KEY_FORM_SETTING = "username_key_form";
/** Its value once they were: Unicode's NFKC_Casefold, as `normalizeUsername()` computes it. */
export const USERNAME_KEY_FORM = "nfkc_casefold";

/** Users read per query while looking for keys in an older form. */
const PAGE_SIZE = 500;

/** What {@link upgradeUsernameKeys} did. */
export interface UsernameKeyUpgrade {
  /** Users whose key was changed to the current form. */
  readonly rekeyed: number;
  /**
   * Users whose names became one name, one list per name: the first holds the new key, the
   * others kept their old keys. Nobody was merged or renamed.
   */
  readonly collisions: readonly (readonly string[])[];
  /** Users who kept their old key because the new one would be longer than a key may be. */
  readonly tooLong: readonly string[];
}

const NOTHING_DONE: UsernameKeyUpgrade = Object.freeze({ rekeyed: 0, collisions: [], tooLong: [] });

/**
 * The user registered as `username`, or `null`. Looks up the key form used before NFKC_Casefold
 * first, so an account that kept it after a collision signs in exactly as before; only such
 * accounts can hold it, since every current key is its own case folding.
 */
export async function findUserByName(store: Store, username: string): Promise<UserRecord | null> {
  for (const key of usernameLookupKeys(username)) {
    const user = await store.findUserByUsername(key);
    if (user) return user;
  }
  return null;
}

function oldestFirst(a: UserRecord, b: UserRecord): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Brings every stored username key to the current comparison form, once per database (the
 * `username_key_form` setting records it). Where two accounts now have one name, neither is
 * merged or renamed: the account already holding the new key keeps it, otherwise the oldest
 * takes it, and the others keep their old key (still found by {@link findUserByName}); a
 * warning lists their ids. Safe when several instances run it at once: each change is one
 * conditional update.
 */
export async function upgradeUsernameKeys(store: Store, logger: Logger): Promise<UsernameKeyUpgrade> {
  if ((await store.findSetting(USERNAME_KEY_FORM_SETTING)) === USERNAME_KEY_FORM) return NOTHING_DONE;
  const stale: UserRecord[] = [];
  for (let afterId: string | null = null; ; ) {
    const page = await store.listUsers(afterId, PAGE_SIZE);
    for (const user of page) if (normalizeUsername(user.username) !== user.usernameKey) stale.push(user);
    if (page.length < PAGE_SIZE) break;
    afterId = page[page.length - 1]?.id ?? null;
  }
  let rekeyed = 0;
  const collisions = new Map<string, string[]>();
  const tooLong: string[] = [];
  for (const user of stale.sort(oldestFirst)) {
    const key = normalizeUsername(user.username);
    if (!isPossibleUsernameKey(key)) {
      tooLong.push(user.id);
    } else if (await store.changeUsernameKey(user.id, user.usernameKey, key)) {
      rekeyed += 1;
    } else {
      // Either another instance changed this very row first, or another account has the key.
      const holder = await store.findUserByUsername(key);
      if (holder && holder.id !== user.id) {
        const ids = collisions.get(key) ?? [holder.id];
        collisions.set(key, [...ids, user.id]);
      }
    }
  }
  if (rekeyed > 0) logger.info({ rekeyed }, "username keys changed to the NFKC_Casefold comparison form");
  for (const userIds of collisions.values()) {
    logger.warn(
      { userIds },
      "these accounts now have one username under full case folding; none was merged or renamed, " +
        "the first holds the name and the others sign in with their usernames as before",
    );
  }
  if (tooLong.length > 0) {
    logger.warn({ userIds: tooLong }, "these accounts keep their old username keys: the new ones would be too long");
  }
  await store.ensureSetting(USERNAME_KEY_FORM_SETTING, USERNAME_KEY_FORM);
  return { rekeyed, collisions: [...collisions.values()], tooLong };
}
