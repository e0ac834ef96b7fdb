import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { CSRF_HEADER } from "../../src/http/cookie-mode.js";
import { createServer, type ServerOptions } from "../../src/http/server.js";
import { onTestDatabase, storesUnderTest } from "../support/databases.js";
import { assertErrorAnswer, injectedServer, injectJson } from "../support/inject.js";
import { serviceFixture } from "../support/service.js";
import { URI } from "otpauth";
import { claimsOf, totpCodeOf } from "../support/totp.js";

const PASSWORD = "correct horse battery staple";
// Unreachable database servers skip, except on CI.
const stores = await storesUnderTest();
const ISSUER = "https://issuer.test";

interface Harness {
  readonly app: FastifyInstance;
  request(
    method: "POST" | "GET" | "DELETE",
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

async function harness(options: ServerOptions = {}): Promise<Harness> {
  const server = await injectedServer({ issuer: ISSUER, ...options });
  return {
    ...server,
    request: (method, url, body, headers = {}) => injectJson(server.app, method, url, body, headers),
  };
}

let counter = 0;

/** Registers `username` and logs in over HTTP; `headers` go with every request, and with `bearer`. */
async function signedIn(h: Harness, username: string, headers: Record<string, string> = {}) {
  const credentials = { username, password: PASSWORD };
  assert.equal((await h.request("POST", "/auth/register", credentials, headers)).statusCode, 201);
  const login = await h.request("POST", "/auth/login", credentials, headers);
  assert.equal(login.statusCode, 200, login.body);
  return { credentials, bearer: { ...headers, authorization: `Bearer ${login.json().access_token as string}` } };
}

/** Registers a user, logs in and turns TOTP on over HTTP; `headers` go with every request. */
async function enrolledUser(h: Harness, headers: Record<string, string> = {}) {
  counter += 1;
  const username = `totp${counter}`;
  const { credentials, bearer } = await signedIn(h, username, headers);
  const enrolment = await h.request("POST", "/auth/mfa/totp", {}, bearer);
  assert.equal(enrolment.statusCode, 200, enrolment.body);
  const uri = enrolment.json().uri as string;
  const confirm = await h.request("POST", "/auth/mfa/totp/confirm", { code: totpCodeOf(uri) }, bearer);
  assert.equal(confirm.statusCode, 200, confirm.body);
  return { username, credentials, bearer, uri, recoveryCodes: confirm.json().recovery_codes as string[] };
}

for (const { kind, skip } of stores)
  describe(`TOTP routes on ${kind}`, { skip }, () => {
    let h: Harness;
    before(async () => {
      h = await onTestDatabase(kind, (databaseUrl) => harness({ databaseUrl }));
    });
    after(() => h?.close());

    it("POST /auth/mfa/totp answers a secret, its otpauth URI and an SVG QR code; 409 once TOTP is on", async () => {
      counter += 1;
      const { bearer } = await signedIn(h, `enrol${counter}`);
      const enrolment = await h.request("POST", "/auth/mfa/totp", {}, bearer);
      assert.equal(enrolment.statusCode, 200);
      assert.deepEqual(Object.keys(enrolment.json()).sort(), ["qr_svg", "secret", "uri"]);
      assert.match(enrolment.json().uri, /^otpauth:\/\/totp\//);
      assert.match(enrolment.json().qr_svg, /^<svg/);
      assert.equal(enrolment.headers["cache-control"], "no-store");
      const me = await h.request("GET", "/auth/me", undefined, bearer);
      assert.deepEqual(me.json().mfa, { totp: false });
      assertErrorAnswer(await h.request("POST", "/auth/mfa/totp", { extra: 1 }, bearer), 400, "invalid_request");
      const confirm = await h.request(
        "POST",
        "/auth/mfa/totp/confirm",
        { code: totpCodeOf(enrolment.json().uri) },
        bearer,
      );
      assert.equal(confirm.statusCode, 200);
      assert.equal(confirm.headers["cache-control"], "no-store");
      assert.equal(confirm.json().recovery_codes.length, 10);
      assert.deepEqual((await h.request("GET", "/auth/me", undefined, bearer)).json().mfa, { totp: true });
      assertErrorAnswer(await h.request("POST", "/auth/mfa/totp", {}, bearer), 409, "mfa_already_enabled");
    });

    it("POST /auth/mfa/totp/confirm: 400 invalid_request with nothing pending, 400 invalid_mfa_code for a wrong code", async () => {
      counter += 1;
      const { bearer } = await signedIn(h, `confirm${counter}`);
      assertErrorAnswer(
        await h.request("POST", "/auth/mfa/totp/confirm", { code: "123456" }, bearer),
        400,
        "invalid_request",
      );
      const { uri } = (await h.request("POST", "/auth/mfa/totp", {}, bearer)).json<{ uri: string }>();
      assertErrorAnswer(
        await h.request("POST", "/auth/mfa/totp/confirm", { code: totpCodeOf(uri, 4) }, bearer),
        400,
        "invalid_mfa_code",
      );
      for (const code of ["12345", "1234567", "abcdef", 123456]) {
        assertErrorAnswer(await h.request("POST", "/auth/mfa/totp/confirm", { code }, bearer), 400, "invalid_request");
      }
    });

    it("refuses the bearer routes without a valid access token before reading the body", async () => {
      for (const [method, url] of [
        ["POST", "/auth/mfa/totp"],
        ["POST", "/auth/mfa/totp/confirm"],
        ["DELETE", "/auth/mfa/totp"],
      ] as const) {
        const response = await h.request(method, url, { junk: true });
        assertErrorAnswer(response, 401, "invalid_token");
        assert.equal(response.headers["www-authenticate"], 'Bearer realm="tessera"');
      }
    });

    it("POST /auth/login answers 403 mfa_required with an mfa_token and no tokens; a wrong password stays 401", async () => {
      const { credentials } = await enrolledUser(h);
      const login = await h.request("POST", "/auth/login", credentials);
      assert.equal(login.statusCode, 403);
      assert.equal(login.headers["cache-control"], "no-store");
      assert.equal(login.headers["set-cookie"], undefined);
      const body = login.json();
      assert.deepEqual(Object.keys(body).sort(), ["error", "error_description", "expires_in", "mfa_token"]);
      assert.equal(body.error, "mfa_required");
      assert.match(body.mfa_token, /^tsm_[A-Za-z0-9_-]{43}$/);
      assert.equal(body.expires_in, 300);
      assertErrorAnswer(
        await h.request("POST", "/auth/login", { ...credentials, password: "wrong password!" }),
        401,
        "invalid_grant",
      );
    });

    it("POST /auth/login/mfa answers a token response with amr pwd+otp, kept by /auth/refresh", async () => {
      const { credentials, uri } = await enrolledUser(h);
      const mfaToken = (await h.request("POST", "/auth/login", credentials)).json().mfa_token as string;
      const response = await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, code: totpCodeOf(uri, 1) });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.headers["cache-control"], "no-store");
      const tokens = response.json();
      assert.equal(tokens.token_type, "Bearer");
      assert.match(tokens.refresh_token, /^tsr_/);
      assert.deepEqual(claimsOf(tokens.access_token).amr, ["pwd", "otp"]);
      const refreshed = await h.request("POST", "/auth/refresh", { refresh_token: tokens.refresh_token });
      assert.equal(refreshed.statusCode, 200);
      assert.deepEqual(claimsOf(refreshed.json().access_token).amr, ["pwd", "otp"]);
      assertErrorAnswer(
        await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, code: totpCodeOf(uri, 1) }),
        401,
        "invalid_grant",
      );
    });

    it("POST /auth/login/mfa takes a recovery code once; a wrong code or unknown token is 401 invalid_grant", async () => {
      const { credentials, recoveryCodes } = await enrolledUser(h);
      const mfaToken = (await h.request("POST", "/auth/login", credentials)).json().mfa_token as string;
      assertErrorAnswer(
        await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, recovery_code: "aaaa-bbbb-cc" }),
        401,
        "invalid_grant",
      );
      const used = await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, recovery_code: recoveryCodes[0] });
      assert.equal(used.statusCode, 200, used.body);
      const again = (await h.request("POST", "/auth/login", credentials)).json().mfa_token as string;
      assertErrorAnswer(
        await h.request("POST", "/auth/login/mfa", { mfa_token: again, recovery_code: recoveryCodes[0] }),
        401,
        "invalid_grant",
      );
      assertErrorAnswer(
        await h.request("POST", "/auth/login/mfa", { mfa_token: `tsm_${"x".repeat(43)}`, code: "123456" }),
        401,
        "invalid_grant",
      );
    });

    it("POST /auth/login/mfa takes exactly one of code and recovery_code, and nothing else", async () => {
      const token = `tsm_${"x".repeat(43)}`;
      for (const body of [
        { mfa_token: token },
        { mfa_token: token, code: "123456", recovery_code: "aaaa-bbbb-cc" },
        { mfa_token: token, code: "123456", extra: true },
        { code: "123456" },
      ]) {
        assertErrorAnswer(await h.request("POST", "/auth/login/mfa", body), 400, "invalid_request");
      }
      const form = await h.app.inject({
        method: "POST",
        url: "/auth/login/mfa",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: `mfa_token=${token}&code=123456`,
      });
      assert.equal(form.statusCode, 415);
    });

    it("DELETE /auth/mfa/totp with a code or the password: 204; wrong ones are 400 invalid_mfa_code and 401 invalid_grant", async () => {
      const first = await enrolledUser(h);
      assertErrorAnswer(
        await h.request("DELETE", "/auth/mfa/totp", { code: totpCodeOf(first.uri, 4) }, first.bearer),
        400,
        "invalid_mfa_code",
      );
      assertErrorAnswer(await h.request("DELETE", "/auth/mfa/totp", {}, first.bearer), 400, "invalid_request");
      assertErrorAnswer(
        await h.request("DELETE", "/auth/mfa/totp", { code: "123456", password: PASSWORD }, first.bearer),
        400,
        "invalid_request",
      );
      const off = await h.request("DELETE", "/auth/mfa/totp", { code: totpCodeOf(first.uri, 1) }, first.bearer);
      assert.equal(off.statusCode, 204, off.body);
      assert.equal((await h.request("POST", "/auth/login", first.credentials)).statusCode, 200);

      const second = await enrolledUser(h);
      assertErrorAnswer(
        await h.request("DELETE", "/auth/mfa/totp", { password: "not the password" }, second.bearer),
        401,
        "invalid_grant",
      );
      assert.equal(
        (await h.request("DELETE", "/auth/mfa/totp", { password: PASSWORD }, second.bearer)).statusCode,
        204,
      );
      assert.deepEqual((await h.request("GET", "/auth/me", undefined, second.bearer)).json().mfa, { totp: false });
      assertErrorAnswer(
        await h.request("DELETE", "/auth/mfa/totp", { password: PASSWORD }, second.bearer),
        400,
        "invalid_request",
      );
    });

    it("lists the TOTP routes in /openapi.json", async () => {
      const spec = (await h.request("GET", "/openapi.json")).json<{
        paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
      }>();
      for (const [path, method, success] of [
        ["/auth/login/mfa", "post", "200"],
        ["/auth/mfa/totp", "post", "200"],
        ["/auth/mfa/totp/confirm", "post", "200"],
        ["/auth/mfa/totp", "delete", "204"],
        ["/auth/login", "post", "403"],
      ] as const) {
        assert.ok(spec.paths[path]?.[method]?.responses?.[success], `${method.toUpperCase()} ${path} ${success}`);
      }
    });
  });

describe("TOTP routes in cookie mode", () => {
  let h: Harness;
  const browser = { origin: ISSUER, [CSRF_HEADER]: "1" };
  before(async () => {
    h = await harness({ cookieMode: true });
  });
  after(() => h.close());

  it("POST /auth/login/mfa sets the refresh-token cookie as /auth/login does, and keeps it out of the body", async () => {
    const { credentials, uri } = await enrolledUser(h, browser);
    const login = await h.request("POST", "/auth/login", credentials, browser);
    assert.equal(login.statusCode, 403);
    assert.equal(login.headers["set-cookie"], undefined, "no cookie before the second factor");
    const mfaToken = login.json().mfa_token as string;
    const response = await h.request(
      "POST",
      "/auth/login/mfa",
      { mfa_token: mfaToken, code: totpCodeOf(uri, 1) },
      browser,
    );
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().refresh_token, undefined);
    const cookie = [response.headers["set-cookie"]].flat().find((line) => line?.includes("tessera_refresh"));
    assert.ok(cookie, JSON.stringify(response.headers["set-cookie"]));
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Strict/i);
    const pair = cookie.split(";")[0]!;
    const refreshed = await h.request("POST", "/auth/refresh", {}, { ...browser, cookie: pair });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.deepEqual(claimsOf(refreshed.json().access_token).amr, ["pwd", "otp"]);
  });

  it("applies the CSRF rules to the TOTP routes", async () => {
    const { bearer, credentials } = await enrolledUser(h, browser);
    const mfaToken = (await h.request("POST", "/auth/login", credentials, browser)).json().mfa_token as string;
    const foreign = { origin: "https://evil.example", [CSRF_HEADER]: "1" };
    const unmarked = { origin: ISSUER };
    for (const headers of [foreign, unmarked]) {
      assertErrorAnswer(
        await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, code: "123456" }, headers),
        403,
        "csrf_check_failed",
      );
      assertErrorAnswer(
        await h.request(
          "DELETE",
          "/auth/mfa/totp",
          { password: PASSWORD },
          { ...headers, authorization: bearer.authorization },
        ),
        403,
        "csrf_check_failed",
      );
      assertErrorAnswer(
        await h.request("POST", "/auth/mfa/totp", {}, { ...headers, authorization: bearer.authorization }),
        403,
        "csrf_check_failed",
      );
    }
  });
});

describe("TOTP routes under the login limits", () => {
  let h: Harness;
  before(async () => {
    h = await harness({ rateLimitPerMinute: 3, ipLoginFailuresPerHour: 100, accountFailuresBeforeDelay: 0 });
  });
  after(() => h.close());

  it("answers 429 with Retry-After once a user's code attempts from one address pass the limit", async () => {
    // Three attempts a minute per address and user: confirming the enrolment was the first.
    const { credentials, uri } = await enrolledUser(h);
    const mfaToken = (await h.request("POST", "/auth/login", credentials)).json().mfa_token as string;
    const wrong = String((Number(totpCodeOf(uri, 1)) + 1) % 1_000_000).padStart(6, "0");
    const answers: LightMyRequestResponse[] = [];
    for (let i = 0; i < 3; i += 1)
      answers.push(await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, code: wrong }));
    assert.deepEqual(
      answers.map((answer) => answer.statusCode),
      [401, 401, 429],
    );
    assertErrorAnswer(answers[2]!, 429, "too_many_requests");
    assert.ok(Number(answers[2]!.headers["retry-after"]) >= 1, "Retry-After");
    // Another user's codes are counted apart.
    const other = await enrolledUser(h);
    const otherToken = (await h.request("POST", "/auth/login", other.credentials)).json().mfa_token as string;
    const answer = await h.request("POST", "/auth/login/mfa", {
      mfa_token: otherToken,
      code: totpCodeOf(other.uri, 1),
    });
    assert.equal(answer.statusCode, 200, answer.body);
  });
});

describe("TOTP routes against guessing", () => {
  const wrongCodes = (uri: string, count: number, at: Date) => {
    const taken = new Set([-1, 0, 1, 2].map((steps) => totpCodeOf(uri, steps, at)));
    const codes: string[] = [];
    for (let i = 0; codes.length < count; i += 1) {
      const candidate = String(100_000 + ((i * 7919) % 900_000));
      if (!taken.has(candidate)) codes.push(candidate);
    }
    return codes;
  };

  // On a networked database the requests interleave most: there a check-then-act would show.
  for (const { kind, skip } of stores)
    for (const rateLimitPerMinute of [30, 0]) {
      it(`checks at most 5 of 100 concurrent wrong codes on one mfa_token from 100 addresses (${kind}, rate limit ${rateLimitPerMinute})`, {
        skip,
      }, async () => {
        const fixture = await onTestDatabase(kind, (databaseUrl) => serviceFixture({ databaseUrl }));
        const app = await createServer({ services: fixture.services, rateLimitPerMinute, logger: false });
        try {
          const send = (url: string, body: unknown, ip: string, headers: Record<string, string> = {}) =>
            app.inject({
              method: "POST",
              url,
              remoteAddress: ip,
              headers: { "content-type": "application/json", ...headers },
              payload: JSON.stringify(body),
            });
          const credentials = { username: "raced", password: PASSWORD };
          await send("/auth/register", credentials, "10.0.0.1");
          const bearer = {
            authorization: `Bearer ${(await send("/auth/login", credentials, "10.0.0.1")).json().access_token}`,
          };
          const uri = (await send("/auth/mfa/totp", {}, "10.0.0.1", bearer)).json().uri as string;
          const now = fixture.clock.now();
          assert.equal(
            (await send("/auth/mfa/totp/confirm", { code: totpCodeOf(uri, 0, now) }, "10.0.0.1", bearer)).statusCode,
            200,
          );
          const mfaToken = (await send("/auth/login", credentials, "10.9.9.9")).json().mfa_token as string;
          const answers = await Promise.all(
            wrongCodes(uri, 100, now).map((code, i) =>
              send("/auth/login/mfa", { mfa_token: mfaToken, code }, `10.1.${i >> 8}.${i & 255}`),
            ),
          );
          assert.ok(
            answers.every((answer) => [401, 429].includes(answer.statusCode)),
            "each refused",
          );
          await fixture.services.audit.flush();
          const failures = await fixture.services.audit.list({ type: "mfa_login_failed", limit: "200" });
          const checked = failures.events.filter((event) => event.details?.reason === "wrong_code").length;
          assert.ok(checked >= 1 && checked <= 5, `${checked} codes were checked`);
          const late = await send(
            "/auth/login/mfa",
            { mfa_token: mfaToken, code: totpCodeOf(uri, 1, now) },
            "10.2.0.1",
          );
          assert.notEqual(late.statusCode, 200, "the token is spent");
        } finally {
          await app.close();
          await fixture.close();
        }
      });
    }

  it("voids an mfa_token issued before the password was changed", async () => {
    const h = await harness();
    try {
      const { credentials, bearer, uri } = await enrolledUser(h);
      const mfaToken = (await h.request("POST", "/auth/login", credentials)).json().mfa_token as string;
      const change = await h.request(
        "POST",
        "/auth/password",
        { current_password: PASSWORD, new_password: "a whole new password 123" },
        bearer,
      );
      assert.equal(change.statusCode, 204, change.body);
      assertErrorAnswer(
        await h.request("POST", "/auth/login/mfa", { mfa_token: mfaToken, code: totpCodeOf(uri, 1) }),
        401,
        "invalid_grant",
      );
    } finally {
      await h.close();
    }
  });

  it("counts unknown mfa_tokens against each client address, not against everyone's", async () => {
    const h = await harness({ rateLimitPerMinute: 30, accountFailuresBeforeDelay: 2 });
    try {
      const unknown = (ip: string) =>
        h.app.inject({
          method: "POST",
          url: "/auth/login/mfa",
          remoteAddress: ip,
          headers: { "content-type": "application/json" },
          payload: JSON.stringify({ mfa_token: `tsm_${"A".repeat(43)}`, code: "123456" }),
        });
      for (let i = 1; i <= 4; i += 1) assertErrorAnswer(await unknown(`10.3.0.${i}`), 401, "invalid_grant");
      const repeated = [];
      for (let i = 0; i < 4; i += 1) repeated.push(await unknown("10.3.0.9"));
      assert.deepEqual(
        repeated.map((answer) => answer.statusCode),
        [401, 401, 401, 429],
        "one address is slowed down",
      );
      assertErrorAnswer(await unknown("10.3.0.10"), 401, "invalid_grant");
    } finally {
      await h.close();
    }
  });
});

describe("TOTP enrolment under an issuer with a port", () => {
  it("names the issuer by its host name in the otpauth label and the issuer parameter, so apps parse it back", async () => {
    const h = await harness({ issuer: "https://issuer.test:8443" });
    try {
      const { bearer } = await signedIn(h, "ported");
      const uri = (await h.request("POST", "/auth/mfa/totp", {}, bearer)).json().uri as string;
      assert.match(uri, /^otpauth:\/\/totp\/issuer\.test:ported\?/);
      assert.equal(new URL(uri).searchParams.get("issuer"), "issuer.test");
      const parsed = URI.parse(uri);
      assert.deepEqual([parsed.issuer, parsed.label], ["issuer.test", "ported"]);
    } finally {
      await h.close();
    }
  });
});
