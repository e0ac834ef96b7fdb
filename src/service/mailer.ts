import nodemailer from "nodemailer";

/** One plain-text mail to one recipient. */
export interface MailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

/** Sends account mail. */
export interface Mailer {
  /** Sends `message`; rejects when the SMTP server refuses it or cannot be reached in time. */
  send(message: MailMessage): Promise<void>;
  /** Closes pooled SMTP connections. */
  close(): void;
}

/** How long an SMTP connection, its greeting and each later reply may take, in ms. */
export const SMTP_TIMEOUTS_MS = Object.freeze({ connection: 10_000, greeting: 10_000, socket: 30_000 });

/**
 * A {@link Mailer} over SMTP with nodemailer: `smtpUrl` as `TESSERA_SMTP_URL` (`smtp://` upgrades
 * with STARTTLS when the server offers it; `smtps://` is TLS from the start), every mail from `from`.
 */
export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    connectionTimeout: SMTP_TIMEOUTS_MS.connection,
    greetingTimeout: SMTP_TIMEOUTS_MS.greeting,
    socketTimeout: SMTP_TIMEOUTS_MS.socket,
  });
  return {
    async send(message) {
      await transport.sendMail({ from, to: message.to, subject: message.subject, text: message.text });
    },
    close() {
      transport.close();
    },
  };
}
