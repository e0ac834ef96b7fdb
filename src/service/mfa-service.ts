import { createHash, randomBytes, randomInt, randomUUID } from "node:crypto";
import { Secret, TOTP } from "otpauth";
import QRCode from "qrcode";
import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import { deriveKey, open, seal } from "../core/secret-box.js";
import type { RecoveryCodeRecord, Store, TotpRecord } from "../store/store.js";
import type { AuditTrail, MfaFailureReason } from "./audit-trail.js";
import type { Principal } from "./auth-service.js";
import { checkPasswordText } from "./credential-policy.js";
import { developmentSecret } from "./key-ring.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { RequestContext } from "./request-context.js";

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

/** Wrong codes given with one `mfa_token` before it is void. */
export const MFA_TOKEN_MAX_ATTEMPTS = 5;

/** Recovery codes handed out when TOTP is confirmed. */
export const RECOVERY_CODE_COUNT = 10;

/** The `one_time_tokens.purpose` of an MFA login's token. */
const MFA_PURPOSE = "mfa";

/** Prefix of the token of an MFA login; 32 random bytes in base64url follow. */
const MFA_TOKEN = /^tsm_[A-Za-z0-9_-]{43}$/;

/** Letters and digits of recovery codes: no 0/o, 1/l look-alikes (32 symbols, 5 bits each). */
const RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789";

/** Key-derivation purpose of the key sealing TOTP secrets. */
const SEALING_PURPOSE = "totp-secret-encryption";

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
  /** Names the account in authenticator apps (the issuer URL's host). */
  readonly issuer: string;
}

/** SHA-256 of a token or a normalized recovery code, in hex: what the store keeps. */
function digestOf(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** A recovery code as compared: lower case, without the separators and spaces people type. */
function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, "");
}

/** A new recovery code, `xxxx-xxxx-xx`: 50 random bits. */
function newRecoveryCode(): string {
  let code = "";
  for (let i = 0; i < 10; i += 1) code += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`;
}

/** The account name authenticator apps show: the issuer's host, else the issuer as given. */
function issuerLabel(issuer: string): string {
  try {
    return new URL(issuer).host || issuer;
  } catch {
    return issuer;
  }
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
  #sealingKey: Promise<Buffer> | null = null;

  constructor(deps: MfaServiceDependencies) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#audit = deps.audit;
    this.#secret = deps.secret;
    this.#issuer = issuerLabel(deps.issuer);
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
   * stored hashed, replacing any earlier ones). Records `mfa_enabled`. Throws `invalid_request`
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
    const records: RecoveryCodeRecord[] = codes.map((value) => ({
      id: randomUUID(),
      userId: user.id,
      codeHash: digestOf(normalizeRecoveryCode(value)),
      createdAt: now,
      usedAt: null,
    }));
    // Only the secret whose code was checked: an enrolment restarted meanwhile is not confirmed.
    if (!(await this.#store.confirmTotp(user.id, credential.secretSealed, step, now, records)))
      fail("invalid_request", "the TOTP enrolment changed meanwhile; start again");
    await this.#audit.record("mfa_enabled", context, { userId: user.id, sessionId: principal.sessionId });
    return codes;
  }

  /**
   * Turns TOTP off, keeping nothing of the secret nor the recovery codes, after a current code or
   * the password; other sessions stay open. Records `mfa_disabled`. Throws `invalid_request` when
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
    if ((await this.#store.deleteTotp(user.id)) && credential.confirmedAt !== null)
      await this.#audit.record("mfa_disabled", context, { userId: user.id, sessionId: principal.sessionId });
  }

  /** Issues the token of a login's second step for a user whose password was right. */
  async createChallenge(userId: string): Promise<MfaChallenge> {
    const mfaToken = `tsm_${randomBytes(32).toString("base64url")}`;
    const now = this.#clock.now();
    await this.#store.createOneTimeToken({
      id: randomUUID(),
      userId,
      purpose: MFA_PURPOSE,
      tokenHash: digestOf(mfaToken),
      boundTo: userId,
      createdAt: now,
      expiresAt: addSeconds(now, MFA_TOKEN_TTL_SECONDS),
      usedAt: null,
    });
    return { mfaToken, expiresIn: MFA_TOKEN_TTL_SECONDS };
  }

  /** The user an unused, unexpired `mfa_token` was issued to, or `null`; changes nothing. */
  async challengedUserId(mfaToken: string): Promise<string | null> {
    if (!MFA_TOKEN.test(mfaToken)) return null;
    const found = await this.#store.findOneTimeToken(digestOf(mfaToken), MFA_PURPOSE, this.#clock.now());
    return found?.userId ?? null;
  }

  /**
   * Checks the second factor of a login and uses the `mfa_token` up; returns the user's id. A
   * wrong code counts against the token, void after {@link MFA_TOKEN_MAX_ATTEMPTS}. Records
   * `recovery_code_used`, or `mfa_login_failed` with the reason. Throws `mfa_login_invalid` for
   * a wrong, used or replayed code, and for a token that is malformed, unknown, used or expired.
   */
  async verifyChallenge(mfaToken: string, proof: MfaProof, context: RequestContext): Promise<string> {
    const refuse = async (reason: MfaFailureReason, userId: string | null): Promise<never> => {
      await this.#audit.record("mfa_login_failed", context, { userId }, { reason });
      return fail("mfa_login_invalid", "the code or the mfa_token is not valid");
    };
    const now = this.#clock.now();
    const tokenHash = digestOf(mfaToken);
    const token = MFA_TOKEN.test(mfaToken) ? await this.#store.findOneTimeToken(tokenHash, MFA_PURPOSE, now) : null;
    if (!token) return refuse("unknown_mfa_token", null);
    const userId = token.userId;
    const wrong = async (reason: MfaFailureReason): Promise<never> => {
      await this.#store.recordOneTimeTokenFailure(tokenHash, MFA_PURPOSE, MFA_TOKEN_MAX_ATTEMPTS, now);
      return refuse(reason, userId);
    };
    const user = await this.#store.findUserById(userId);
    if (!user || user.disabledAt) return wrong("user_disabled");
    const credential = await this.#store.findTotp(userId);
    if (!credential || credential.confirmedAt === null) return wrong("totp_off");
    if ("recoveryCode" in proof) {
      const codeHash = digestOf(normalizeRecoveryCode(proof.recoveryCode));
      if (!(await this.#store.useRecoveryCode(userId, codeHash, now))) return wrong("wrong_recovery_code");
      await this.#audit.record("recovery_code_used", context, { userId });
    } else {
      const step = await this.#stepOf(credential, user.username, proof.code);
      if (step === null) return wrong("wrong_code");
      if (!(await this.#store.acceptTotpStep(userId, step))) return wrong("replayed_code");
    }
    // Of racing completions with the same token, one opens a session.
    if (!(await this.#store.consumeOneTimeToken(tokenHash, MFA_PURPOSE, now)))
      return refuse("unknown_mfa_token", userId);
    return userId;
  }

  /** The time step of `code` under the credential's secret within the window, or `null`. */
  async #stepOf(credential: TotpRecord, username: string, code: string): Promise<number | null> {
    if (!/^[0-9]{6}$/.test(code)) return null;
    const secret = Secret.fromBase32(
      open(await this.#key(), credential.secretSealed, this.#context(credential.userId)),
    );
    const totp = this.#totp(secret, username);
    const timestamp = this.#clock.now().getTime();
    const delta = totp.validate({ token: code, timestamp, window: TOTP_PARAMETERS.windowSteps });
    return delta === null ? null : totp.counter({ timestamp }) + delta;
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
    this.#sealingKey ??= (async () =>
      deriveKey(this.#secret ?? (await developmentSecret(this.#store)), SEALING_PURPOSE))().catch((error: unknown) => {
      // A database that did not answer is asked again next time.
      this.#sealingKey = null;
      throw error;
    });
    return this.#sealingKey;
  }
}
