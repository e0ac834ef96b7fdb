import { EMAIL_LENGTH } from "../service/account-service.js";
import { PASSWORD_LENGTH, USERNAME_LENGTH } from "../service/credential-policy.js";
import { RECOVERY_CODE_COUNT, TOTP_CODE_PATTERN } from "../service/mfa-service.js";

/** Longest token accepted in any request field, in characters. */
export const MAX_TOKEN_FIELD = 8192;
/** Body limit of the auth routes, in bytes. */
export const AUTH_BODY_LIMIT = 8 * 1024;

/** The `{error, error_description}` body of every refusal. */
/** A password as bodies carry it; what makes a good one is the service's rule (credential-policy.ts). */
export const passwordField = { type: "string", minLength: 1, maxLength: PASSWORD_LENGTH.max } as const;

/** A user or session id in a path: UUIDs, but anything up to 64 characters is looked up (and not found). */
export const idField = { type: "string", minLength: 1, maxLength: 64 } as const;

export const errorResponse = {
  type: "object",
  properties: { error: { type: "string" }, error_description: { type: "string" } },
  required: ["error"],
} as const;

/** A body that must be absent or `{}`. */
const emptyBody = { type: "object", additionalProperties: false, maxProperties: 0 } as const;

const credentials = {
  type: "object",
  additionalProperties: false,
  required: ["username", "password"],
  properties: {
    username: { type: "string", minLength: 1, maxLength: USERNAME_LENGTH.max },
    password: passwordField,
  },
} as const;

/** The email field of a body: its shape only; what makes a plain address is the service's rule. */
const emailField = { type: "string", minLength: 3, maxLength: EMAIL_LENGTH.max } as const;

const registration = {
  type: "object",
  additionalProperties: false,
  required: ["username", "password"],
  properties: { ...credentials.properties, email: emailField },
} as const;

const refreshTokenBody = {
  type: "object",
  additionalProperties: false,
  required: ["refresh_token"],
  properties: { refresh_token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD } },
} as const;

/** RFC 6749 §5.1 successful token response. */
const tokenResponse = {
  type: "object",
  required: ["access_token", "token_type", "expires_in", "refresh_token", "refresh_token_expires_in"],
  properties: {
    access_token: { type: "string" },
    token_type: { type: "string", enum: ["Bearer"] },
    expires_in: { type: "integer" },
    refresh_token: { type: "string" },
    refresh_token_expires_in: { type: "integer" },
  },
} as const;

const userResponse = {
  type: "object",
  required: ["id", "username", "roles"],
  properties: {
    id: { type: "string" },
    username: { type: "string" },
    roles: { type: "array", items: { type: "string" } },
    email: { type: ["string", "null"], description: "The user's email address, if any." },
    email_verified: { type: "boolean" },
    capabilities: {
      type: "object",
      description: "What this server offers: `email` is false without an SMTP server (email features answer 501).",
      properties: { email: { type: "boolean" } },
    },
    mfa: {
      type: "object",
      description: "The user's second factors: `totp` is true once TOTP is confirmed.",
      required: ["totp"],
      properties: { totp: { type: "boolean" } },
    },
  },
} as const;

/**
 * 403 of a password login: for a user with TOTP on, `mfa_required` with the second step's token and
 * no tokens yet (other 403s, such as cookie mode's `csrf_check_failed`, are plain errors).
 */
const mfaRequiredResponse = {
  type: "object",
  description:
    "`mfa_required`: the password was right and the user has TOTP on; send a code with `mfa_token` to " +
    "`/auth/login/mfa`. Other 403 errors carry `error` and `error_description` only.",
  required: ["error"],
  properties: {
    error: { type: "string" },
    error_description: { type: "string" },
    mfa_token: { type: "string" },
    expires_in: { type: "integer", description: "Seconds the mfa_token stays valid." },
  },
} as const;

const sessionResponse = {
  type: "object",
  required: ["id", "created_at", "last_used_at", "expires_at", "user_agent", "ip", "current"],
  properties: {
    id: { type: "string" },
    created_at: { type: "string", format: "date-time" },
    last_used_at: { type: "string", format: "date-time" },
    expires_at: { type: "string", format: "date-time" },
    user_agent: { type: ["string", "null"] },
    ip: { type: ["string", "null"] },
    current: { type: "boolean" },
  },
} as const;

const statusResponse = { type: "object", required: ["status"], properties: { status: { type: "string" } } } as const;

/** Routes that take a bearer access token. */
export const bearerSecurity = [{ bearerAuth: [] }];

/** A success answered without a body (listed so the OpenAPI document shows it). */
export const noContent = { type: "null", description: "Done; no body." } as const;

/** Route schemas of `/auth/*`. */
export const authSchemas = {
  register: {
    tags: ["auth"],
    summary: "Create a user",
    description:
      "With `email`, the address is stored unverified with the user and a verification link (single use, 24 h) " +
      "is mailed to it after the answer; a failed mail does not fail the registration. 409 `email_taken` when " +
      "another account holds the address (case-insensitive): verified, or set less than 24 h ago; an older unverified " +
      "claim gives way. 501 `mail_unavailable` for an address without an SMTP server.",
    body: registration,
    response: {
      201: {
        type: "object",
        required: ["id", "username"],
        properties: { id: { type: "string" }, username: { type: "string" } },
      },
      "4xx": errorResponse,
      "5xx": errorResponse,
    },
  },
  login: {
    tags: ["auth"],
    summary: "Log in with a password",
    description: "403 `mfa_required` with an `mfa_token` instead of tokens when the user has TOTP on.",
    body: credentials,
    response: { 200: tokenResponse, 403: mfaRequiredResponse, "4xx": errorResponse },
  },
  refresh: {
    tags: ["auth"],
    summary: "Rotate a refresh token",
    body: refreshTokenBody,
    response: { 200: tokenResponse, "4xx": errorResponse },
  },
  logout: {
    tags: ["auth"],
    summary: "End the session of a refresh token",
    body: refreshTokenBody,
    response: { 204: noContent, "4xx": errorResponse },
  },
  logoutAll: {
    tags: ["auth"],
    summary: "End every session of the user",
    security: bearerSecurity,
    response: { 204: noContent, "4xx": errorResponse },
  },
  logoutOthers: {
    tags: ["auth"],
    summary: "End every session of the user but this one",
    description:
      "Revokes, in one step, every open session of the user except the one of the access token " +
      "(sessions opened a moment ago too) and answers their ids. The body is empty or `{}`.",
    security: bearerSecurity,
    body: emptyBody,
    response: {
      200: {
        type: "object",
        required: ["revoked"],
        additionalProperties: false,
        properties: { revoked: { type: "array", items: { type: "string" } } },
      },
      "4xx": errorResponse,
    },
  },
  me: {
    tags: ["auth"],
    summary: "The current user",
    security: bearerSecurity,
    response: { 200: userResponse, "4xx": errorResponse },
  },
  sessions: {
    tags: ["sessions"],
    summary: "The user's open sessions",
    security: bearerSecurity,
    response: {
      200: {
        type: "object",
        required: ["sessions"],
        properties: { sessions: { type: "array", items: sessionResponse } },
      },
      "4xx": errorResponse,
    },
  },
  revokeSession: {
    tags: ["sessions"],
    summary: "Revoke one of the user's sessions",
    security: bearerSecurity,
    params: {
      type: "object",
      additionalProperties: false,
      required: ["id"],
      properties: { id: idField },
    },
    response: { 204: noContent, "4xx": errorResponse },
  },
} as const;

const optionalRefreshTokenBody = {
  type: "object",
  additionalProperties: false,
  properties: {
    refresh_token: {
      type: "string",
      minLength: 1,
      maxLength: MAX_TOKEN_FIELD,
      description: "For clients without the cookie; when both are sent they must be the same token.",
    },
  },
} as const;

/** The token response of cookie mode: the refresh token travels in the cookie only. */
const cookieTokenResponse = {
  type: "object",
  required: ["access_token", "token_type", "expires_in", "refresh_token_expires_in"],
  properties: {
    access_token: { type: "string" },
    token_type: { type: "string", enum: ["Bearer"] },
    expires_in: { type: "integer" },
    refresh_token: {
      type: "string",
      description: "Only when the refresh token came in the body without the cookie (a client that is not a browser).",
    },
    refresh_token_expires_in: { type: "integer" },
  },
} as const;

/** The OpenAPI security scheme name of the refresh-token cookie. */
export const REFRESH_COOKIE_SCHEME = "refreshTokenCookie";

/** The header that cookie requests carry, shown in the OpenAPI document (checked by the CSRF hook, not by the schema). */
const csrfHeaders = {
  type: "object",
  properties: {
    "x-tessera-csrf": {
      type: "string",
      description:
        "`1`; required (with an allowed Origin) when the request carries the refresh-token cookie or an Origin header.",
    },
  },
} as const;

/**
 * The `/auth/*` route schemas of cookie mode: login and refresh set the refresh-token cookie and
 * leave it out of the body; refresh and logout read it from the cookie (or the body); logout-all
 * also clears it.
 */
export const authCookieSchemas = {
  ...authSchemas,
  register: { ...authSchemas.register, headers: csrfHeaders },
  revokeSession: { ...authSchemas.revokeSession, headers: csrfHeaders },
  login: {
    ...authSchemas.login,
    description:
      "Sets the refresh-token cookie (HttpOnly, Secure, SameSite=Strict); the body has no refresh_token. " +
      "403 `mfa_required` with an `mfa_token` (and no cookie) when the user has TOTP on.",
    headers: csrfHeaders,
    response: { 200: cookieTokenResponse, 403: mfaRequiredResponse, "4xx": errorResponse },
  },
  refresh: {
    ...authSchemas.refresh,
    description: "Rotates the refresh token of the cookie (or of the body) and sets the cookie to its successor.",
    security: [{ [REFRESH_COOKIE_SCHEME]: [] }, {}],
    headers: csrfHeaders,
    body: optionalRefreshTokenBody,
    response: { 200: cookieTokenResponse, "4xx": errorResponse },
  },
  logout: {
    ...authSchemas.logout,
    description: "Ends the session of the cookie's (or the body's) refresh token and clears the cookie.",
    security: [{ [REFRESH_COOKIE_SCHEME]: [] }, {}],
    headers: csrfHeaders,
    body: optionalRefreshTokenBody,
  },
  logoutOthers: {
    ...authSchemas.logoutOthers,
    description: `${authSchemas.logoutOthers.description} The refresh-token cookie of this browser stays.`,
    headers: csrfHeaders,
  },
  logoutAll: {
    ...authSchemas.logoutAll,
    description: "Also clears the refresh-token cookie of this browser.",
    headers: csrfHeaders,
  },
} as const;

/** Route schemas of `/oauth/*`. Unknown parameters are ignored (RFC 6749 §3.2). */
export const oauthSchemas = {
  token: {
    tags: ["oauth"],
    summary: "RFC 6749 token endpoint (grant_type=refresh_token)",
    consumes: ["application/x-www-form-urlencoded"],
    body: {
      type: "object",
      required: ["grant_type"],
      properties: {
        grant_type: { type: "string", minLength: 1, maxLength: 128 },
        refresh_token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD },
        client_id: { type: "string", minLength: 1, maxLength: 256 },
        scope: { type: "string", maxLength: 1024 },
      },
    },
    response: { 200: tokenResponse, "4xx": errorResponse },
  },
  revoke: {
    tags: ["oauth"],
    summary: "RFC 7009 token revocation",
    consumes: ["application/x-www-form-urlencoded"],
    body: {
      type: "object",
      required: ["token"],
      properties: {
        token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD },
        token_type_hint: { type: "string", maxLength: 64 },
        client_id: { type: "string", minLength: 1, maxLength: 256 },
      },
    },
    response: {
      200: { type: "null", description: "Revoked, or the token was not valid (RFC 7009 §2.2); no body." },
      "4xx": errorResponse,
    },
  },
  introspect: {
    tags: ["oauth"],
    summary: "RFC 7662 token introspection, for resource servers",
    description:
      "Callers authenticate with a bearer access token carrying the `introspect` role, or with HTTP Basic " +
      "client id `introspection` and `TESSERA_INTROSPECTION_SECRET`. Anything revoked, expired, used, " +
      "malformed or unknown answers `{active: false}`.",
    consumes: ["application/x-www-form-urlencoded"],
    body: {
      type: "object",
      required: ["token"],
      properties: {
        token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD },
        token_type_hint: { type: "string", maxLength: 64 },
      },
    },
    response: {
      200: {
        type: "object",
        required: ["active"],
        properties: {
          active: { type: "boolean" },
          token_type: { type: "string", enum: ["Bearer", "refresh_token"] },
          sub: { type: "string" },
          client_id: { type: "string" },
          username: { type: "string" },
          exp: { type: "integer" },
          iat: { type: "integer" },
          iss: { type: "string" },
          aud: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
          jti: { type: "string" },
          sid: { type: "string" },
          scope: { type: "string" },
          amr: {
            type: "array",
            items: { type: "string" },
            description: "RFC 8176 methods of the login (`pwd`, `otp`): the access token's, or the session's.",
          },
        },
      },
      "4xx": errorResponse,
    },
  },
  jwks: {
    tags: ["discovery"],
    summary: "Public signing keys (RFC 7517 JWK Set)",
    response: { 200: { type: "object", additionalProperties: true } },
  },
  metadata: {
    tags: ["discovery"],
    summary: "Authorization server metadata (RFC 8414)",
    response: { 200: { type: "object", additionalProperties: true } },
  },
} as const;

/** Route schemas of the standalone server's probes. */
export const healthSchemas = {
  liveness: { tags: ["health"], summary: "Liveness: the process answers", response: { 200: statusResponse } },
  readiness: {
    tags: ["health"],
    summary: "Readiness: the database answers; 503 when it does not",
    response: { 200: statusResponse, 503: statusResponse },
  },
} as const;

const changePasswordBody = {
  type: "object",
  additionalProperties: false,
  required: ["current_password", "new_password"],
  properties: {
    current_password: passwordField,
    new_password: passwordField,
  },
} as const;

const emailBody = {
  type: "object",
  additionalProperties: false,
  required: ["email"],
  properties: { email: emailField },
} as const;

const mailTokenBody = {
  type: "object",
  additionalProperties: false,
  required: ["token"],
  properties: { token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD } },
} as const;

const resetBody = {
  type: "object",
  additionalProperties: false,
  required: ["token", "password"],
  properties: {
    token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD },
    password: passwordField,
  },
} as const;

/** Route schemas of the end user's own account (`/auth/password`, `/auth/email`). */
export const accountSchemas = {
  forgotPassword: {
    tags: ["account"],
    summary: "Mail a password reset link",
    description:
      "Always 202 with no body, after the same work, whether an account has the address or not; the link " +
      "(single use, 30 min) goes only to a verified address of an enabled account; an unverified address is " +
      "answered as an unknown one. Throttled per address and per IP. 501 without SMTP.",
    body: emailBody,
    response: {
      202: { type: "null", description: "Accepted; a mail goes out if an account has the address, verified." },
      "4xx": errorResponse,
      "5xx": errorResponse,
    },
  },
  resetPassword: {
    tags: ["account"],
    summary: "Set a new password with a mailed reset token",
    description: "Every session of the user is revoked.",
    body: resetBody,
    response: { 204: noContent, "4xx": errorResponse },
  },
  setEmail: {
    tags: ["account"],
    summary: "Set the email address and mail a verification link",
    description:
      "The address is stored unverified and a single-use link (24 h) is mailed to it; links sent to an earlier " +
      "address stop working. The address the account already has, verified, changes nothing and mails nothing; " +
      "unverified, it gets a new link but its 24 h still run from when it was first set. " +
      "501 `mail_unavailable` without an SMTP server; 409 `email_taken` when another account holds the address " +
      "(case-insensitive): verified, or first set less than 24 h ago. An older unverified claim gives way: that " +
      "account loses the address and its links. Throttled per account (429 `rate_limited`).",
    security: bearerSecurity,
    body: emailBody,
    response: {
      202: { type: "null", description: "Accepted; the mail is on its way (none for the verified address it has)." },
      "4xx": errorResponse,
      "5xx": errorResponse,
    },
  },
  verifyEmail: {
    tags: ["account"],
    summary: "Verify the email address with the mailed token",
    body: mailTokenBody,
    response: { 204: noContent, "4xx": errorResponse },
  },
  changePassword: {
    tags: ["account"],
    summary: "Change the password",
    description:
      "Checks the current password (a wrong one fails as a login does, `invalid_grant`, and counts against the " +
      "login limits), sets the new one and revokes every other session of the user; this one stays open.",
    security: bearerSecurity,
    body: changePasswordBody,
    response: { 204: noContent, "4xx": errorResponse },
  },
} as const;

/** The account routes of cookie mode: the same, with the CSRF header documented. */
export const accountCookieSchemas = {
  changePassword: { ...accountSchemas.changePassword, headers: csrfHeaders },
  setEmail: { ...accountSchemas.setEmail, headers: csrfHeaders },
  verifyEmail: { ...accountSchemas.verifyEmail, headers: csrfHeaders },
  forgotPassword: { ...accountSchemas.forgotPassword, headers: csrfHeaders },
  resetPassword: { ...accountSchemas.resetPassword, headers: csrfHeaders },
} as const;

const totpCode = {
  type: "string",
  pattern: TOTP_CODE_PATTERN,
  description: "The six-digit code the authenticator app shows now.",
} as const;

const recoveryCode = {
  type: "string",
  minLength: 1,
  maxLength: 64,
  description: "One of the recovery codes handed out when TOTP was confirmed; each works once.",
} as const;

const mfaLoginBody = {
  type: "object",
  additionalProperties: false,
  required: ["mfa_token"],
  properties: {
    mfa_token: { type: "string", minLength: 1, maxLength: MAX_TOKEN_FIELD },
    code: totpCode,
    recovery_code: recoveryCode,
  },
  oneOf: [{ required: ["code"] }, { required: ["recovery_code"] }],
} as const;

const totpConfirmBody = {
  type: "object",
  additionalProperties: false,
  required: ["code"],
  properties: { code: totpCode },
} as const;

const totpDisableBody = {
  type: "object",
  additionalProperties: false,
  properties: { code: totpCode, password: passwordField },
  oneOf: [{ required: ["code"] }, { required: ["password"] }],
} as const;

/** Route schemas of the second factor (`/auth/login/mfa`, `/auth/mfa/totp`). */
export const mfaSchemas = {
  loginMfa: {
    tags: ["auth"],
    summary: "Complete a login with a TOTP or recovery code",
    description:
      "The second step after `POST /auth/login` answered 403 `mfa_required`: exactly one of `code` and " +
      "`recovery_code`. A wrong code, or an mfa_token that is unknown, used, expired (5 min) or void after 5 " +
      "wrong codes, is 401 `invalid_grant`. Throttled like login.",
    body: mfaLoginBody,
    response: { 200: tokenResponse, "4xx": errorResponse },
  },
  enrollTotp: {
    tags: ["account"],
    summary: "Start (or restart) a TOTP enrolment",
    description: "A new secret, pending until confirmed. 409 `mfa_already_enabled` while TOTP is on.",
    security: bearerSecurity,
    body: emptyBody,
    response: {
      200: {
        type: "object",
        required: ["secret", "uri", "qr_svg"],
        properties: {
          secret: { type: "string", description: "The secret in base32, for typing into an app." },
          uri: { type: "string", description: "The otpauth:// URI of the secret." },
          qr_svg: { type: "string", description: "The URI as a QR code, an SVG image." },
        },
      },
      "4xx": errorResponse,
    },
  },
  confirmTotp: {
    tags: ["account"],
    summary: "Turn TOTP on with a code from the pending secret",
    description:
      "Answers the recovery codes, shown this once. 400 `invalid_request` when no enrolment is pending, " +
      "400 `invalid_mfa_code` for a wrong code.",
    security: bearerSecurity,
    body: totpConfirmBody,
    response: {
      200: {
        type: "object",
        required: ["recovery_codes"],
        properties: {
          recovery_codes: {
            type: "array",
            items: { type: "string" },
            minItems: RECOVERY_CODE_COUNT,
            maxItems: RECOVERY_CODE_COUNT,
          },
        },
      },
      "4xx": errorResponse,
    },
  },
  disableTotp: {
    tags: ["account"],
    summary: "Turn TOTP off",
    description:
      "With exactly one of a current `code` (400 `invalid_mfa_code` when wrong) or the `password` (401 " +
      "`invalid_grant` when wrong). The secret and the recovery codes are deleted; other sessions stay open.",
    security: bearerSecurity,
    body: totpDisableBody,
    response: { 204: noContent, "4xx": errorResponse },
  },
} as const;

/** The second factor's routes in cookie mode: login/mfa sets the cookie; the CSRF header is documented. */
export const mfaCookieSchemas = {
  loginMfa: {
    ...mfaSchemas.loginMfa,
    description: `${mfaSchemas.loginMfa.description} Sets the refresh-token cookie as login does.`,
    headers: csrfHeaders,
    response: { 200: cookieTokenResponse, "4xx": errorResponse },
  },
  enrollTotp: { ...mfaSchemas.enrollTotp, headers: csrfHeaders },
  confirmTotp: { ...mfaSchemas.confirmTotp, headers: csrfHeaders },
  disableTotp: { ...mfaSchemas.disableTotp, headers: csrfHeaders },
} as const;
