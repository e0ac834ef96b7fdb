import { randomUUID } from "node:crypto";
import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { LIMITS, type Store } from "../store/store.js";
import {
  type AccountMail,
  digestOf,
  MAIL_TOKEN,
  newMailToken,
  PASSWORD_RESET_TTL_SECONDS,
  unverifiedClaimsGiveWayBefore,
} from "./account-mail.js";
import type { AuditTrail } from "./audit-trail.js";
import type { Principal } from "./auth-service.js";
import { checkNewPassword, checkPasswordText } from "./credential-policy.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { RequestContext } from "./request-context.js";
import type { SessionRevocations } from "./session-revocations.js";

/** Longest email address accepted, in characters (RFC 5321's path limit less the brackets). */
export const EMAIL_LENGTH = Object.freeze({ max: LIMITS.email });

// One @, a non-empty local part of at most 64 characters, a dotted domain; no spaces, controls or brackets.
const EMAIL_SHAPE = /^[^\s@<>()[\]\\,;:"\p{Cc}]{1,64}@[^\s@<>()[\]\\,;:"\p{Cc}]+\.[^\s@<>()[\]\\,;:"\p{Cc}.]+$/u;

/** An email address as stored and its unique key (compared case-insensitively). */
export interface CheckedEmail {
  readonly email: string;
  readonly key: string;
}

/** Checks an email address; throws `invalid_request` for one that is not a plain address. */
export function checkEmail(email: string): CheckedEmail {
  const normalized = email.normalize("NFC");
  if (normalized.length > EMAIL_LENGTH.max || !EMAIL_SHAPE.test(normalized))
    fail("invalid_request", "email must be an address such as name@example.com");
  return { email: normalized, key: normalized.toLowerCase() };
}

/** The principal's email address and whether the server sends mail, for `/auth/me`. */
export interface EmailStatus {
  readonly email: string | null;
  readonly emailVerified: boolean;
  /** Whether email features are available (an SMTP server is configured). */
  readonly mailEnabled: boolean;
}

/** Dependencies of {@link AccountService}. */
export interface AccountServiceDependencies {
  readonly store: Store;
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly revocations: SessionRevocations;
  readonly audit: AuditTrail;
  readonly logger: Logger;
  /** The account's mail: verification and reset links. */
  readonly mail: AccountMail;
}

/** The end user's own account: changing the password, the email address and its verification. */
export class AccountService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #hasher: PasswordHasher;
  readonly #revocations: SessionRevocations;
  readonly #audit: AuditTrail;
  readonly #logger: Logger;
  readonly #mail: AccountMail;

  constructor(deps: AccountServiceDependencies) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#revocations = deps.revocations;
    this.#audit = deps.audit;
    this.#logger = deps.logger;
    this.#mail = deps.mail;
  }

  /**
   * Replaces the principal's password after checking the current one, then revokes (and
   * announces) every other session of the user; the principal's session stays open. Returns how
   * many sessions were revoked. Records `password_changed`. Throws `invalid_request` for a new
   * password outside the policy, `invalid_credentials` for a wrong current password (as login
   * does), `access_token_revoked` when the user is gone.
   */
  async changePassword(
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    context: RequestContext,
  ): Promise<number> {
    checkPasswordText(currentPassword);
    checkNewPassword(newPassword);
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    const valid = await this.#hasher.verify(user.passwordHash, currentPassword);
    // A disabled account answers as a wrong password does; its sessions are revoked anyway.
    if (!valid || user.disabledAt) fail("invalid_credentials", "the current password is wrong");
    // Only over the hash the current password was checked against: a change made meanwhile wins.
    if (!(await this.#store.setPasswordHash(user.id, await this.#hasher.hash(newPassword), user.passwordHash)))
      fail("invalid_credentials", "the current password is wrong");
    const revoked = await this.#revocations.revokeUserSessions(user.id, "password_changed", principal.sessionId);
    await this.#audit.record(
      "password_changed",
      context,
      { userId: user.id, sessionId: principal.sessionId },
      { by: user.id, sessionsRevoked: revoked.length },
    );
    return revoked.length;
  }

  /** The principal's address, whether it is verified, and whether this server sends mail. */
  async emailStatus(principal: Principal): Promise<EmailStatus> {
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    return {
      email: user.email ?? null,
      emailVerified: Boolean(user.email && user.emailVerifiedAt),
      mailEnabled: this.#mail.enabled,
    };
  }

  /**
   * Sets the principal's email address, unverified, and mails a single-use verification link
   * (24 h) to it; the mail goes out after this returns. A new address voids the verification and
   * reset links sent to earlier ones; the address the account already has, verified, changes
   * nothing and mails nothing; unverified, it gets a new link but keeps the time it was first set,
   * so its claim is not extended. Another account's claim on the address gives way when it is
   * unverified and older than the verification window: that account loses the address and its
   * links. Records `email_changed`. Throws `mail_unavailable` without SMTP, `invalid_request` for
   * a malformed address, `email_taken` when another account holds it (verified, or set within the
   * window), `access_token_revoked` when the user is gone.
   */
  async setEmail(principal: Principal, email: string, context: RequestContext): Promise<void> {
    this.#mail.requireEnabled();
    const checked = checkEmail(email);
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    // Setting it again must not take the verification away from an address already proven.
    if (user.emailKey === checked.key && user.emailVerifiedAt) return;
    const now = this.#clock.now();
    const releaseUnverifiedBefore = unverifiedClaimsGiveWayBefore(now);
    const claim = { email: checked.email, emailKey: checked.key, setAt: now, releaseUnverifiedBefore };
    if (!(await this.#store.setUserEmail(user.id, claim)))
      fail("email_taken", "that address belongs to another account");
    // Links sent to another address stop working, even if the account comes back to it later: a
    // mailbox the user is leaving (a former employer's) must not keep a way into the account.
    if (user.emailKey !== checked.key) {
      await this.#store.voidOneTimeTokens(user.id, "email_verification", now);
      await this.#store.voidOneTimeTokens(user.id, "password_reset", now);
    }
    await this.#mail.sendVerification(user.id, checked.email, checked.key);
    await this.#audit.record("email_changed", context, { userId: user.id, sessionId: principal.sessionId });
  }

  /**
   * Mails a single-use password reset link (30 min) to the account with this address, if there is
   * one, it is enabled, and the address is verified: an unverified address may be a typo or
   * someone else's. Known and unknown addresses get the same answer after the same work: one
   * lookup and a new token; storing the token and sending the mail happen after this returns.
   * Throws `mail_unavailable` without SMTP, `invalid_request` for a malformed address.
   */
  async forgotPassword(email: string, context: RequestContext): Promise<void> {
    this.#mail.requireEnabled();
    const checked = checkEmail(email);
    const user = await this.#store.findUserByEmailKey(checked.key);
    const { token, tokenHash } = newMailToken();
    // The same hashing work for unknown addresses, against nothing.
    const boundTo = digestOf(user?.passwordHash ?? token);
    if (!user || user.disabledAt || !user.email || !user.emailVerifiedAt) return;
    const now = this.#clock.now();
    const to = user.email;
    // Not awaited, and started only after this request's answer is on its way: the answer must
    // not wait for the insert or the SMTP server, which unknown addresses would not.
    setImmediate(() => this.#sendReset(user.id, to, token, { tokenHash, boundTo, now }, context));
  }

  #sendReset(
    userId: string,
    to: string,
    token: string,
    stored: { tokenHash: string; boundTo: string; now: Date },
    context: RequestContext,
  ): void {
    const { tokenHash, boundTo, now } = stored;
    void this.#store
      .createOneTimeToken({
        id: randomUUID(),
        userId,
        purpose: "password_reset",
        tokenHash,
        boundTo,
        createdAt: now,
        expiresAt: addSeconds(now, PASSWORD_RESET_TTL_SECONDS),
        usedAt: null,
      })
      .then(() =>
        this.#mail.send({
          userId,
          to,
          kind: "reset",
          token,
          logContext: { ip: context.ip },
          compose: (link) => ({
            subject: "Reset your password",
            text: `Open this link within 30 minutes to choose a new password:\n\n${link}\n\nIf you did not ask for this, ignore this mail: your password stays as it is.\n`,
          }),
        }),
      )
      .catch((error: unknown) =>
        this.#logger.warn(
          { userId, ip: context.ip, err: error instanceof Error ? error.message : "unknown" },
          "password reset mail not sent",
        ),
      );
  }

  /**
   * Sets a new password with a mailed reset token, which is used up, and revokes (and announces)
   * every session of the user. Records `password_reset`. Throws `invalid_request` for a password
   * outside the policy, `reset_token_invalid` for a token that is malformed, unknown, used,
   * expired, or sent before the password last changed.
   */
  async resetPassword(token: string, password: string, context: RequestContext): Promise<void> {
    checkNewPassword(password);
    const invalid = () => fail("reset_token_invalid", "the reset link is not valid");
    if (!MAIL_TOKEN.test(token)) invalid();
    const used = await this.#store.consumeOneTimeToken(digestOf(token), "password_reset", this.#clock.now());
    if (!used) return invalid();
    const user = await this.#store.findUserById(used.userId);
    // Bound to the password hash it was sent for: any later change, by any route, voids it.
    if (!user || user.disabledAt || digestOf(user.passwordHash) !== used.boundTo) return invalid();
    // Over the hash the token is bound to only: a password change racing the reset voids it.
    if (!(await this.#store.setPasswordHash(user.id, await this.#hasher.hash(password), user.passwordHash))) invalid();
    const revoked = await this.#revocations.revokeUserSessions(user.id, "password_changed");
    await this.#audit.record("password_reset", context, { userId: user.id }, { sessionsRevoked: revoked.length });
  }

  /**
   * Marks the address of a verification token verified; the token is used up. Records
   * `email_verified`. Throws `email_token_invalid` for a token that is malformed, unknown, used,
   * expired, of a disabled account (the token then stays unused), or for an address the account
   * has changed since.
   */
  async verifyEmail(token: string, context: RequestContext): Promise<void> {
    const invalid = () => fail("email_token_invalid", "the verification link is not valid");
    if (!MAIL_TOKEN.test(token)) invalid();
    const now = this.#clock.now();
    const used = await this.#store.consumeOneTimeToken(digestOf(token), "email_verification", now, {
      enabledUsersOnly: true,
    });
    if (!used) return invalid();
    const user = await this.#store.findUserById(used.userId);
    if (!user?.emailKey || digestOf(user.emailKey) !== used.boundTo) return invalid();
    if (!(await this.#store.markEmailVerified(user.id, user.emailKey, now))) invalid();
    await this.#audit.record("email_verified", context, { userId: user.id });
  }
}
