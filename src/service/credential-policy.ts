import { TesseraError } from "../core/errors.js";

/** Shortest and longest accepted usernames, in characters. */
export const USERNAME_LENGTH = Object.freeze({ min: 3, max: 64 });

/** Shortest and longest accepted passwords, in characters (code points). */
export const PASSWORD_LENGTH = Object.freeze({ min: 8, max: 1024 });

/** What a role name may look like: 1 to 64 letters, digits or `_ : . -`. */
export const ROLE_NAME = /^[\w:.-]{1,64}$/;

// Letters (with their combining marks, as in Devanagari or a lower-cased İ), digits or
// . _ @ + -, at least one of them a letter or digit.
const USERNAME = new RegExp(
  `^(?=.*[\\p{L}\\p{N}])[\\p{L}\\p{M}\\p{N}._@+-]{${USERNAME_LENGTH.min},${USERNAME_LENGTH.max}}$`,
  "u",
);
// A lone UTF-16 surrogate has no UTF-8 form: argon2 would hash every one as U+FFFD.
const LONE_SURROGATE = /\p{Cs}/u;

/** A username as stored: shown as registered, looked up by its key. */
export interface UsernameForms {
  /** As registered, NFKC-normalized. */
  readonly display: string;
  /** The unique comparison form. */
  readonly key: string;
}

/** Length in characters (code points), as the README and the request schema count it. */
function characters(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** Usernames compare case- and width-insensitively: `Alice` and `ａｌｉｃｅ` are one user. */
export function normalizeUsername(username: string): string {
  return username.normalize("NFKC").toLowerCase();
}

/** True when `key` (a {@link normalizeUsername} result) can name a user at all. */
export function isPossibleUsernameKey(key: string): boolean {
  return USERNAME.test(key);
}

/** The stored forms of a new username. Throws `invalid_request` naming the rule it breaks. */
export function checkNewUsername(username: string): UsernameForms {
  const display = username.normalize("NFKC");
  const key = normalizeUsername(username);
  if (!USERNAME.test(display) || !USERNAME.test(key)) {
    throw new TesseraError(
      "invalid_request",
      `username must be ${USERNAME_LENGTH.min} to ${USERNAME_LENGTH.max} letters, digits or . _ @ + -, with at least one letter or digit`,
    );
  }
  return { display, key };
}

/** Throws `invalid_request` for a password that is not valid Unicode text. */
export function checkPasswordText(password: string): void {
  if (LONE_SURROGATE.test(password)) throw new TesseraError("invalid_request", "password must be valid Unicode text");
}

/** Throws `invalid_request` for a new password outside {@link PASSWORD_LENGTH} or not valid text. */
export function checkNewPassword(password: string): void {
  const length = characters(password);
  if (length < PASSWORD_LENGTH.min || length > PASSWORD_LENGTH.max) {
    throw new TesseraError(
      "invalid_request",
      `password must be ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters`,
    );
  }
  checkPasswordText(password);
}

/** The distinct role names of `roles`. Throws `invalid_request` for a bad name. */
export function checkRoleNames(roles: readonly string[]): string[] {
  if (!roles.every((role) => ROLE_NAME.test(role)))
    throw new TesseraError("invalid_request", "role names are 1 to 64 letters, digits or _ : . -");
  return [...new Set(roles)];
}
