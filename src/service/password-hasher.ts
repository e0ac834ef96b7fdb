import { type Algorithm, hash, verify } from "@node-rs/argon2";

// `Algorithm` is an ambient const enum, which verbatimModuleSyntax cannot read; 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;

/** Hashes and checks passwords. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
}

/** OWASP's first argon2id configuration: m = 19 MiB, t = 2, p = 1. */
export const ARGON2ID_OWASP = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

/** argon2id with the given cost (default {@link ARGON2ID_OWASP}); runs off the event loop. */
export function createArgon2Hasher(cost: { memoryCost: number; timeCost: number; parallelism: number } = ARGON2ID_OWASP): PasswordHasher {
  const options = { algorithm: ARGON2ID, ...cost };
  return {
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
