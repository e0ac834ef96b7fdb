import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAuthClient, isAuthClientError, memoryStorage } from "../../src/client/index.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import { recordingFetch } from "./recording-fetch.js";
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

  it("tells a wrong password on turning TOTP off from a session the server no longer takes", async () => {
    await registerAndLogin(server.url, "two-factor-off");
    // The server refuses the bearer token on this route even after the refresh (a session revoked meanwhile).
    const network = recordingFetch((request) =>
      request.method === "DELETE" && new URL(request.url).pathname === "/auth/mfa/totp"
        ? new Response(JSON.stringify({ error: "invalid_token", error_description: "The access token was revoked." }), {
            status: 401,
            headers: { "content-type": "application/json", "www-authenticate": 'Bearer error="invalid_token"' },
          })
        : request,
    );
    const client = createAuthClient({ baseUrl: server.url, storage: memoryStorage(), fetch: network.fetch });
    await client.login("two-factor-off", PASSWORD);
    await assert.rejects(client.disableTotp({ password: PASSWORD }), (error) =>
      isAuthClientError(error, "not_authenticated"),
    );
    const owner = clientFor();
    await owner.login("two-factor-off", PASSWORD);
    const enrolment = await owner.enrollTotp();
    await owner.confirmTotp(totpCodeOf(enrolment.uri));
    await assert.rejects(owner.disableTotp({ password: "not the password" }), (error) =>
      isAuthClientError(error, "invalid_credentials"),
    );
  });
});
