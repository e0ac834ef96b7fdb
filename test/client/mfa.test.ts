import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAuthClient, isAuthClientError, memoryStorage } from "../../src/client/index.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { claimsOf, totpCodeOf } from "../support/totp.js";

const PASSWORD = "correct horse battery staple";

describe("AuthClient and TOTP", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const clientFor = () => createAuthClient({ baseUrl: server.url, storage: memoryStorage() });

  it("enrols, confirms, then logs in through mfa_required and completeMfa, and turns TOTP off", async () => {
    await registerAndLogin(server.url, "two-factor");
    const owner = clientFor();
    await owner.login("two-factor", PASSWORD);
    const enrolment = await owner.enrollTotp();
    assert.match(enrolment.uri, /^otpauth:\/\/totp\//);
    assert.match(enrolment.qrSvg, /^<svg/);
    await assert.rejects(owner.confirmTotp(totpCodeOf(enrolment.uri, 5)), (error) =>
      isAuthClientError(error, "invalid_mfa_code"),
    );
    const { recoveryCodes } = await owner.confirmTotp(totpCodeOf(enrolment.uri));
    assert.equal(recoveryCodes.length, 10);

    const browser = clientFor();
    const refusal = await browser.login("two-factor", PASSWORD).then(
      () => assert.fail("login needs a second factor"),
      (error: unknown) => error,
    );
    assert.ok(isAuthClientError(refusal, "mfa_required"));
    assert.match(refusal.mfaToken ?? "", /^tsm_/);
    assert.equal(refusal.expiresIn, 300);
    assert.equal(await browser.getAccessToken(), null, "no tokens before the second factor");
    // The confirming code's step is used: the next step's code completes the login.
    await assert.rejects(browser.completeMfa(refusal.mfaToken!, { code: totpCodeOf(enrolment.uri) }), (error) =>
      isAuthClientError(error, "invalid_credentials"),
    );
    await browser.completeMfa(refusal.mfaToken!, { code: totpCodeOf(enrolment.uri, 1) });
    const accessToken = await browser.getAccessToken();
    assert.ok(accessToken);
    assert.deepEqual(claimsOf(accessToken).amr, ["pwd", "otp"]);
    const me = (await (await browser.fetch(`${server.url}/auth/me`)).json()) as { mfa: { totp: boolean } };
    assert.deepEqual(me.mfa, { totp: true });

    const recovery = clientFor();
    const second = await recovery.login("two-factor", PASSWORD).catch((error: unknown) => error);
    assert.ok(isAuthClientError(second, "mfa_required"));
    await recovery.completeMfa(second.mfaToken!, { recoveryCode: recoveryCodes[0]!.toUpperCase() });
    assert.ok(await recovery.getAccessToken());

    await assert.rejects(browser.disableTotp({ password: "not the password" }), (error) =>
      isAuthClientError(error, "invalid_credentials"),
    );
    await browser.disableTotp({ password: PASSWORD });
    const plain = clientFor();
    await plain.login("two-factor", PASSWORD);
    assert.deepEqual(claimsOf((await plain.getAccessToken())!).amr, ["pwd"]);
  });
});
