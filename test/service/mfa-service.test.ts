import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { createHash, createHmac } from "node:crypto";
import type { Logger } from "../../src/core/logger.js";
import { deriveKey } from "../../src/core/secret-box.js";
import { AccountMail } from "../../src/service/account-mail.js";
import {
  issuerLabel,
  MFA_MAX_FAILURES,
  MFA_TOKEN_TTL_SECONDS,
  MfaService,
  RECOVERY_CODE_COUNT,
} from "../../src/service/mfa-service.js";
import type { AdminActor } from "../../src/service/admin-service.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { createTestDatabase, storesUnderTest, type TestDatabase } from "../support/databases.js";
import { countingHasher, type ServiceFixture, serviceFixture, silentLogger, rejectsWith } from "../support/service.js";
import { startSmtpServer, type TestSmtpServer } from "../support/smtp.js";
import { claimsOf, totpCodeOf } from "../support/totp.js";

const context: RequestContext = { ip: "203.0.113.9", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";

for (const { kind, skip } of await storesUnderTest())
  describe(`MfaService on ${kind}`, { skip }, () => {
    let database: TestDatabase;
    let fixture: ServiceFixture;
    let counter = 0;
    const hasher = countingHasher();

    before(async () => {
      database = await createTestDatabase(kind);
      fixture = await serviceFixture({ databaseUrl: database.url }, hasher);
    });
    after(async () => {
      await fixture?.close();
      await database?.drop();
    });

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
        for (const recovery of codes)
          assert.match(recovery, /^[a-km-np-z2-9]{4}(-[a-km-np-z2-9]{4}){3}$/, "16 symbols of 5 bits: 80 bits");
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

      it("checks the password first, with one argon2 verification whether TOTP is on, off or the password wrong", async () => {
        const { name: withTotp } = await enrolled();
        const { name: without } = await loggedIn();
        const verificationsOf = async (work: () => Promise<unknown>) => {
          const before = hasher.verifications;
          const outcome = await work().then(
            (result) => (result as { kind: string }).kind,
            (error: unknown) => (error instanceof TesseraError ? error.code : "thrown"),
          );
          return { outcome, verifications: hasher.verifications - before };
        };
        const sign = (name: string, password: string) => () => fixture.service.signIn(name, password, context);
        assert.deepEqual(await verificationsOf(sign(withTotp, PASSWORD)), {
          outcome: "mfa_required",
          verifications: 1,
        });
        assert.deepEqual(await verificationsOf(sign(without, PASSWORD)), { outcome: "tokens", verifications: 1 });
        // A wrong password never reaches the second factor: no mfa_token tells that TOTP is on.
        for (const name of [withTotp, without, "nobody-at-all"])
          assert.deepEqual(await verificationsOf(sign(name, "a wrong password")), {
            outcome: "invalid_credentials",
            verifications: 1,
          });
        await fixture.services.admin.disableUser(withTotp);
        assert.deepEqual(await verificationsOf(sign(withTotp, PASSWORD)), {
          outcome: "invalid_credentials",
          verifications: 1,
        });
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
        await rejectsWith(
          fixture.service.completeMfaLogin(late, { code: code(uri, -2) }, context),
          "mfa_login_invalid",
        );
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
        assert.equal(
          (await fixture.services.audit.list({ user: user.id, type: "recovery_code_used" })).events.length,
          2,
        );
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

    describe("AdminService.resetMfa()", () => {
      const admin: AdminActor = { by: "00000000-0000-4000-8000-00000000000a", context };

      it("removes TOTP and the recovery codes, revokes every session and lets the password alone log in", async () => {
        const { name, user, tokens, recoveryCodes } = await enrolled();
        const pending = await challenge(name);
        const other = await fixture.service.completeMfaLogin(
          await challenge(name),
          { recoveryCode: recoveryCodes[0]! },
          context,
        );
        const announced: string[] = [];
        const stop = fixture.services.revocations.onSessionsRevoked((event) => announced.push(...event.sessionIds));
        try {
          const reset = await fixture.services.admin.resetMfa({ id: user.id }, admin);
          assert.equal(reset.totpRemoved, true);
          assert.deepEqual([...reset.revoked].sort(), [tokens.sessionId, other.sessionId].sort());
          assert.deepEqual([...announced].sort(), [...reset.revoked].sort(), "resource servers hear of it");
        } finally {
          stop();
        }
        assert.equal(await fixture.store.findTotp(user.id), null);
        assert.equal(await fixture.store.countUnusedRecoveryCodes(user.id), 0);
        await rejectsWith(fixture.service.refresh(other.refreshToken, context), "session_revoked");
        await rejectsWith(fixture.service.authenticate(tokens.accessToken), "access_token_revoked");
        await rejectsWith(
          fixture.service.completeMfaLogin(pending, { recoveryCode: recoveryCodes[1]! }, context),
          "mfa_login_invalid",
        );
        assert.equal((await fixture.service.signIn(name, PASSWORD, context)).kind, "tokens");
        await fixture.services.audit.flush();
        const events = await fixture.services.audit.list({ user: user.id, type: "mfa_disabled" });
        assert.deepEqual(
          events.events.map((event) => event.details),
          [{ by: admin.by }],
        );
      });

      it("answers the same when TOTP was off, recording no mfa_disabled, and still revokes the sessions", async () => {
        const { user, tokens } = await loggedIn();
        await fixture.services.mfa.enrollTotp(await fixture.service.authenticate(tokens.accessToken));
        const reset = await fixture.services.admin.resetMfa(user.username);
        assert.deepEqual(reset, { totpRemoved: false, revoked: [tokens.sessionId] });
        assert.equal(await fixture.store.findTotp(user.id), null, "a pending enrolment goes too");
        assert.deepEqual(await fixture.services.admin.resetMfa(user.username), { totpRemoved: false, revoked: [] });
        await fixture.services.audit.flush();
        assert.equal((await fixture.services.audit.list({ user: user.id, type: "mfa_disabled" })).events.length, 0);
        await rejectsWith(fixture.services.admin.resetMfa("nobody-at-all"), "user_not_found");
      });

      it("shows whether TOTP is on in the operator's views of a user and of a list", async () => {
        const { name, user } = await enrolled();
        const { user: plain } = await loggedIn();
        assert.deepEqual((await fixture.services.admin.showUser({ id: user.id })).mfa, { totp: true });
        assert.deepEqual((await fixture.services.admin.showUser({ id: plain.id })).mfa, { totp: false });
        const page = await fixture.services.admin.listUsers({ search: "mfa" });
        const listed = new Map(page.users.map((account) => [account.id, account.mfa.totp]));
        assert.equal(listed.get(user.id), true);
        assert.equal(listed.get(plain.id), false);
        await fixture.services.admin.resetMfa(name);
        assert.deepEqual((await fixture.services.admin.showUser({ id: user.id })).mfa, { totp: false });
      });
    });

    describe("what an mfa_token is bound to", () => {
      const admin: AdminActor = { by: "00000000-0000-4000-8000-00000000000b", context };

      it("voids it when the user changes the password", async () => {
        const { name, uri, principal, user } = await enrolled();
        const before = await challenge(name);
        await fixture.services.account.changePassword(principal, PASSWORD, "a whole new password 123", context);
        await rejectsWith(fixture.service.completeMfaLogin(before, { code: code(uri) }, context), "mfa_login_invalid");
        await fixture.services.audit.flush();
        const failures = await fixture.services.audit.list({ user: user.id, type: "mfa_login_failed" });
        assert.equal(failures.events[0]?.details?.reason, "stale_mfa_token");
      });

      it("voids it when an operator sets the password", async () => {
        const { name, uri, user } = await enrolled();
        const before = await challenge(name);
        await fixture.services.admin.setPassword({ id: user.id }, "an operator's new password", admin);
        await rejectsWith(fixture.service.completeMfaLogin(before, { code: code(uri) }, context), "mfa_login_invalid");
      });

      it("voids it when the user is disabled, also once enabled again", async () => {
        const { name, uri, user } = await enrolled();
        const before = await challenge(name);
        await fixture.services.admin.disableUser({ id: user.id }, admin);
        await fixture.services.admin.enableUser({ id: user.id }, admin);
        await rejectsWith(fixture.service.completeMfaLogin(before, { code: code(uri) }, context), "mfa_login_invalid");
        await fixture.service.completeMfaLogin(await challenge(name), { code: code(uri) }, context);
      });

      it("voids it when TOTP is reset and enrolled again", async () => {
        const { name, user } = await enrolled();
        const before = await challenge(name);
        await fixture.services.admin.resetMfa({ id: user.id }, admin);
        const principal = await fixture.service.authenticate(
          (await fixture.service.login(name, PASSWORD, context)).accessToken,
        );
        const enrolment = await fixture.services.mfa.enrollTotp(principal);
        await fixture.services.mfa.confirmTotp(principal, code(enrolment.uri), context);
        fixture.clock.advance(30);
        await rejectsWith(
          fixture.service.completeMfaLogin(before, { code: code(enrolment.uri) }, context),
          "mfa_login_invalid",
        );
        await fixture.service.completeMfaLogin(await challenge(name), { code: code(enrolment.uri) }, context);
      });
    });

    describe("the lock of the second step", () => {
      const wrongOf = (right: string) => String((Number(right) + 500_000) % 1_000_000).padStart(6, "0");

      /** Gives `count` wrong codes, five per mfa_token. */
      async function guess(name: string, uri: string, count: number) {
        let token = await challenge(name);
        for (let i = 0; i < count; i += 1) {
          if (i > 0 && i % 5 === 0) token = await challenge(name);
          await rejectsWith(
            fixture.service.completeMfaLogin(token, { code: wrongOf(code(uri)) }, context),
            "mfa_login_invalid",
          );
        }
      }

      it(`locks after ${MFA_MAX_FAILURES} wrong answers in a row over any tokens, records mfa_locked once, until the password changes`, async () => {
        const { name, uri, user, principal } = await enrolled();
        await guess(name, uri, MFA_MAX_FAILURES);
        const token = await challenge(name);
        await rejectsWith(fixture.service.completeMfaLogin(token, { code: code(uri) }, context), "mfa_login_invalid");
        await guess(name, uri, 3);
        await fixture.services.audit.flush();
        assert.equal((await fixture.services.audit.list({ user: user.id, type: "mfa_locked" })).events.length, 1);
        const reasons = (await fixture.services.audit.list({ user: user.id, type: "mfa_login_failed" })).events.map(
          (event) => event.details?.reason,
        );
        assert.equal(reasons.filter((reason) => reason === "mfa_locked").length, 4, "refused without a check");
        assert.equal(reasons.filter((reason) => reason === "wrong_code").length, MFA_MAX_FAILURES);
        await fixture.services.account.changePassword(principal, PASSWORD, "a whole new password 123", context);
        const unlocked = await fixture.service.signIn(name, "a whole new password 123", context);
        assert.equal(unlocked.kind, "mfa_required");
        if (unlocked.kind === "mfa_required")
          await fixture.service.completeMfaLogin(unlocked.challenge.mfaToken, { code: code(uri) }, context);
      });

      it("counts only wrong answers in a row: a right code or a recovery code starts again", async () => {
        const { name, uri, recoveryCodes } = await enrolled();
        await guess(name, uri, MFA_MAX_FAILURES - 1);
        await fixture.service.completeMfaLogin(await challenge(name), { code: code(uri) }, context);
        fixture.clock.advance(30);
        await guess(name, uri, MFA_MAX_FAILURES - 1);
        await fixture.service.completeMfaLogin(await challenge(name), { recoveryCode: recoveryCodes[0]! }, context);
        await guess(name, uri, MFA_MAX_FAILURES - 1);
        await fixture.service.completeMfaLogin(await challenge(name), { code: code(uri) }, context);
      });

      it("is lifted by an operator's reset of the second factor", async () => {
        const { name, uri, user } = await enrolled();
        await guess(name, uri, MFA_MAX_FAILURES);
        await fixture.services.admin.resetMfa({ id: user.id });
        const principal = await fixture.service.authenticate(
          (await fixture.service.login(name, PASSWORD, context)).accessToken,
        );
        const enrolment = await fixture.services.mfa.enrollTotp(principal);
        await fixture.services.mfa.confirmTotp(principal, code(enrolment.uri), context);
        fixture.clock.advance(30);
        await fixture.service.completeMfaLogin(await challenge(name), { code: code(enrolment.uri) }, context);
        assert.notEqual(enrolment.uri, uri);
      });
    });

    describe("recovery codes and sessions", () => {
      it("stores recovery codes as an HMAC under a key of the server secret, not a plain digest", async () => {
        const { user, recoveryCodes } = await enrolled();
        const stored = await fixture.store.useRecoveryCode(
          user.id,
          createHash("sha256").update(recoveryCodes[0]!.replaceAll("-", "")).digest("hex"),
          fixture.clock.now(),
        );
        assert.equal(stored, false, "a plain SHA-256 of the code matches nothing");
        const key = deriveKey(fixture.services.config.secret!, "recovery-code-digest");
        const keyed = createHmac("sha256", key).update(recoveryCodes[0]!.replaceAll("-", "")).digest("hex");
        assert.equal(await fixture.store.useRecoveryCode(user.id, keyed, fixture.clock.now()), true);
      });

      it("ends every other session when TOTP is turned on, and announces it; the confirming one stays", async () => {
        const { name, principal, tokens } = await loggedIn();
        const other = await fixture.service.login(name, PASSWORD, context);
        const announced: string[] = [];
        const stop = fixture.services.revocations.onSessionsRevoked((event) => announced.push(...event.sessionIds));
        try {
          const enrolment = await fixture.services.mfa.enrollTotp(principal);
          await fixture.services.mfa.confirmTotp(principal, code(enrolment.uri), context);
        } finally {
          stop();
        }
        assert.deepEqual(announced, [other.sessionId]);
        await rejectsWith(fixture.service.refresh(other.refreshToken, context), "session_revoked");
        await fixture.service.authenticate(tokens.accessToken);
        assert.equal((await fixture.store.findSession(other.sessionId))?.revokedReason, "mfa_enabled");
        const enabled = await fixture.services.audit.list({ type: "mfa_enabled", limit: "1" });
        assert.deepEqual(enabled.events[0]?.details, { sessionsRevoked: 1 });
      });
    });

    describe("the issuer in authenticator apps", () => {
      it("is the issuer URL's host name, without a port that would split the label", () => {
        assert.equal(issuerLabel("https://issuer.test:8443/base"), "issuer.test");
        assert.equal(issuerLabel("https://issuer.test"), "issuer.test");
        assert.equal(issuerLabel("no url: here"), "no url here");
      });
    });

    describe("a secret sealed under another server secret", () => {
      it("answers mfa_unavailable, logged at error level once, never a crash", async () => {
        const { name, uri, principal, user } = await enrolled();
        const errors: string[] = [];
        const logger: Logger = { ...silentLogger, error: (_fields, message) => errors.push(message) };
        const otherSecret = new MfaService({
          store: fixture.store,
          clock: fixture.clock,
          hasher,
          audit: fixture.services.audit,
          secret: "another-server-secret-0123456789-abcdefgh",
          issuer: "https://issuer.test",
          logger,
          revocations: fixture.services.revocations,
          mail: new AccountMail({
            store: fixture.store,
            clock: fixture.clock,
            logger,
            mailer: null,
            issuer: "https://issuer.test",
            logLinks: false,
          }),
        });
        for (let i = 0; i < 2; i += 1) {
          const token = await challenge(name);
          await rejectsWith(otherSecret.verifyChallenge(token, { code: code(uri) }, context), "mfa_unavailable");
        }
        await rejectsWith(otherSecret.disableTotp(principal, { code: code(uri) }, context), "mfa_unavailable");
        assert.equal((await fixture.store.findTotp(user.id))?.failures, 0, "no code was checked");
        assert.equal(errors.length, 1);
        assert.match(errors[0]!, /operator must reset/);
      });
    });
  });

describe("MfaService mail", () => {
  let fixture: ServiceFixture;
  let smtp: TestSmtpServer;

  before(async () => {
    smtp = await startSmtpServer();
    fixture = await serviceFixture({ smtpUrl: smtp.url, mailFrom: "no-reply@example.test" });
  });
  after(async () => {
    await fixture?.close();
    await smtp?.close();
  });

  const code = (uri: string, stepsAhead = 0) => totpCodeOf(uri, stepsAhead, fixture.clock.now());
  /** The text of the next mail, quoted-printable undone. */
  async function nextMail(): Promise<{ to: readonly string[]; text: string }> {
    const mail = await smtp.next();
    const text = mail.raw
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
      .replace(/\s+/g, " ");
    return { to: mail.to, text };
  }

  it("tells a verified address when TOTP goes on, a recovery code is used, the second step locks, and TOTP goes off", async () => {
    const address = "mfa-mail@example.test";
    await fixture.service.register("mailed", PASSWORD, context);
    const principal = await fixture.service.authenticate(
      (await fixture.service.login("mailed", PASSWORD, context)).accessToken,
    );
    await fixture.services.account.setEmail(principal, address, context);
    const token = /#verify=(tse_[A-Za-z0-9_-]{43})/.exec((await nextMail()).text)?.[1];
    await fixture.services.account.verifyEmail(token!, context);
    const enrolment = await fixture.services.mfa.enrollTotp(principal);
    const recoveryCodes = await fixture.services.mfa.confirmTotp(principal, code(enrolment.uri), context);
    fixture.clock.advance(30);
    const on = await nextMail();
    assert.deepEqual(on.to, [address]);
    assert.match(on.text, /Two-step login turned on/);
    const challenge = async () => {
      const result = await fixture.service.signIn("mailed", PASSWORD, context);
      return result.kind === "mfa_required" ? result.challenge.mfaToken : assert.fail("TOTP is on");
    };
    await fixture.service.completeMfaLogin(await challenge(), { recoveryCode: recoveryCodes[0]! }, context);
    assert.match((await nextMail()).text, new RegExp(`${RECOVERY_CODE_COUNT - 1} of them are left`));
    const wrong = String((Number(code(enrolment.uri)) + 500_000) % 1_000_000).padStart(6, "0");
    let mfaToken = await challenge();
    for (let i = 0; i < MFA_MAX_FAILURES; i += 1) {
      if (i % 5 === 0) mfaToken = await challenge();
      await rejectsWith(fixture.service.completeMfaLogin(mfaToken, { code: wrong }, context), "mfa_login_invalid");
    }
    const locked = await nextMail();
    assert.match(locked.text, /knows your password/);
    assert.match(locked.text, /Change your password/);
    // A reset through the mailed link lifts the lock and voids the mfa_token issued before it.
    const before = await challenge();
    await fixture.services.account.forgotPassword(address, context);
    const resetToken = /#reset=(tse_[A-Za-z0-9_-]{43})/.exec((await nextMail()).text)?.[1];
    await fixture.services.account.resetPassword(resetToken!, "a whole new password 123", context);
    await rejectsWith(
      fixture.service.completeMfaLogin(before, { code: code(enrolment.uri) }, context),
      "mfa_login_invalid",
    );
    const relogin = await fixture.service.signIn("mailed", "a whole new password 123", context);
    assert.equal(relogin.kind, "mfa_required");
    const session = await fixture.service.completeMfaLogin(
      relogin.kind === "mfa_required" ? relogin.challenge.mfaToken : "",
      { code: code(enrolment.uri) },
      context,
    );
    const principalAfter = await fixture.service.authenticate(session.accessToken);
    await fixture.services.mfa.disableTotp(principalAfter, { password: "a whole new password 123" }, context);
    assert.match((await nextMail()).text, /Two-step login turned off/);
    assert.equal(smtp.received.length, 6, "one mail each, no more");
  });
});
