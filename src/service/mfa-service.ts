import { createHash, createHmac, randomBytes, randomInt, randomUUID } from "node:crypto";
import { Secret, TOTP } from "otpauth";
import QRCode from "qrcode";
import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { deriveKey, open, seal } from "../core/secret-box.js";
import type { RecoveryCodeRecord, Store, TotpRecord, UserRecord } from "../store/store.js";
import type { AccountMail } from "./account-mail.js";
import type { AuditDetails, AuditSubject, AuditTrail, MfaFailureReason } from "./audit-trail.js";
import type { Principal } from "./auth-service.js";
import { checkPasswordText } from "./credential-policy.js";
import { developmentSecret } from "./key-ring.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { RequestContext } from "./request-context.js";
import type { SessionRevocations } from "./session-revocations.js";

/** TOTP parameters (RFC 6238): what every authenticator app supports. */
export const TOTP_PARAMETERS = Object.freeze({
  algorithm: "SHA1",
  digits: 6,
  periodSeconds: 30,
  /** Codes of this many steps before or after the current one are accepted too (clock drift). */
  windowSteps: 1,
  /** Bytes of a new secret (160 bits, RFC 4226 §4's recommendation). */
  secretBytes: 20,
});

/** How long an `mfa_token` works: 5 min, in seconds. */
export const MFA_TOKEN_TTL_SECONDS = 5 * 60;

/** Answers (codes or recovery codes) one `mfa_token` takes; each is counted before it is checked. */
export const MFA_TOKEN_MAX_ATTEMPTS = 5;

/**
 * Second-factor answers in a row, wrong or unfinished, after which the second step of a login is
 * locked, until the password is changed or reset or an operator resets the second factor.
 */
export const MFA_MAX_FAILURES = 10;

/** Recovery codes handed out when TOTP is confirmed. */
export const RECOVERY_CODE_COUNT = 10;

/** The `one_time_tokens.purpose` of an MFA login's token. */
const MFA_PURPOSE = "mfa";

/** Prefix of the token of an MFA login; 32 random bytes in base64url follow. */
const MFA_TOKEN = /^tsm_[A-Za-z0-9_-]{43}$/;

/** Symbols of a recovery code: 16 of 5 bits each, 80 bits. */
const RECOVERY_CODE_SYMBOLS = 16;

/** Letters and digits of recovery codes: no 0/o, 1/l look-alikes (32 symbols, 5 bits each). */
const RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789";

/** Key-derivation purpose of the key sealing TOTP secrets. */
const SEALING_PURPOSE = "totp-secret-encryption";

/** Key-derivation purpose of the key of recovery codes' digests. */
const RECOVERY_PURPOSE = "recovery-code-digest";

/** A six-digit code, as the routes' schemas also require. */
export const TOTP_CODE_PATTERN = "^[0-9]{6}$";

/** What an enrolment hands the user: the secret, its `otpauth://` URI and that URI as a QR code. */
export interface TotpEnrolment {
  /** The secret in base32, for typing into an app. */
  readonly secret: string;
  readonly uri: string;
  /** An SVG image of the URI's QR code. */
  readonly qrSvg: string;
}

/** The second step of a login: the token to send back with a code, and seconds it stays valid. */
export interface MfaChallenge {
  readonly mfaToken: string;
  readonly expiresIn: number;
}

/** What proves the second factor: an authenticator code or a recovery code. */
export type MfaProof = { readonly code: string } | { readonly recoveryCode: string };

/** What proves the user when turning TOTP off: a current code or the password. */
export type MfaDisableProof = { readonly code: string } | { readonly password: string };

/** Dependencies of {@link MfaService}. */
export interface MfaServiceDependencies {
  readonly store: Store;
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly audit: AuditTrail;
  /** Server secret, or `null` in development mode (the key ring's development secret is used). */
  readonly secret: string | null;
  /** Names the account in authenticator apps (the issuer URL's host name). */
  readonly issuer: string;
  readonly logger: Logger;
  /** Ends the other sessions when TOTP is turned on. */
  readonly revocations: SessionRevocations;
  /** Tells the user of changes to the second factor, when the address is verified. */
  readonly mail: AccountMail;
}

/** SHA-256 of a token or of the state it is bound to, in hex: what the store keeps. */
function digestOf(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** HMAC-SHA256 of a normalized recovery code under the server's recovery-code key, in hex: what the store keeps. */
function recoveryDigest(key: Buffer, code: string): string {
  return createHmac("sha256", key).update(normalizeRecoveryCode(code)).digest("hex");
}

/** A recovery code as compared: lower case, without the separators and spaces people type. */
function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, "");
}

/** A new recovery code, `xxxx-xxxx-xxxx-xxxx`: 80 random bits. */
function newRecoveryCode(): string {
  let code = "";
  for (let i = 0; i < RECOVERY_CODE_SYMBOLS; i += 1) code += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return code.match(/.{4}/g)!.join("-");
}

/**
 * The issuer authenticator apps show: the issuer URL's host name (no port: a `:` would split the
 * `otpauth://` label), else the issuer as given without colons.
 */
export function issuerLabel(issuer: string): string {
  try {
    const hostname = new URL(issuer).hostname;
    if (hostname) return hostname;
  } catch {
    // Not a URL: used as given.
  }
  return issuer.replaceAll(":", "");
}

/**
 * What an `mfa_token` is bound to: the user's password hash, disabled mark and TOTP credential.
 * A password change or reset, disabling, or a reset or new enrolment of TOTP voids the token.
 */
function mfaBindingOf(user: UserRecord, credential: TotpRecord): string {
  return digestOf(
    JSON.stringify([
      user.passwordHash,
      user.disabledAt?.toISOString() ?? null,
      credential.confirmedAt?.toISOString() ?? null,
      credential.secretSealed,
    ]),
  );
}

/**
 * The second factor: TOTP enrolment, confirmation (with recovery codes) and removal, and the
 * second step of a login. Secrets are sealed at rest like signing keys; every accepted code
 * moves the user's last accepted time step forward, so no code is accepted twice.
 */
export class MfaService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #hasher: PasswordHasher;
  readonly #audit: AuditTrail;
  readonly #secret: string | null;
  readonly #issuer: string;
  readonly #logger: Logger;
  readonly #revocations: SessionRevocations;
  readonly #mail: AccountMail;
  #sealingKey: Promise<Buffer> | null = null;
  #recoveryKey: Promise<Buffer> | null = null;
  /** Users whose unreadable secret was logged already (once each per process). */
  readonly #unreadableLogged = new Set<string>();

  constructor(deps: MfaServiceDependencies) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#audit = deps.audit;
    this.#secret = deps.secret;
    this.#issuer = issuerLabel(deps.issuer);
    this.#logger = deps.logger;
    this.#revocations = deps.revocations;
    this.#mail = deps.mail;
  }

  /** Whether the user has TOTP on (confirmed). */
  async isEnabled(userId: string): Promise<boolean> {
    return (await this.#store.findTotp(userId))?.confirmedAt != null;
  }

  /**
   * Starts (or restarts) a pending TOTP enrolment for the principal with a new secret. Throws
   * `mfa_already_enabled` when TOTP is on, `access_token_revoked` when the user is gone.
   */
  async enrollTotp(principal: Principal): Promise<TotpEnrolment> {
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    if (await this.isEnabled(user.id)) fail("mfa_already_enabled", "TOTP is already on");
    const secret = new Secret({ size: TOTP_PARAMETERS.secretBytes });
    const sealed = seal(await this.#key(), secret.base32, this.#context(user.id));
    if (!(await this.#store.savePendingTotp(user.id, sealed, this.#clock.now())))
      fail("mfa_already_enabled", "TOTP is already on");
    const uri = this.#totp(secret, user.username).toString();
    const qrSvg = await QRCode.toString(uri, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
    return { secret: secret.base32, uri, qrSvg };
  }

  /**
   * Turns TOTP on with a code from the pending secret and returns new recovery codes (shown once,
   * stored hashed, replacing any earlier ones). Every other session of the user ends (they were
   * opened without the second factor); the mail tells the user. Records `mfa_enabled`. Throws `invalid_request`
   * when no enrolment is pending, `invalid_mfa_code` for a wrong code.
   */
  async confirmTotp(principal: Principal, code: string, context: RequestContext): Promise<string[]> {
    const user = await this.#store.findUserById(principal.userId);
    const credential = user ? await this.#store.findTotp(user.id) : null;
    if (!user || !credential || credential.confirmedAt !== null)
      fail("invalid_request", "no TOTP enrolment is pending; start one with POST /auth/mfa/totp");
    const step = await this.#stepOf(credential, user.username, code);
    if (step === null) fail("invalid_mfa_code", "the code is wrong");
    const now = this.#clock.now();
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    const recoveryKey = await this.#recoveryCodeKey();
    const records: RecoveryCodeRecord[] = codes.map((value) => ({
      id: randomUUID(),
      userId: user.id,
      codeHash: recoveryDigest(recoveryKey, value),
      createdAt: now,
      usedAt: null,
    }));
    // Only the secret whose code was checked: an enrolment restarted meanwhile is not confirmed.
    if (!(await this.#store.confirmTotp(user.id, credential.secretSealed, step, now, records)))
      fail("invalid_request", "the TOTP enrolment changed meanwhile; start again");
    const revoked = await this.#revocations.revokeUserSessions(user.id, "mfa_enabled", principal.sessionId);
    await this.#audit.record(
      "mfa_enabled",
      context,
      { userId: user.id, sessionId: principal.sessionId },
      { sessionsRevoked: revoked.length },
    );
    this.#mail.notify(user.id, {
      subject: "Two-step login turned on",
      text: "Logins to your account now need a code from your authenticator app, and every other session was ended.\n\nIf you did not do this, change your password at once.\n",
    });
    return codes;
  }

  /**
   * Turns TOTP off, keeping nothing of the secret nor the recovery codes, after a current code or
   * the password; other sessions stay open; the mail tells the user. Records `mfa_disabled`. Throws `invalid_request` when
   * TOTP is neither on nor pending, `invalid_mfa_code` for a wrong or used code,
   * `invalid_credentials` for a wrong password.
   */
  async disableTotp(principal: Principal, proof: MfaDisableProof, context: RequestContext): Promise<void> {
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    const credential = await this.#store.findTotp(user.id);
    if (!credential) fail("invalid_request", "TOTP is not on");
    if ("password" in proof) {
      checkPasswordText(proof.password);
      if (!(await this.#hasher.verify(user.passwordHash, proof.password)) || user.disabledAt)
        fail("invalid_credentials", "the password is wrong");
    } else {
      const step = credential.confirmedAt === null ? null : await this.#stepOf(credential, user.username, proof.code);
      if (step === null || !(await this.#store.acceptTotpStep(user.id, step)))
        fail("invalid_mfa_code", "the code is wrong");
    }
    if (await this.#remove(credential, context, { userId: user.id, sessionId: principal.sessionId }))
      this.#mail.notify(user.id, {
        subject: "Two-step login turned off",
        text: "Logins to your account no longer need a code from your authenticator app.\n\nIf you did not do this, change your password at once and turn it on again.\n",
      });
  }

  /**
   * Turns a user's TOTP off for an operator (the user lost the authenticator and the recovery
   * codes): removes the credential, also a pending one, and the recovery codes. Records
   * `mfa_disabled` with `by` and mails the user when TOTP was on; returns whether it was.
   */
  async resetTotp(userId: string, by: string, context: RequestContext): Promise<boolean> {
    const credential = await this.#store.findTotp(userId);
    if (credential === null || !(await this.#remove(credential, context, { userId }, { by }))) return false;
    this.#mail.notify(userId, {
      subject: "Two-step login turned off",
      text: "An operator turned off two-step login for your account and ended every session. Log in with your password and turn it on again.\n\nIf you did not ask for this, change your password at once.\n",
    });
    return true;
  }

  /** Of `userIds`, those with TOTP on. */
  async enabledAmong(userIds: readonly string[]): Promise<ReadonlySet<string>> {
    return new Set(userIds.length === 0 ? [] : await this.#store.findTotpUserIds(userIds));
  }

  /**
   * Issues the token of a login's second step for a user whose password was right, bound to the
   * user's password hash, disabled mark and TOTP credential (a change to any of them voids it);
   * `null` when the user's TOTP is not on, so the password alone logs in.
   */
  async createChallenge(user: UserRecord): Promise<MfaChallenge | null> {
    const credential = await this.#store.findTotp(user.id);
    if (!credential || credential.confirmedAt === null) return null;
    const mfaToken = `tsm_${randomBytes(32).toString("base64url")}`;
    const now = this.#clock.now();
    await this.#store.createOneTimeToken({
      id: randomUUID(),
      userId: user.id,
      purpose: MFA_PURPOSE,
      tokenHash: digestOf(mfaToken),
      boundTo: mfaBindingOf(user, credential),
      createdAt: now,
      expiresAt: addSeconds(now, MFA_TOKEN_TTL_SECONDS),
      usedAt: null,
    });
    return { mfaToken, expiresIn: MFA_TOKEN_TTL_SECONDS };
  }

  /** Voids every pending `mfa_token` of the user. */
  async voidChallenges(userId: string): Promise<void> {
    await this.#store.voidOneTimeTokens(userId, MFA_PURPOSE, this.#clock.now());
  }

  /** The user an unused, unexpired `mfa_token` was issued to, or `null`; changes nothing. */
  async challengedUserId(mfaToken: string): Promise<string | null> {
    if (!MFA_TOKEN.test(mfaToken)) return null;
    const found = await this.#store.findOneTimeToken(digestOf(mfaToken), MFA_PURPOSE, this.#clock.now());
    return found?.userId ?? null;
  }

  /**
   * Checks the second factor of a login and uses the `mfa_token` up; returns the user's id. Each
   * answer is counted before it is checked: against the token (void after
   * {@link MFA_TOKEN_MAX_ATTEMPTS}) and against the user ({@link MFA_MAX_FAILURES} in a row lock
   * the second step; `mfa_locked` is recorded and mailed once). Records `recovery_code_used`, or
   * `mfa_login_failed` with the reason. Throws `mfa_login_invalid` for a wrong, used or replayed
   * code, a locked second step, and for a token that is malformed, unknown, used, expired, spent
   * or issued before a change to the password, the disabled mark or the TOTP credential;
   * `mfa_unavailable` when the secret cannot be read.
   */
  async verifyChallenge(mfaToken: string, proof: MfaProof, context: RequestContext): Promise<string> {
    const refuse = async (reason: MfaFailureReason, userId: string | null): Promise<never> => {
      await this.#audit.record("mfa_login_failed", context, { userId }, { reason });
      return fail("mfa_login_invalid", "the code or the mfa_token is not valid");
    };
    const now = this.#clock.now();
    const tokenHash = digestOf(mfaToken);
    // The attempt is taken before anything is checked: racing answers cannot pass the cap.
    const token = MFA_TOKEN.test(mfaToken)
      ? await this.#store.reserveOneTimeTokenAttempt(tokenHash, MFA_PURPOSE, MFA_TOKEN_MAX_ATTEMPTS, now)
      : null;
    if (!token) return refuse("unknown_mfa_token", null);
    const userId = token.userId;
    const user = await this.#store.findUserById(userId);
    if (!user || user.disabledAt) return refuse("user_disabled", userId);
    const credential = await this.#store.findTotp(userId);
    if (!credential || credential.confirmedAt === null) return refuse("totp_off", userId);
    if (mfaBindingOf(user, credential) !== token.boundTo) return refuse("stale_mfa_token", userId);
    // A secret that cannot be read checks no code, so it counts against nothing of the user's.
    if ("code" in proof) await this.#unseal(credential);
    const answers = await this.#store.reserveTotpAttempt(userId, MFA_MAX_FAILURES);
    if (answers === null) return refuse("mfa_locked", userId);
    const wrong = async (reason: MfaFailureReason): Promise<never> => {
      if (answers === MFA_MAX_FAILURES) await this.#locked(userId, context);
      return refuse(reason, userId);
    };
    if ("recoveryCode" in proof) {
      const codeHash = recoveryDigest(await this.#recoveryCodeKey(), proof.recoveryCode);
      if (!(await this.#store.useRecoveryCode(userId, codeHash, now))) return wrong("wrong_recovery_code");
      await this.#store.clearTotpFailures(userId);
      await this.#audit.record("recovery_code_used", context, { userId });
      const left = await this.#store.countUnusedRecoveryCodes(userId);
      this.#mail.notify(userId, {
        subject: "A recovery code was used",
        text: `A recovery code was used to log in to your account; ${left} of them ${left === 1 ? "is" : "are"} left.\n\nIf this was not you, change your password at once.\n`,
      });
    } else {
      const step = await this.#stepOf(credential, user.username, proof.code);
      if (step === null) return wrong("wrong_code");
      if (!(await this.#store.acceptTotpStep(userId, step))) return wrong("replayed_code");
      await this.#store.clearTotpFailures(userId);
    }
    // Of racing completions with the same token, one opens a session.
    if (!(await this.#store.consumeOneTimeToken(tokenHash, MFA_PURPOSE, now)))
      return refuse("unknown_mfa_token", userId);
    return userId;
  }

  /** The second step of the user just locked: records `mfa_locked` and tells the user. */
  async #locked(userId: string, context: RequestContext): Promise<void> {
    await this.#audit.record("mfa_locked", context, { userId });
    this.#mail.notify(userId, {
      subject: "Logins to your account are locked",
      text: `Someone who knows your password has tried ${MFA_MAX_FAILURES} wrong codes in a row, so logins to your account are locked. Change your password (or reset it from the login page) to unlock them.\n`,
    });
  }

  /** Deletes the credential and recovery codes; records `mfa_disabled` and returns true when TOTP was on. */
  async #remove(
    credential: TotpRecord,
    context: RequestContext,
    subject: AuditSubject,
    details: AuditDetails | null = null,
  ): Promise<boolean> {
    const wasOn = (await this.#store.deleteTotp(credential.userId)) && credential.confirmedAt !== null;
    if (wasOn) await this.#audit.record("mfa_disabled", context, subject, details);
    return wasOn;
  }

  /** The time step of `code` under the credential's secret within the window, or `null`. */
  async #stepOf(credential: TotpRecord, username: string, code: string): Promise<number | null> {
    if (!/^[0-9]{6}$/.test(code)) return null;
    const secret = Secret.fromBase32(await this.#unseal(credential));
    const totp = this.#totp(secret, username);
    const timestamp = this.#clock.now().getTime();
    const delta = totp.validate({ token: code, timestamp, window: TOTP_PARAMETERS.windowSteps });
    return delta === null ? null : totp.counter({ timestamp }) + delta;
  }

  /** The credential's secret in base32; `mfa_unavailable` when it does not open (the server secret changed). */
  async #unseal(credential: TotpRecord): Promise<string> {
    const key = await this.#key();
    try {
      return open(key, credential.secretSealed, this.#context(credential.userId));
    } catch {
      if (!this.#unreadableLogged.has(credential.userId)) {
        this.#unreadableLogged.add(credential.userId);
        this.#logger.error(
          { userId: credential.userId },
          "a TOTP secret cannot be unsealed (TESSERA_SECRET changed?): an operator must reset this user's second factor",
        );
      }
      return fail("mfa_unavailable", "the second factor cannot be read; an operator must reset it");
    }
  }

  #totp(secret: Secret, username: string): TOTP {
    return new TOTP({
      issuer: this.#issuer,
      label: username,
      algorithm: TOTP_PARAMETERS.algorithm,
      digits: TOTP_PARAMETERS.digits,
      period: TOTP_PARAMETERS.periodSeconds,
      secret,
    });
  }

  // A sealed secret is bound to its user: copied to another user's row it does not open.
  #context(userId: string): string {
    return `totp:${userId}`;
  }

  #key(): Promise<Buffer> {
    this.#sealingKey ??= this.#derive(SEALING_PURPOSE).catch((error: unknown) => {
      // A database that did not answer is asked again next time.
      this.#sealingKey = null;
      throw error;
    });
    return this.#sealingKey;
  }

  #recoveryCodeKey(): Promise<Buffer> {
    this.#recoveryKey ??= this.#derive(RECOVERY_PURPOSE).catch((error: unknown) => {
      this.#recoveryKey = null;
      throw error;
    });
    return this.#recoveryKey;
  }

  async #derive(purpose: string): Promise<Buffer> {
    return deriveKey(this.#secret ?? (await developmentSecret(this.#store)), purpose);
  }
}
