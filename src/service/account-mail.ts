import { createHash, randomBytes, randomUUID } from "node:crypto";
import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { Store } from "../store/store.js";
import type { Mailer, MailMessage } from "./mailer.js";

/** How long an email verification link works: 24 h, in seconds. */
export const EMAIL_VERIFICATION_TTL_SECONDS = 24 * 3600;

/**
 * Before this moment an unverified address no longer holds: its verification window has passed,
 * so another account may take it.
 */
export function unverifiedClaimsGiveWayBefore(now: Date): Date {
  return addSeconds(now, -EMAIL_VERIFICATION_TTL_SECONDS);
}

/** How long a password reset link works: 30 min, in seconds. */
export const PASSWORD_RESET_TTL_SECONDS = 30 * 60;

/** A single-use token sent by mail: `tse_` and 32 random bytes in base64url. */
export const MAIL_TOKEN = /^tse_[A-Za-z0-9_-]{43}$/;

/** What a mailed link does: the fragment key of `<issuer>/account#<kind>=<token>`. */
export type MailLinkKind = "verify" | "reset";

/** SHA-256 of a mailed token or of the state it is bound to, in hex: what the store keeps. */
export function digestOf(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** A fresh single-use token for a mailed link, and its SHA-256. */
export function newMailToken(): { readonly token: string; readonly tokenHash: string } {
  const token = `tse_${randomBytes(32).toString("base64url")}`;
  return { token, tokenHash: digestOf(token) };
}

/** Dependencies of {@link AccountMail}. */
export interface AccountMailDependencies {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Sends the mail; `null` when no SMTP server is configured. */
  readonly mailer: Mailer | null;
  /** The issuer: links point to `<issuer>/account`. */
  readonly issuer: string;
  /**
   * Also log each mailed link at info level, so a developer can follow it without a mailbox;
   * true in development mode only (no secret, hence never in production).
   */
  readonly logLinks: boolean;
}

/** One account mail about to go out. */
export interface AccountMailing {
  readonly userId: string;
  readonly to: string;
  readonly kind: MailLinkKind;
  readonly token: string;
  /** Builds the mail around the link. */
  readonly compose: (link: string) => Omit<MailMessage, "to">;
  /** More context for the log line of a failed send (never the address or the token). */
  readonly logContext?: Readonly<Record<string, unknown>>;
}

/** The mail of the user's own account: single-use links to `<issuer>/account`, sent after the answer. */
export class AccountMail {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #mailer: Mailer | null;
  readonly #accountPage: string;
  readonly #logLinks: boolean;

  constructor(deps: AccountMailDependencies) {
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#mailer = deps.mailer;
    this.#accountPage = `${deps.issuer.replace(/\/+$/, "")}/account`;
    this.#logLinks = deps.logLinks;
  }

  /** Whether this server sends mail (an SMTP server is configured). */
  get enabled(): boolean {
    return this.#mailer !== null;
  }

  /** Throws `mail_unavailable` when this server sends no mail. */
  requireEnabled(): void {
    if (this.#mailer === null) fail("mail_unavailable", "this server sends no mail");
  }

  /**
   * Stores a verification token (24 h) for the address `emailKey` of the user, bound to it, then
   * mails the link to `to` without waiting for the SMTP server. Throws `mail_unavailable` without SMTP.
   */
  async sendVerification(userId: string, to: string, emailKey: string): Promise<void> {
    this.requireEnabled();
    const { token, tokenHash } = newMailToken();
    const now = this.#clock.now();
    await this.#store.createOneTimeToken({
      id: randomUUID(),
      userId,
      purpose: "email_verification",
      tokenHash,
      boundTo: digestOf(emailKey),
      createdAt: now,
      expiresAt: addSeconds(now, EMAIL_VERIFICATION_TTL_SECONDS),
      usedAt: null,
    });
    this.send({
      userId,
      to,
      kind: "verify",
      token,
      compose: (link) => ({
        subject: "Verify your email address",
        text: `Open this link within 24 hours to verify your email address:\n\n${link}\n\nIf you did not ask for this, ignore this mail.\n`,
      }),
    });
  }

  /**
   * Mails a notice without a link (a change to the account's security) to the user's address, if
   * it is verified and this server sends mail. Returns at once: looking the address up and sending
   * run afterwards, and a failure of either is logged (without the address), never thrown.
   */
  notify(userId: string, notice: Omit<MailMessage, "to">): void {
    const mailer = this.#mailer;
    if (mailer === null) return;
    const warn = (error: unknown) =>
      this.#logger.warn({ userId, err: error instanceof Error ? error.message : "unknown" }, "notice mail not sent");
    // After the change it reports is stored: a failure here is logged, never the request's.
    void this.#store
      .findUserById(userId)
      .then((user) => (user?.email && user.emailVerifiedAt ? mailer.send({ to: user.email, ...notice }) : undefined))
      .catch(warn);
  }

  /**
   * Mails the link of `mailing.token` and returns at once; in development mode the link is logged
   * first, so it can be followed even when the mail does not arrive. A failed send is logged
   * without the link or the address.
   */
  send(mailing: AccountMailing): void {
    const mailer = this.#mailer;
    if (mailer === null) return;
    // The token travels in the fragment, which browsers never send to a server or in a Referer.
    const link = `${this.#accountPage}#${mailing.kind}=${mailing.token}`;
    const what = mailing.kind === "verify" ? "verification" : "password reset";
    if (this.#logLinks)
      this.#logger.info({ userId: mailing.userId, link }, `${what} link (development mode; never logged otherwise)`);
    mailer
      .send({ to: mailing.to, ...mailing.compose(link) })
      .catch((error: unknown) =>
        this.#logger.warn(
          { userId: mailing.userId, ...mailing.logContext, err: error instanceof Error ? error.message : "unknown" },
          `${what} mail not sent`,
        ),
      );
  }
}
