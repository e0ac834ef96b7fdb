import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { type ServiceFixture, serviceFixture } from "../support/service.js";
import { startSmtpServer, type TestSmtpServer } from "../support/smtp.js";

const context: RequestContext = { ip: "203.0.113.9", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a brand new passphrase";

async function rejectsWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (error: unknown) => error instanceof TesseraError && error.code === code);
}

describe("AccountService", () => {
  let fixture: ServiceFixture;
  let counter = 0;

  before(async () => {
    fixture = await serviceFixture();
  });
  after(() => fixture.close());

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

describe("AccountService email", () => {
  let fixture: ServiceFixture;
  let smtp: TestSmtpServer;
  let counter = 0;

  before(async () => {
    smtp = await startSmtpServer();
    fixture = await serviceFixture({ smtpUrl: smtp.url, mailFrom: "no-reply@example.test" });
  });
  after(async () => {
    await fixture.close();
    await smtp.close();
  });

  async function mailedToken(): Promise<string> {
    const mail = await smtp.next();
    const body = mail.raw
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    const token = /#verify=(tse_[A-Za-z0-9_-]{43})/.exec(body)?.[1];
    assert.ok(token);
    return token;
  }

  async function signedIn() {
    counter += 1;
    const name = `mail${counter}`;
    const user = await fixture.service.register(name, PASSWORD, context);
    const tokens = await fixture.service.login(name, PASSWORD, context);
    return { user, principal: await fixture.service.authenticate(tokens.accessToken) };
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
    await fixture.services.account.setEmail(principal, `reset-${user.id}@example.test`, context);
    await smtp.next();
    const resetToken = async () => {
      await fixture.services.account.forgotPassword(`reset-${user.id}@example.test`, context);
      const mail = await smtp.next();
      const body = mail.raw
        .replace(/=\r?\n/g, "")
        .replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
      const token = /#reset=(tse_[A-Za-z0-9_-]{43})/.exec(body)?.[1];
      assert.ok(token);
      return token;
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
});
