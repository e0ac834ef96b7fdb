import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { MFA_TOKEN_TTL_SECONDS, RECOVERY_CODE_COUNT } from "../../src/service/mfa-service.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { type ServiceFixture, serviceFixture } from "../support/service.js";
import { claimsOf, totpCodeOf } from "../support/totp.js";

const context: RequestContext = { ip: "203.0.113.9", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";

async function rejectsWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (error: unknown) => error instanceof TesseraError && error.code === code);
}

describe("MfaService", () => {
  let fixture: ServiceFixture;
  let counter = 0;

  before(async () => {
    fixture = await serviceFixture();
  });
  after(() => fixture.close());

  const code = (uri: string, stepsAhead = 0) => totpCodeOf(uri, stepsAhead, fixture.clock.now());

  async function loggedIn() {
    counter += 1;
    const name = `mfa${counter}`;
    const user = await fixture.service.register(name, PASSWORD, context);
    const tokens = await fixture.service.login(name, PASSWORD, context);
    const principal = await fixture.service.authenticate(tokens.accessToken);
    return { name, user, tokens, principal };
  }

  /** A user with TOTP on; the clock is moved one step past the confirming code. */
  async function enrolled() {
    const account = await loggedIn();
    const enrolment = await fixture.services.mfa.enrollTotp(account.principal);
    const recoveryCodes = await fixture.services.mfa.confirmTotp(account.principal, code(enrolment.uri), context);
    fixture.clock.advance(30);
    return { ...account, uri: enrolment.uri, recoveryCodes };
  }

  async function challenge(name: string) {
    const result = await fixture.service.signIn(name, PASSWORD, context);
    assert.equal(result.kind, "mfa_required");
    return result.kind === "mfa_required" ? result.challenge.mfaToken : assert.fail();
  }

  describe("enrolment", () => {
    it("enrols with a secret whose otpauth code confirms it, and hands out ten recovery codes once", async () => {
      const { principal, user } = await loggedIn();
      const enrolment = await fixture.services.mfa.enrollTotp(principal);
      assert.match(enrolment.secret, /^[A-Z2-7]{32}$/);
      assert.match(enrolment.uri, /^otpauth:\/\/totp\/issuer\.test:mfa\d+\?/);
      assert.match(enrolment.uri, /secret=[A-Z2-7]+/);
      assert.match(enrolment.qrSvg, /^<svg[^>]*>/);
      assert.equal(await fixture.services.mfa.isEnabled(user.id), false, "pending until confirmed");
      await rejectsWith(
        fixture.services.mfa.confirmTotp(principal, code(enrolment.uri, 3), context),
        "invalid_mfa_code",
      );
      const codes = await fixture.services.mfa.confirmTotp(principal, code(enrolment.uri), context);
      assert.equal(codes.length, RECOVERY_CODE_COUNT);
      assert.equal(new Set(codes).size, RECOVERY_CODE_COUNT);
      for (const recovery of codes) assert.match(recovery, /^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{2}$/);
      assert.equal(await fixture.services.mfa.isEnabled(user.id), true);
      const stored = await fixture.store.findTotp(user.id);
      assert.ok(stored && !stored.secretSealed.includes(enrolment.secret), "the secret is sealed at rest");
      const events = await fixture.services.audit.list({ user: user.id, type: "mfa_enabled" });
      assert.equal(events.events.length, 1);
    });

    it("refuses to confirm without a pending enrolment, and to enrol while TOTP is on", async () => {
      const { principal } = await loggedIn();
      await rejectsWith(fixture.services.mfa.confirmTotp(principal, "123456", context), "invalid_request");
      const first = await fixture.services.mfa.enrollTotp(principal);
      const second = await fixture.services.mfa.enrollTotp(principal);
      assert.notEqual(first.secret, second.secret, "enrolling again restarts with a new secret");
      await rejectsWith(fixture.services.mfa.confirmTotp(principal, code(first.uri), context), "invalid_mfa_code");
      await fixture.services.mfa.confirmTotp(principal, code(second.uri), context);
      await rejectsWith(fixture.services.mfa.enrollTotp(principal), "mfa_already_enabled");
      await rejectsWith(fixture.services.mfa.confirmTotp(principal, code(second.uri, 1), context), "invalid_request");
    });
  });

  describe("login with a second factor", () => {
    it("answers mfa_required without tokens, then opens a session with amr pwd+otp kept by refresh", async () => {
      const { name, uri, user } = await enrolled();
      await rejectsWith(fixture.service.login(name, PASSWORD, context), "mfa_required");
      const sessionsBefore = await fixture.store.listActiveSessions(user.id, fixture.clock.now());
      const result = await fixture.service.signIn(name, PASSWORD, context);
      assert.equal(result.kind, "mfa_required");
      if (result.kind !== "mfa_required") return;
      assert.match(result.challenge.mfaToken, /^tsm_[A-Za-z0-9_-]{43}$/);
      assert.equal(result.challenge.expiresIn, MFA_TOKEN_TTL_SECONDS);
      assert.equal(
        (await fixture.store.listActiveSessions(user.id, fixture.clock.now())).length,
        sessionsBefore.length,
        "no session before the second factor",
      );
      await rejectsWith(fixture.service.signIn(name, "wrong password!", context), "invalid_credentials");
      const tokens = await fixture.service.completeMfaLogin(result.challenge.mfaToken, { code: code(uri) }, context);
      assert.deepEqual(claimsOf(tokens.accessToken).amr, ["pwd", "otp"]);
      assert.deepEqual((await fixture.service.authenticate(tokens.accessToken)).claims.amr, ["pwd", "otp"]);
      fixture.clock.advance(60);
      const refreshed = await fixture.service.refresh(tokens.refreshToken, context);
      assert.deepEqual(claimsOf(refreshed.accessToken).amr, ["pwd", "otp"], "refresh keeps the session's amr");
    });

    it("gives a password login amr pwd", async () => {
      const { tokens } = await loggedIn();
      assert.deepEqual(claimsOf(tokens.accessToken).amr, ["pwd"]);
      fixture.clock.advance(1);
      assert.deepEqual(claimsOf((await fixture.service.refresh(tokens.refreshToken, context)).accessToken).amr, [
        "pwd",
      ]);
    });

    it("accepts a code one step early or late, refuses two steps off", async () => {
      const { name, uri } = await enrolled();
      fixture.clock.advance(120);
      const late = await challenge(name);
      await rejectsWith(fixture.service.completeMfaLogin(late, { code: code(uri, -2) }, context), "mfa_login_invalid");
      await rejectsWith(fixture.service.completeMfaLogin(late, { code: code(uri, 2) }, context), "mfa_login_invalid");
      await fixture.service.completeMfaLogin(late, { code: code(uri, -1) }, context);
      const early = await challenge(name);
      await fixture.service.completeMfaLogin(early, { code: code(uri, 1) }, context);
    });

    it("refuses a code replayed, and any other code of the same or an earlier step", async () => {
      const { name, uri, user } = await enrolled();
      const first = await challenge(name);
      const used = code(uri);
      await fixture.service.completeMfaLogin(first, { code: used }, context);
      const second = await challenge(name);
      await rejectsWith(fixture.service.completeMfaLogin(second, { code: used }, context), "mfa_login_invalid");
      await rejectsWith(
        fixture.service.completeMfaLogin(second, { code: code(uri, -1) }, context),
        "mfa_login_invalid",
      );
      fixture.clock.advance(30);
      await fixture.service.completeMfaLogin(second, { code: code(uri) }, context);
      const failures = await fixture.services.audit.list({ user: user.id, type: "mfa_login_failed" });
      assert.deepEqual(
        failures.events.map((event) => event.details?.reason),
        ["replayed_code", "replayed_code"],
      );
    });

    it("lets exactly one of two logins racing with the same code through", async () => {
      const { name, uri } = await enrolled();
      const [first, second] = [await challenge(name), await challenge(name)];
      const same = code(uri);
      const results = await Promise.allSettled([
        fixture.service.completeMfaLogin(first, { code: same }, context),
        fixture.service.completeMfaLogin(second, { code: same }, context),
      ]);
      assert.deepEqual(results.map((result) => result.status).sort(), ["fulfilled", "rejected"]);
    });

    it("uses a recovery code once, in any case and without dashes, and records it", async () => {
      const { name, recoveryCodes, user } = await enrolled();
      const recovery = recoveryCodes[0]!;
      const first = await challenge(name);
      const tokens = await fixture.service.completeMfaLogin(
        first,
        { recoveryCode: recovery.replaceAll("-", "").toUpperCase() },
        context,
      );
      assert.deepEqual(claimsOf(tokens.accessToken).amr, ["pwd", "otp"]);
      const second = await challenge(name);
      await rejectsWith(
        fixture.service.completeMfaLogin(second, { recoveryCode: recovery }, context),
        "mfa_login_invalid",
      );
      await fixture.service.completeMfaLogin(second, { recoveryCode: recoveryCodes[1]! }, context);
      assert.equal(await fixture.store.countUnusedRecoveryCodes(user.id), RECOVERY_CODE_COUNT - 2);
      assert.equal((await fixture.services.audit.list({ user: user.id, type: "recovery_code_used" })).events.length, 2);
    });

    it("uses the mfa_token up with the login it completes", async () => {
      const { name, uri } = await enrolled();
      const token = await challenge(name);
      await fixture.service.completeMfaLogin(token, { code: code(uri) }, context);
      fixture.clock.advance(30);
      await rejectsWith(fixture.service.completeMfaLogin(token, { code: code(uri) }, context), "mfa_login_invalid");
    });

    it("voids the mfa_token after five wrong codes", async () => {
      const { name, uri } = await enrolled();
      const token = await challenge(name);
      const wrong = String((Number(code(uri)) + 1) % 1_000_000).padStart(6, "0");
      for (let i = 0; i < 5; i += 1)
        await rejectsWith(fixture.service.completeMfaLogin(token, { code: wrong }, context), "mfa_login_invalid");
      await rejectsWith(fixture.service.completeMfaLogin(token, { code: code(uri) }, context), "mfa_login_invalid");
      const fresh = await challenge(name);
      await fixture.service.completeMfaLogin(fresh, { code: code(uri) }, context);
    });

    it("expires the mfa_token after five minutes", async () => {
      const { name, uri } = await enrolled();
      const token = await challenge(name);
      fixture.clock.advance(MFA_TOKEN_TTL_SECONDS);
      await rejectsWith(fixture.service.completeMfaLogin(token, { code: code(uri) }, context), "mfa_login_invalid");
    });

    it("refuses a malformed or an unknown mfa_token", async () => {
      const { uri } = await enrolled();
      for (const token of ["junk", `tsm_${"A".repeat(43)}`]) {
        await rejectsWith(fixture.service.completeMfaLogin(token, { code: code(uri) }, context), "mfa_login_invalid");
      }
    });
  });

  describe("disableTotp()", () => {
    it("turns TOTP off with a current code, keeping nothing of the secret and ending no session", async () => {
      const { name, uri, user, principal, tokens } = await enrolled();
      await rejectsWith(
        fixture.services.mfa.disableTotp(principal, { code: code(uri, 3) }, context),
        "invalid_mfa_code",
      );
      await fixture.services.mfa.disableTotp(principal, { code: code(uri) }, context);
      assert.equal(await fixture.store.findTotp(user.id), null);
      assert.equal(await fixture.store.countUnusedRecoveryCodes(user.id), 0);
      await fixture.service.authenticate(tokens.accessToken);
      const plain = await fixture.service.login(name, PASSWORD, context);
      assert.deepEqual(claimsOf(plain.accessToken).amr, ["pwd"]);
      assert.equal((await fixture.services.audit.list({ user: user.id, type: "mfa_disabled" })).events.length, 1);
      await rejectsWith(fixture.services.mfa.disableTotp(principal, { code: code(uri) }, context), "invalid_request");
    });

    it("turns TOTP off with the password; a wrong one is invalid_credentials", async () => {
      const { name, user, principal } = await enrolled();
      await rejectsWith(
        fixture.services.mfa.disableTotp(principal, { password: "not the password" }, context),
        "invalid_credentials",
      );
      assert.equal(await fixture.services.mfa.isEnabled(user.id), true);
      await fixture.services.mfa.disableTotp(principal, { password: PASSWORD }, context);
      assert.equal(await fixture.services.mfa.isEnabled(user.id), false);
      assert.equal((await fixture.service.signIn(name, PASSWORD, context)).kind, "tokens");
    });

    it("refuses a code already used to log in", async () => {
      const { name, uri, principal } = await enrolled();
      const used = code(uri);
      await fixture.service.completeMfaLogin(await challenge(name), { code: used }, context);
      await rejectsWith(fixture.services.mfa.disableTotp(principal, { code: used }, context), "invalid_mfa_code");
    });
  });
});
