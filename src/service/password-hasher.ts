import { type Algorithm, hash, verify } from "@node-rs/argon2";

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
