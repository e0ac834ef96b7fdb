import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { RequestContext } from "../../src/service/request-context.js";
import type { Logger } from "../../src/core/logger.js";
import type { Principal } from "../../src/service/auth-service.js";
import { onTestDatabase, queryRows, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { type ServiceFixture, serviceFixture, rejectsWith } from "../support/service.js";
import { linkTokenOf, startSmtpServer, type TestSmtpServer } from "../support/smtp.js";

const context: RequestContext = { ip: "203.0.113.9", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a brand new passphrase";

/** A logger that keeps every line, for what the service logs. */
function recordingLogger(): Logger & { lines: { level: string; object: object; message: string }[] } {
  const lines: { level: string; object: object; message: string }[] = [];
  const keep = (level: string) => (object: object, message: string) => void lines.push({ level, object, message });
  return { info: keep("info"), warn: keep("warn"), error: keep("error"), lines };
}

/** Waits until `check` holds, for work the service finishes after it returns. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const { kind, skip } of await storesUnderTest()) {
  describe(`AccountService on ${kind}`, { skip }, () => {
    let fixture: ServiceFixture;
    let counter = 0;

    before(async () => {
      fixture = await onTestDatabase(kind, (databaseUrl) => serviceFixture({ databaseUrl }));
    });
    after(() => fixture?.close());

    async function loggedIn() {
      counter += 1;
      const name = `account${counter}`;
      const user = await fixture.service.register(name, PASSWORD, context);
      const tokens = await fixture.service.login(name, PASSWORD, context);
      const principal = await fixture.service.authenticate(tokens.accessToken);
      return { name, user, tokens, principal };
    }

    describe("changePassword()", () => {
      it("sets the new password, keeps this session and revokes and announces the others", async () => {
        const { name, tokens, principal } = await loggedIn();
        const other = await fixture.service.login(name, PASSWORD, context);
        const announced: string[] = [];
        const stop = fixture.services.revocations.onSessionsRevoked((event) => announced.push(...event.sessionIds));
        assert.equal(await fixture.services.account.changePassword(principal, PASSWORD, NEW_PASSWORD, context), 1);
        stop();
        assert.deepEqual(announced, [other.sessionId]);
        await rejectsWith(fixture.service.refresh(other.refreshToken, context), "session_revoked");
        assert.equal((await fixture.store.findSession(other.sessionId))?.revokedReason, "password_changed");
        await fixture.service.refresh(tokens.refreshToken, context);
        await fixture.service.authenticate(tokens.accessToken);
        await rejectsWith(fixture.service.login(name, PASSWORD, context), "invalid_credentials");
        await fixture.service.login(name, NEW_PASSWORD, context);
      });

      it("writes a password_changed event with the count of sessions it revoked, never a password", async () => {
        const { name, user, principal } = await loggedIn();
        await fixture.service.login(name, PASSWORD, context);
        await fixture.service.login(name, PASSWORD, context);
        await fixture.services.account.changePassword(principal, PASSWORD, NEW_PASSWORD, context);
        const page = await fixture.services.audit.list({ user: user.id, type: "password_changed" });
        assert.equal(page.events.length, 1);
        const [event] = page.events;
        assert.equal(event?.sessionId, principal.sessionId);
        assert.deepEqual(event?.details, { by: user.id, sessionsRevoked: 2 });
        assert.ok(!JSON.stringify(page).includes(NEW_PASSWORD) && !JSON.stringify(page).includes(PASSWORD));
      });

      it("refuses a wrong current password as login does, changing nothing and revoking nothing", async () => {
        const { name, principal } = await loggedIn();
        const other = await fixture.service.login(name, PASSWORD, context);
        await rejectsWith(
          fixture.services.account.changePassword(principal, "not the password", NEW_PASSWORD, context),
          "invalid_credentials",
        );
        await fixture.service.refresh(other.refreshToken, context);
        await fixture.service.login(name, PASSWORD, context);
      });

      it("puts the new password through the password policy before checking anything", async () => {
        const { name, principal } = await loggedIn();
        for (const bad of ["short", "x".repeat(1025), "valid length \ud800 lone"]) {
          await rejectsWith(
            fixture.services.account.changePassword(principal, PASSWORD, bad, context),
            "invalid_request",
          );
        }
        await rejectsWith(
          fixture.services.account.changePassword(principal, "lone \udc00 surrogate", NEW_PASSWORD, context),
          "invalid_request",
        );
        await fixture.service.login(name, PASSWORD, context);
      });

      it("refuses a disabled user as a wrong password", async () => {
        const { user, principal } = await loggedIn();
        await fixture.store.disableUser(user.id, fixture.clock.now());
        await rejectsWith(
          fixture.services.account.changePassword(principal, PASSWORD, NEW_PASSWORD, context),
          "invalid_credentials",
        );
      });
    });
  });

  describe(`AccountService email on ${kind}`, { skip }, () => {
    let fixture: ServiceFixture & { readonly database: TestDatabase };
    let smtp: TestSmtpServer;
    let counter = 0;

    before(async () => {
      smtp = await startSmtpServer();
      fixture = await onTestDatabase(kind, (databaseUrl) =>
        serviceFixture({ smtpUrl: smtp.url, mailFrom: "no-reply@example.test", databaseUrl }),
      );
    });
    after(async () => {
      await fixture?.close();
      await smtp?.close();
    });

    async function mailedToken(): Promise<string> {
      return linkTokenOf((await smtp.next()).raw, "verify");
    }

    async function signedIn() {
      counter += 1;
      const name = `mail${counter}`;
      const user = await fixture.service.register(name, PASSWORD, context);
      const tokens = await fixture.service.login(name, PASSWORD, context);
      return { user, principal: await fixture.service.authenticate(tokens.accessToken) };
    }

    /** Sets the principal's address and follows the mailed link: the address is verified. */
    async function verifiedAddress(principal: Principal, address: string): Promise<void> {
      await fixture.services.account.setEmail(principal, address, context);
      await fixture.services.account.verifyEmail(await mailedToken(), context);
    }

    /** Mails a marker through another account: the next mail to arrive is this one's, if none came before. */
    async function nextMailIsMarker(label: string): Promise<void> {
      const marker = `marker-${label}@example.test`;
      await fixture.services.account.setEmail((await signedIn()).principal, marker, context);
      assert.deepEqual((await smtp.next()).to, [marker], "no mail before the marker");
    }

    it("lets a verification link work for 24 hours, not longer", async () => {
      const { principal } = await signedIn();
      await fixture.services.account.setEmail(principal, "late@example.test", context);
      const token = await mailedToken();
      fixture.clock.advance(24 * 3600);
      await rejectsWith(fixture.services.account.verifyEmail(token, context), "email_token_invalid");
      await fixture.services.account.setEmail(principal, "late@example.test", context);
      const fresh = await mailedToken();
      fixture.clock.advance(24 * 3600 - 1);
      await fixture.services.account.verifyEmail(fresh, context);
      assert.equal((await fixture.services.account.emailStatus(principal)).emailVerified, true);
    });

    it("lets a reset link work once within 30 minutes, and revokes every session", async () => {
      const { user, principal } = await signedIn();
      await verifiedAddress(principal, `reset-${user.id}@example.test`);
      const resetToken = async () => {
        await fixture.services.account.forgotPassword(`reset-${user.id}@example.test`, context);
        return linkTokenOf((await smtp.next()).raw, "reset");
      };
      const late = await resetToken();
      fixture.clock.advance(30 * 60);
      await rejectsWith(fixture.services.account.resetPassword(late, NEW_PASSWORD, context), "reset_token_invalid");
      const token = await resetToken();
      fixture.clock.advance(30 * 60 - 1);
      await fixture.services.account.resetPassword(token, NEW_PASSWORD, context);
      await rejectsWith(
        fixture.services.account.resetPassword(token, "another passphrase", context),
        "reset_token_invalid",
      );
      await fixture.service.login(user.username, NEW_PASSWORD, context);
      assert.equal((await fixture.store.findSession(principal.sessionId))?.revokedReason, "password_changed");
      const page = await fixture.services.audit.list({ user: user.id, type: "password_reset" });
      assert.deepEqual(page.events[0]?.details, { sessionsRevoked: 1 });
    });

    it("keeps only the token's SHA-256 and records the change without the address", async () => {
      const { user, principal } = await signedIn();
      await fixture.services.account.setEmail(principal, "hashed@example.test", context);
      const token = await mailedToken();
      assert.equal(await fixture.store.consumeOneTimeToken(token, "email_verification", fixture.clock.now()), null);
      const page = await fixture.services.audit.list({ user: user.id, type: "email_changed" });
      assert.equal(page.events.length, 1);
      assert.ok(!JSON.stringify(page).includes("hashed@example.test"));
    });

    describe("register() with an email address", () => {
      it("stores the address unverified with the user and mails a link that verifies it", async () => {
        counter += 1;
        const user = await fixture.service.register(`reg${counter}`, PASSWORD, context, {
          email: `Reg${counter}@Example.test`,
        });
        const stored = await fixture.store.findUserById(user.id);
        assert.deepEqual(
          [stored?.email, stored?.emailKey, stored?.emailVerifiedAt ?? null],
          [`Reg${counter}@Example.test`, `reg${counter}@example.test`, null],
        );
        const mail = await smtp.next();
        // The envelope's domain is case-insensitive: the SMTP server may fold it.
        assert.deepEqual(
          mail.to.map((to) => to.toLowerCase()),
          [`reg${counter}@example.test`],
        );
        await fixture.services.account.verifyEmail(linkTokenOf(mail.raw, "verify"), context);
        assert.ok((await fixture.store.findUserById(user.id))?.emailVerifiedAt);
      });

      it("refuses an address another account has, whatever its case, and creates no user", async () => {
        counter += 1;
        await fixture.service.register(`owner${counter}`, PASSWORD, context, { email: `owned${counter}@example.test` });
        await smtp.next();
        await rejectsWith(
          fixture.service.register(`squatter${counter}`, PASSWORD, context, { email: `OWNED${counter}@example.test` }),
          "email_taken",
        );
        assert.equal(await fixture.store.findUserByUsername(`squatter${counter}`), null, "no user without its address");
        // The name is still free: the failed registration left nothing behind.
        await fixture.service.register(`squatter${counter}`, PASSWORD, context);
      });

      it("answers username_taken before email_taken, and a bad address before creating anything", async () => {
        counter += 1;
        await fixture.service.register(`taken${counter}`, PASSWORD, context, { email: `taken${counter}@example.test` });
        await smtp.next();
        await rejectsWith(
          fixture.service.register(`taken${counter}`, PASSWORD, context, { email: `taken${counter}@example.test` }),
          "username_taken",
        );
        await rejectsWith(
          fixture.service.register(`fresh${counter}`, PASSWORD, context, { email: "not an address" }),
          "invalid_request",
        );
        assert.equal(await fixture.store.findUserByUsername(`fresh${counter}`), null);
      });
    });

    describe("edge cases of the account flow", () => {
      it("keeps a verified address verified, and mails nothing, when it is set again", async () => {
        const { user, principal } = await signedIn();
        const address = `kept-${user.id}@example.test`;
        await fixture.services.account.setEmail(principal, address, context);
        await fixture.services.account.verifyEmail(await mailedToken(), context);
        await fixture.services.account.setEmail(principal, address.toUpperCase(), context);
        assert.deepEqual(await fixture.services.account.emailStatus(principal), {
          email: address,
          emailVerified: true,
          mailEnabled: true,
        });
        // The next mail is the one this sends; none came from setting the same address again.
        await fixture.services.account.setEmail(principal, `other-${user.id}@example.test`, context);
        assert.deepEqual((await smtp.next()).to, [`other-${user.id}@example.test`]);
      });

      it("sends a fresh link for an address set again while unverified; the earlier link still works", async () => {
        const { user, principal } = await signedIn();
        const address = `again-${user.id}@example.test`;
        await fixture.services.account.setEmail(principal, address, context);
        const first = await mailedToken();
        await fixture.services.account.setEmail(principal, address, context);
        const second = await mailedToken();
        assert.notEqual(second, first);
        await fixture.services.account.verifyEmail(first, context);
        assert.equal((await fixture.services.account.emailStatus(principal)).emailVerified, true);
        await rejectsWith(fixture.services.account.verifyEmail(first, context), "email_token_invalid");
      });

      it("never lets a link for an earlier address verify it, even after the account comes back to it", async () => {
        const { user, principal } = await signedIn();
        const [a, b] = [`a-${user.id}@example.test`, `b-${user.id}@example.test`];
        await fixture.services.account.setEmail(principal, a, context);
        const linkForA = await mailedToken();
        await fixture.services.account.setEmail(principal, b, context);
        const linkForB = await mailedToken();
        await fixture.services.account.setEmail(principal, a, context);
        const newLinkForA = await mailedToken();
        await rejectsWith(fixture.services.account.verifyEmail(linkForA, context), "email_token_invalid");
        await rejectsWith(fixture.services.account.verifyEmail(linkForB, context), "email_token_invalid");
        assert.equal((await fixture.services.account.emailStatus(principal)).emailVerified, false);
        await fixture.services.account.verifyEmail(newLinkForA, context);
        assert.equal((await fixture.services.account.emailStatus(principal)).emailVerified, true);
      });

      it("voids a reset link mailed to an address the account has since left", async () => {
        const { user, principal } = await signedIn();
        const [old, replacement] = [`left-${user.id}@example.test`, `new-${user.id}@example.test`];
        await verifiedAddress(principal, old);
        await fixture.services.account.forgotPassword(old, context);
        const sentToOld = linkTokenOf((await smtp.next()).raw, "reset");
        await fixture.services.account.setEmail(principal, replacement, context);
        await smtp.next();
        await rejectsWith(
          fixture.services.account.resetPassword(sentToOld, NEW_PASSWORD, context),
          "reset_token_invalid",
        );
        await fixture.service.login(user.username, PASSWORD, context);
      });

      it("voids a reset link once the password changes, and refuses a reset for a disabled user", async () => {
        const { user, principal } = await signedIn();
        const address = `guarded-${user.id}@example.test`;
        await verifiedAddress(principal, address);
        await fixture.services.account.forgotPassword(address, context);
        const beforeChange = linkTokenOf((await smtp.next()).raw, "reset");
        await fixture.services.account.changePassword(principal, PASSWORD, NEW_PASSWORD, context);
        await rejectsWith(
          fixture.services.account.resetPassword(beforeChange, "a third passphrase", context),
          "reset_token_invalid",
        );
        await fixture.services.account.forgotPassword(address, context);
        const beforeDisable = linkTokenOf((await smtp.next()).raw, "reset");
        await fixture.store.disableUser(user.id, fixture.clock.now());
        await rejectsWith(
          fixture.services.account.resetPassword(beforeDisable, "a third passphrase", context),
          "reset_token_invalid",
        );
        await fixture.services.account.forgotPassword(address, context);
        // No mail for a disabled account: the next one to arrive is the marker's.
        await nextMailIsMarker(user.id);
        await fixture.store.enableUser(user.id);
        await fixture.service.login(user.username, NEW_PASSWORD, context);
      });
    });

    describe("rules of the account's address", () => {
      it("mails no reset link to an unverified address, as for an unknown one, until it is verified", async () => {
        const { user, principal } = await signedIn();
        const address = `unproven-${user.id}@example.test`;
        await fixture.services.account.setEmail(principal, address, context);
        const link = await mailedToken();
        assert.equal(await fixture.services.account.forgotPassword(address, context), undefined);
        assert.equal(
          await fixture.services.account.forgotPassword(`nobody-${user.id}@example.test`, context),
          undefined,
        );
        await nextMailIsMarker(`unproven-${user.id}`);
        const stored = await queryRows(
          fixture.database,
          `select id from one_time_tokens where user_id = '${user.id}' and purpose = 'password_reset'`,
        );
        assert.deepEqual(stored, [], "no reset token stored");
        await fixture.services.account.verifyEmail(link, context);
        await fixture.services.account.forgotPassword(address, context);
        const reset = await smtp.next();
        assert.deepEqual(reset.to, [address]);
        await fixture.services.account.resetPassword(linkTokenOf(reset.raw, "reset"), NEW_PASSWORD, context);
        await fixture.service.login(user.username, NEW_PASSWORD, context);
      });

      it("lets an unverified address set 24 hours ago or more go to another account, voiding the first one's links", async () => {
        const squatter = await signedIn();
        const owner = await signedIn();
        const address = `claimed-${squatter.user.id}@example.test`;
        await fixture.services.account.setEmail(squatter.principal, address, context);
        const squattersLink = await mailedToken();
        // Within the window (on PostgreSQL and MySQL the clock also runs on while the test does).
        fixture.clock.advance(24 * 3600 - 60);
        await rejectsWith(fixture.services.account.setEmail(owner.principal, address, context), "email_taken");
        await rejectsWith(
          fixture.service.register(`early${counter}`, PASSWORD, context, { email: address }),
          "email_taken",
        );
        fixture.clock.advance(61);
        await fixture.services.account.setEmail(owner.principal, address.toUpperCase(), context);
        const ownersLink = await mailedToken();
        assert.deepEqual(await fixture.services.account.emailStatus(squatter.principal), {
          email: null,
          emailVerified: false,
          mailEnabled: true,
        });
        await rejectsWith(fixture.services.account.verifyEmail(squattersLink, context), "email_token_invalid");
        await fixture.services.account.verifyEmail(ownersLink, context);
        assert.deepEqual(await fixture.services.account.emailStatus(owner.principal), {
          email: address.toUpperCase(),
          emailVerified: true,
          mailEnabled: true,
        });
        // Now verified, it holds for good.
        fixture.clock.advance(48 * 3600);
        await rejectsWith(fixture.services.account.setEmail(squatter.principal, address, context), "email_taken");
      });

      it("never extends an unverified address's 24 hours by setting it again: the first setting's window runs out", async () => {
        const squatter = await signedIn();
        const owner = await signedIn();
        const address = `reposted-${squatter.user.id}@example.test`;
        await fixture.services.account.setEmail(squatter.principal, address, context);
        const firstLink = await mailedToken();
        const firstSetAt = (await fixture.store.findUserById(squatter.user.id))?.emailSetAt?.getTime();
        const links = [firstLink];
        for (const hours of [12, 11]) {
          fixture.clock.advance(hours * 3600);
          await fixture.services.account.setEmail(squatter.principal, address, context);
          links.push(await mailedToken());
          assert.equal(
            (await fixture.store.findUserById(squatter.user.id))?.emailSetAt?.getTime(),
            firstSetAt,
            "still set when it was first",
          );
        }
        assert.equal(new Set(links).size, 3, "a new link for each setting");
        // At +23 h the first setting's window still holds the address.
        await rejectsWith(fixture.services.account.setEmail(owner.principal, address, context), "email_taken");
        fixture.clock.advance(3600 + 1);
        await fixture.services.account.setEmail(owner.principal, address, context);
        const ownersLink = await mailedToken();
        assert.equal((await fixture.services.account.emailStatus(squatter.principal)).email, null);
        for (const link of links)
          await rejectsWith(fixture.services.account.verifyEmail(link, context), "email_token_invalid");
        await fixture.services.account.verifyEmail(ownersLink, context);
        assert.equal((await fixture.services.account.emailStatus(owner.principal)).emailVerified, true);
      });

      it("restarts the 24 hours when an account sets another address", async () => {
        const holder = await signedIn();
        const newcomer = await signedIn();
        const [first, second] = [`first-${holder.user.id}@example.test`, `second-${holder.user.id}@example.test`];
        await fixture.services.account.setEmail(holder.principal, first, context);
        await mailedToken();
        fixture.clock.advance(12 * 3600);
        await fixture.services.account.setEmail(holder.principal, second, context);
        await mailedToken();
        fixture.clock.advance(23 * 3600);
        await rejectsWith(fixture.services.account.setEmail(newcomer.principal, second, context), "email_taken");
        fixture.clock.advance(3600 + 1);
        await fixture.services.account.setEmail(newcomer.principal, second, context);
        assert.equal((await fixture.store.findUserByEmailKey(second))?.id, newcomer.user.id);
        await mailedToken();
      });

      it("lets a registration take an unverified address past its window; a verified one always holds", async () => {
        const squatter = await signedIn();
        const holder = await signedIn();
        const [stale, proven] = [`stale-${squatter.user.id}@example.test`, `proven-${holder.user.id}@example.test`];
        await fixture.services.account.setEmail(squatter.principal, stale, context);
        const squattersLink = await mailedToken();
        await verifiedAddress(holder.principal, proven);
        fixture.clock.advance(24 * 3600 + 1);
        counter += 1;
        await rejectsWith(
          fixture.service.register(`newcomer${counter}`, PASSWORD, context, { email: proven }),
          "email_taken",
        );
        const newcomer = await fixture.service.register(`newcomer${counter}`, PASSWORD, context, { email: stale });
        assert.equal((await fixture.store.findUserByEmailKey(stale))?.id, newcomer.id);
        assert.equal((await fixture.services.account.emailStatus(squatter.principal)).email, null);
        assert.equal((await fixture.services.account.emailStatus(holder.principal)).emailVerified, true);
        await rejectsWith(fixture.services.account.verifyEmail(squattersLink, context), "email_token_invalid");
        const newcomersLink = await mailedToken();
        await fixture.services.account.verifyEmail(newcomersLink, context);
        assert.ok((await fixture.store.findUserById(newcomer.id))?.emailVerifiedAt);
      });

      it("keeps a link of a disabled account unused: it answers as an invalid link and works once enabled", async () => {
        const { user, principal } = await signedIn();
        await fixture.services.account.setEmail(principal, `disabled-${user.id}@example.test`, context);
        const link = await mailedToken();
        await fixture.store.disableUser(user.id, fixture.clock.now());
        await rejectsWith(fixture.services.account.verifyEmail(link, context), "email_token_invalid");
        assert.equal((await fixture.store.findUserById(user.id))?.emailVerifiedAt, null);
        const page = await fixture.services.audit.list({ user: user.id, type: "email_verified" });
        assert.equal(page.events.length, 0);
        await fixture.store.enableUser(user.id);
        await fixture.services.account.verifyEmail(link, context);
        assert.ok((await fixture.store.findUserById(user.id))?.emailVerifiedAt, "the link was still unused");
      });
    });
  });
}

for (const { kind, skip } of await storesUnderTest()) {
  describe(`register() with an email address and no mail on ${kind}`, { skip }, () => {
    let fixture: ServiceFixture;
    before(async () => {
      fixture = await onTestDatabase(kind, (databaseUrl) => serviceFixture({ databaseUrl }));
    });
    after(() => fixture?.close());

    it("answers mail_unavailable without an SMTP server and creates no user", async () => {
      await rejectsWith(
        fixture.service.register("nomail", PASSWORD, context, { email: "nomail@example.test" }),
        "mail_unavailable",
      );
      assert.equal(await fixture.store.findUserByUsername("nomail"), null);
      await fixture.service.register("nomail", PASSWORD, context);
    });
  });
}

describe("account mail links in the log", () => {
  const unreachableSmtp = "smtp://127.0.0.1:9/";

  async function withServer(options: { secret?: string; smtpUrl: string }) {
    const logger = recordingLogger();
    const fixture = await serviceFixture({ ...options, mailFrom: "no-reply@example.test" }, undefined, { logger });
    return { logger, fixture };
  }

  const linkLines = (logger: ReturnType<typeof recordingLogger>) =>
    logger.lines.filter((line) => JSON.stringify(line).includes("tse_"));

  it("logs each link at info level in development mode, even when no SMTP server takes the mail", async () => {
    const { logger, fixture } = await withServer({ secret: "", smtpUrl: unreachableSmtp });
    try {
      assert.equal(fixture.services.config.developmentMode, true);
      const user = await fixture.service.register("devuser", PASSWORD, context, { email: "dev@example.test" });
      await eventually(() => logger.lines.some((line) => line.level === "warn"), "the failed send");
      const [verify] = linkLines(logger);
      assert.equal(verify?.level, "info");
      const link = (verify?.object as { link?: string }).link ?? "";
      assert.match(link, /^https:\/\/issuer\.test\/account#verify=tse_/);
      // The logged link works.
      await fixture.services.account.verifyEmail(link.slice(link.indexOf("=") + 1), context);
      assert.ok((await fixture.store.findUserById(user.id))?.emailVerifiedAt);
      await fixture.services.account.forgotPassword("dev@example.test", context);
      await eventually(() => linkLines(logger).length === 2, "the reset link");
      assert.match(String((linkLines(logger)[1]?.object as { link?: string }).link), /#reset=tse_/);
      // The failed sends say so without the link or the address.
      const warnings = logger.lines.filter((line) => line.level === "warn");
      assert.ok(warnings.length >= 1);
      for (const warning of warnings) assert.ok(!/tse_|dev@example/.test(JSON.stringify(warning)));
    } finally {
      await fixture.close();
    }
  });

  it("never logs a link outside development mode, and a failed mail never fails the registration", async () => {
    const { logger, fixture } = await withServer({ smtpUrl: unreachableSmtp });
    try {
      assert.equal(fixture.services.config.developmentMode, false);
      const user = await fixture.service.register("produser", PASSWORD, context, { email: "prod@example.test" });
      assert.ok(await fixture.store.findUserById(user.id));
      await eventually(() => logger.lines.some((line) => line.level === "warn"), "the failed send");
      // Resets go to verified addresses only; this one's link was never seen, so the store verifies it.
      assert.ok(await fixture.store.markEmailVerified(user.id, "prod@example.test", fixture.clock.now()));
      await fixture.services.account.forgotPassword("prod@example.test", context);
      await eventually(() => logger.lines.filter((line) => line.level === "warn").length === 2, "the failed reset");
      assert.deepEqual(linkLines(logger), []);
      assert.ok(!JSON.stringify(logger.lines).includes("prod@example.test"));
    } finally {
      await fixture.close();
    }
  });
});
