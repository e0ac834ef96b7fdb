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

// Default_Ignorable_Code_Point: variation selectors, fillers, joiners. NFKC_Casefold removes them,
// so `bob` with a variation selector would show like `bob`; a new username may not hold them.
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
const CHEROKEE = /\p{Script=Cherokee}/u;
const ASCII = /^[\u0000-\u007f]*$/;

// The scripts of UAX #24 (ISO 15924 codes, Unicode 17) other than Common, Inherited and Unknown.
// A name this Node does not know is left out: its characters are unassigned here, so no username
// can hold them. test/service/credential-policy.test.ts checks that every letter is covered.
const SCRIPTS = `Adlm Aghb Ahom Arab Armi Armn Avst Bali Bamu Bass Batk Beng Berf Bhks Bopo Brah Brai Bugi Buhd Cakm
  Cans Cari Cham Cher Chrs Copt Cpmn Cprt Cyrl Deva Diak Dogr Dsrt Dupl Egyp Elba Elym Ethi Gara Geor Glag Gong
  Gonm Goth Gran Grek Gujr Gukh Guru Hang Hani Hano Hatr Hebr Hira Hluw Hmng Hmnp Hung Ital Java Kali Kana Kawi
  Khar Khmr Khoj Kits Knda Krai Kthi Lana Laoo Latn Lepc Limb Lina Linb Lisu Lyci Lydi Mahj Maka Mand Mani Marc
  Medf Mend Merc Mero Mlym Modi Mong Mroo Mtei Mult Mymr Nagm Nand Narb Nbat Newa Nkoo Nshu Ogam Olck Onao Orkh
  Orya Osge Osma Ougr Palm Pauc Perm Phag Phli Phlp Phnx Plrd Prti Rjng Rohg Runr Samr Sarb Saur Sgnw Shaw Shrd
  Sidd Sidt Sind Sinh Sogd Sogo Sora Soyo Sund Sunu Sylo Syrc Tagb Takr Tale Talu Taml Tang Tavt Tayo Telu Tfng
  Tglg Thaa Thai Tibt Tirh Tnsa Todr Tols Toto Tutg Ugar Vaii Vith Wara Wcho Xpeo Xsux Yezi Yiii Zanb`;

/** One pattern per script this Node knows, matching a character whose Script_Extensions hold it. */
export const SCRIPT_PATTERNS: readonly RegExp[] = Object.freeze(
  SCRIPTS.split(/\s+/).flatMap((script) => {
    try {
      return [new RegExp(`\\p{scx=${script}}`, "u")];
    } catch {
      return [];
    }
  }),
);

// Digits, . _ @ + - and combining marks that belong to no script in particular go with any.
const ANY_SCRIPT = /[\p{scx=Zyyy}\p{scx=Zinh}]/u;

// UTS #39 5.2 "highly restrictive": these mixes are how Japanese, Chinese and Korean are written.
const ALLOWED_MIXES: readonly RegExp[] = [
  /[\p{scx=Latn}\p{scx=Hani}\p{scx=Hira}\p{scx=Kana}]/u,
  /[\p{scx=Latn}\p{scx=Hani}\p{scx=Bopo}]/u,
  /[\p{scx=Latn}\p{scx=Hani}\p{scx=Hang}]/u,
];

/** A username as stored: shown as registered, looked up by its key. */
export interface UsernameForms {
  /** As registered, NFKC-normalized. */
  readonly display: string;
  /** The unique comparison form, {@link normalizeUsername}. */
  readonly key: string;
}

/** Length in characters (code points), as the README and the request schema count it. */
function characters(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** Full case folding (Unicode CaseFolding.txt, statuses C and F) of one character without a decomposition. */
function foldCase(char: string): string {
  if (INVISIBLE.test(char)) return "";
  // Dotless ı has no case folding; upper-casing it would turn it into I and so into i.
  if (char === "\u0131") return char;
  // Cherokee folds to its capitals: its small letters were encoded later, in Unicode 8.
  if (CHEROKEE.test(char)) return char.toUpperCase();
  // Lower first turns ẞ into ß; upper then expands ß to SS and ᾳ to ΑΙ and maps ς, ϐ, ͅ to
  // their capitals; lower again yields what case folding gives.
  return char.toLowerCase().toUpperCase().toLowerCase();
}

/**
 * The comparison form of a username: Unicode's NFKC_Casefold (UAX #44, as UAX #31 and UTS #46
 * use it). Width, compatibility forms and case all fold: `Alice`, `ａｌｉｃｅ` and `ALICE` are one
 * user, and so are `ΟΔΟΣ` and `οδοσ` (σ and ς fold alike), `Straße` and `STRASSE`, `ﬁx` and
 * `fix`. Invisible (default-ignorable) characters drop out. Built from NFD, NFKD, NFKC and the
 * case mappings of JavaScript, which has no case folding of its own; it equals the Unicode 14
 * NFKC_Casefold table on every character and follows this Node's Unicode version since.
 */
export function normalizeUsername(username: string): string {
  // In ASCII, NFKC_Casefold is lower case.
  if (ASCII.test(username)) return username.toLowerCase();
  // NFKC_Casefold(X) = NFC of the mapping of each character of NFD(X) (UAX #44, 5.7.4).
  let key = "";
  for (const char of username.normalize("NFD")) {
    let folded = "";
    for (const part of char.normalize("NFKD")) folded += foldCase(part);
    key += folded.normalize("NFKC");
  }
  return key.normalize("NFC");
}

/**
 * The keys under which an account registered as `username` may be stored, in the order to look
 * them up: the comparison form used before NFKC_Casefold (NFKC, then `toLowerCase`), which
 * accounts keep when their new key collides with another account's (see `username-keys.ts`),
 * then {@link normalizeUsername}. Keys no username can have are left out.
 */
export function usernameLookupKeys(username: string): string[] {
  const key = normalizeUsername(username);
  const previous = username.normalize("NFKC").toLowerCase();
  return (previous === key ? [key] : [previous, key]).filter((candidate) => USERNAME.test(candidate));
}

/** True when `key` (a {@link normalizeUsername} result) can name a user at all. */
export function isPossibleUsernameKey(key: string): boolean {
  return USERNAME.test(key);
}

/**
 * True when `text` mixes scripts no more than UTS #39's "highly restrictive" level allows: its
 * characters share one script, or all belong to Latin + Han + Hiragana + Katakana, Latin + Han +
 * Bopomofo or Latin + Han + Hangul. Script_Extensions decide (a character used by several
 * scripts fits each); characters of the Common and Inherited scripts fit any.
 */
export function isHighlyRestrictive(text: string): boolean {
  const letters = [...new Set(text)].filter((char) => !ANY_SCRIPT.test(char));
  const covers = (pattern: RegExp) => letters.every((char) => pattern.test(char));
  return SCRIPT_PATTERNS.some(covers) || ALLOWED_MIXES.some(covers);
}

/**
 * The stored forms of a new username. Throws `invalid_request` naming the rule it breaks: its
 * length and characters, invisible characters, or scripts mixed beyond {@link isHighlyRestrictive}
 * (`bоb` with a Cyrillic о).
 */
export function checkNewUsername(username: string): UsernameForms {
  const display = username.normalize("NFKC");
  const key = normalizeUsername(username);
  if (!USERNAME.test(display) || !USERNAME.test(key)) {
    throw new TesseraError(
      "invalid_request",
      `username must be ${USERNAME_LENGTH.min} to ${USERNAME_LENGTH.max} letters, digits or . _ @ + -, ` +
        "with at least one letter or digit",
    );
  }
  if (INVISIBLE.test(display)) {
    throw new TesseraError(
      "invalid_request",
      "username must not contain invisible characters such as variation selectors",
    );
  }
  if (!isHighlyRestrictive(display)) {
    throw new TesseraError(
      "invalid_request",
      "username must be written in one script, or in Latin with Han and kana, Han and Bopomofo, or Han and Hangul",
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
