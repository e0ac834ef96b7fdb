import { type Algorithm, hash, verify } from "@node-rs/argon2";
import { fail } from "../core/errors.js";

// `Algorithm` is an ambient const enum, which verbatimModuleSyntax cannot read; 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;

/** Hashes and checks passwords. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
  /**
   * A hash of no one's password, made with this hasher's cost, which logins of unknown users
   * are checked against. When absent the service hashes a random string once at start.
   */
  readonly unknownUserHash?: string;
}

/** OWASP's first argon2id configuration: m = 19 MiB, t = 2, p = 1. */
export const ARGON2ID_OWASP = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

// argon2id(m=19456, t=2, p=1) of a random string nobody knows: same cost as a real verify.
const OWASP_UNKNOWN_USER_HASH =
  "$argon2id$v=19$m=19456,t=2,p=1$VcqPNfo2q1fJeI/Qn3IeLg$rzBR1P/CaPBoq+oed0SI8F360qpRotDxbIhxKt9ZOGE";

/** argon2id with the given cost (default {@link ARGON2ID_OWASP}); runs off the event loop. */
export function createArgon2Hasher(
  cost: { memoryCost: number; timeCost: number; parallelism: number } = ARGON2ID_OWASP,
): PasswordHasher {
  const options = { algorithm: ARGON2ID, ...cost };
  const owasp =
    cost.memoryCost === ARGON2ID_OWASP.memoryCost &&
    cost.timeCost === ARGON2ID_OWASP.timeCost &&
    cost.parallelism === ARGON2ID_OWASP.parallelism;
  return {
    ...(owasp ? { unknownUserHash: OWASP_UNKNOWN_USER_HASH } : {}),
    hash: (password) => hash(password, options),
    verify: async (stored, password) => {
      try {
        return await verify(stored, password);
      } catch {
        return false;
      }
    },
  };
}

/** How many hashes run at once and how many may wait; see `passwordHashConcurrency` and `passwordHashQueue`. */
export interface HashingLimit {
  /** Hashes computed at the same time, at least 1. */
  readonly concurrency: number;
  /** Hashes that may wait for a slot; one more fails at once. */
  readonly queue: number;
}

/**
 * `hasher` with at most `limit.concurrency` hashes running and `limit.queue` waiting, first come
 * first served. Beyond that `hash` and `verify` throw `server_busy` without hashing: a login
 * storm then costs a bounded share of the CPU, and refreshes and other routes keep theirs.
 * Known and unknown users queue alike, so the wait tells nothing about an account.
 */
export function limitConcurrentHashing(hasher: PasswordHasher, limit: HashingLimit): PasswordHasher {
  let running = 0;
  const waiting: (() => void)[] = [];
  async function run<T>(work: () => Promise<T>): Promise<T> {
    if (running < limit.concurrency) running += 1;
    else if (waiting.length < limit.queue) await new Promise<void>((resolve) => waiting.push(resolve));
    else fail("server_busy", "too many password hashes at once");
    try {
      return await work();
    } finally {
      // The slot passes straight to the next in line, so `running` stays as it is.
      const next = waiting.shift();
      if (next) next();
      else running -= 1;
    }
  }
  return {
    ...(hasher.unknownUserHash === undefined ? {} : { unknownUserHash: hasher.unknownUserHash }),
    hash: (password) => run(() => hasher.hash(password)),
    verify: (stored, password) => run(() => hasher.verify(stored, password)),
  };
}
