import { USER_LIST_LIMIT } from "../service/admin-service.js";
import { ROLE_NAME, USERNAME_LENGTH } from "../service/credential-policy.js";
import { bearerSecurity, errorResponse, idField, noContent, passwordField } from "./schemas.js";

/** Most roles one user may hold. */
export const MAX_ROLES = 32;

const userParams = {
  type: "object",
  additionalProperties: false,
  required: ["id"],
  properties: { id: idField },
} as const;

const sessionParams = {
  type: "object",
  additionalProperties: false,
  required: ["id", "sessionId"],
  properties: {
    id: idField,
    sessionId: idField,
  },
} as const;

const roles = {
  type: "array",
  maxItems: MAX_ROLES,
  items: { type: "string", pattern: ROLE_NAME.source },
} as const;

const account = {
  type: "object",
  required: ["id", "username", "roles", "created_at", "disabled_at"],
  properties: {
    id: { type: "string" },
    username: { type: "string" },
    roles: { type: "array", items: { type: "string" } },
    created_at: { type: "string", format: "date-time" },
    disabled_at: { type: ["string", "null"], format: "date-time" },
  },
} as const;

const listedAccount = {
  ...account,
  required: [...account.required, "mfa"],
  properties: {
    ...account.properties,
    mfa: {
      type: "object",
      required: ["totp"],
      properties: { totp: { type: "boolean", description: "TOTP is on (a pending enrolment is not)." } },
    },
  },
} as const;

const accountDetails = {
  ...listedAccount,
  required: [...listedAccount.required, "open_sessions"],
  properties: { ...listedAccount.properties, open_sessions: { type: "integer" } },
} as const;

const adminSession = {
  type: "object",
  required: ["id", "created_at", "last_used_at", "expires_at", "user_agent", "ip"],
  properties: {
    id: { type: "string" },
    created_at: { type: "string", format: "date-time" },
    last_used_at: { type: "string", format: "date-time" },
    expires_at: { type: "string", format: "date-time" },
    user_agent: { type: ["string", "null"] },
    ip: { type: ["string", "null"] },
  },
} as const;

const refusals = { "4xx": errorResponse } as const;
const lastAdmin = "409 `last_admin` for the last enabled admin (themselves included): nothing changes.";
const common = { tags: ["admin"], security: bearerSecurity } as const;

/** Route schemas of `/admin/users…`; every route needs a bearer token with role `admin`. */
export const adminSchemas = {
  listUsers: {
    ...common,
    summary: "List users, filtered, one page at a time",
    querystring: {
      type: "object",
      additionalProperties: false,
      properties: {
        search: { type: "string", minLength: 1, maxLength: USERNAME_LENGTH.max },
        role: { type: "string", pattern: ROLE_NAME.source },
        disabled: { type: "string", enum: ["true", "false"] },
        limit: {
          type: "string",
          pattern: "^[1-9][0-9]{0,3}$",
          description: `Users per page, 1 to ${USER_LIST_LIMIT.max}; default ${USER_LIST_LIMIT.default}.`,
        },
        cursor: { type: "string", minLength: 1, maxLength: 512, description: "`next_cursor` of the previous page." },
      },
    },
    response: {
      200: {
        type: "object",
        required: ["users", "next_cursor"],
        properties: { users: { type: "array", items: listedAccount }, next_cursor: { type: ["string", "null"] } },
      },
      ...refusals,
    },
  },
  createUser: {
    ...common,
    summary: "Add a user, whatever TESSERA_REGISTRATION says",
    body: {
      type: "object",
      additionalProperties: false,
      required: ["username", "password"],
      properties: {
        username: { type: "string", minLength: 1, maxLength: USERNAME_LENGTH.max },
        password: passwordField,
        roles,
      },
    },
    response: { 201: account, ...refusals },
  },
  showUser: {
    ...common,
    summary: "A user, with their second factor and the number of open sessions",
    params: userParams,
    response: { 200: accountDetails, ...refusals },
  },
  disableUser: {
    ...common,
    summary: "Disable a user and revoke every session",
    description: lastAdmin,
    params: userParams,
    response: { 200: account, ...refusals },
  },
  enableUser: {
    ...common,
    summary: "Enable a disabled user",
    params: userParams,
    response: { 200: account, ...refusals },
  },
  setRoles: {
    ...common,
    summary: "Replace a user's roles",
    description: `Roles without \`admin\`: ${lastAdmin}`,
    params: userParams,
    body: { type: "object", additionalProperties: false, required: ["roles"], properties: { roles } },
    response: { 200: account, ...refusals },
  },
  setPassword: {
    ...common,
    summary: "Set a user's password and revoke every session",
    params: userParams,
    body: {
      type: "object",
      additionalProperties: false,
      required: ["password"],
      properties: { password: passwordField },
    },
    response: { 204: noContent, ...refusals },
  },
  resetMfa: {
    ...common,
    summary: "Turn a user's second factor off (TOTP and recovery codes) and revoke every session",
    description:
      "For a user who lost the authenticator and the recovery codes. 204 also when TOTP was off; " +
      "every open session is revoked either way.",
    params: userParams,
    response: { 204: noContent, ...refusals },
  },
  deleteUser: {
    ...common,
    summary: "Delete a user with their sessions; their audit events stay, without IP or user agent",
    description: lastAdmin,
    params: userParams,
    response: { 204: noContent, ...refusals },
  },
  listSessions: {
    ...common,
    summary: "A user's open sessions, newest first",
    params: userParams,
    response: {
      200: { type: "object", required: ["sessions"], properties: { sessions: { type: "array", items: adminSession } } },
      ...refusals,
    },
  },
  revokeSession: {
    ...common,
    summary: "Revoke one session of a user",
    params: sessionParams,
    response: { 204: noContent, ...refusals },
  },
  revokeSessions: {
    ...common,
    summary: "Revoke every session of a user",
    params: userParams,
    response: {
      200: {
        type: "object",
        required: ["revoked"],
        properties: { revoked: { type: "array", items: { type: "string" } } },
      },
      ...refusals,
    },
  },
} as const;
