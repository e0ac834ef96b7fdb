import { type TOTP, URI } from "otpauth";
import { registerAndLogin } from "./server.js";

const JSON_HEADERS = { "content-type": "application/json" };

/** The code of the secret of an `otpauth://` URI at `at` (default now) plus `stepsAhead` 30 s steps. */
export function totpCodeOf(uri: string, stepsAhead = 0, at: Date = new Date()): string {
  return (URI.parse(uri) as TOTP).generate({ timestamp: at.getTime() + stepsAhead * 30_000 });
}

/** The claims of an access token, unverified. */
export function claimsOf(accessToken: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;
}

/**
 * Registers `username` on the server at `url`, turns TOTP on over HTTP and logs in with a second
 * factor (a code of the next time step: the confirming one is used); returns the token response
 * of `/auth/login/mfa`, the enrolment's URI and the recovery codes.
 */
export async function loginWithTotp(
  url: string,
  username: string,
  password = "correct horse battery staple",
): Promise<{ access_token: string; refresh_token: string; uri: string; recoveryCodes: string[] }> {
  const first = await registerAndLogin(url, username, password);
  const bearer = { ...JSON_HEADERS, authorization: `Bearer ${first.access_token}` };
  const enrolment = await fetch(`${url}/auth/mfa/totp`, { method: "POST", headers: bearer, body: "{}" });
  if (enrolment.status !== 200) throw new Error(`enrolment answered ${enrolment.status}`);
  const { uri } = (await enrolment.json()) as { uri: string };
  const confirm = await fetch(`${url}/auth/mfa/totp/confirm`, {
    method: "POST",
    headers: bearer,
    body: JSON.stringify({ code: totpCodeOf(uri) }),
  });
  if (confirm.status !== 200) throw new Error(`confirmation answered ${confirm.status}`);
  const { recovery_codes: recoveryCodes } = (await confirm.json()) as { recovery_codes: string[] };
  const login = await fetch(`${url}/auth/login`, {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({ username, password }),
  });
  if (login.status !== 403) throw new Error(`login answered ${login.status}`);
  const { mfa_token } = (await login.json()) as { mfa_token: string };
  const second = await fetch(`${url}/auth/login/mfa`, {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({ mfa_token, code: totpCodeOf(uri, 1) }),
  });
  if (second.status !== 200) throw new Error(`login/mfa answered ${second.status}`);
  const tokens = (await second.json()) as { access_token: string; refresh_token: string };
  return { ...tokens, uri, recoveryCodes };
}
