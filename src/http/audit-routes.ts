import type { FastifyInstance } from "fastify";
import {
  AUDIT_EVENT_TYPES,
  AUDIT_PAGE_LIMIT,
  AUDIT_QUERY_FIELD_MAX,
  type AuditQuery,
  type AuditTrail,
} from "../service/audit-trail.js";
import type { AuthService } from "../service/auth-service.js";
import { requireRole } from "./role-guard.js";
import { errorResponse } from "./schemas.js";

/** Options of {@link registerAuditRoutes}. */
export interface AuditRoutesOptions {
  readonly auth: AuthService;
  readonly audit: AuditTrail;
}

/** The role a bearer token needs to read the audit trail. */
export const AUDIT_READER_ROLE = "admin";

const text = (description: string, maxLength = AUDIT_QUERY_FIELD_MAX) =>
  ({ type: "string", minLength: 1, maxLength, description }) as const;

const auditEventResponse = {
  type: "object",
  required: ["id", "type", "user_id", "session_id", "ip", "user_agent", "details", "created_at"],
  properties: {
    id: { type: "string" },
    type: { type: "string", enum: [...AUDIT_EVENT_TYPES] },
    user_id: { type: ["string", "null"] },
    session_id: { type: ["string", "null"] },
    ip: { type: ["string", "null"] },
    user_agent: { type: ["string", "null"] },
    details: { type: ["object", "null"], additionalProperties: true },
    created_at: { type: "string", format: "date-time" },
  },
} as const;

/** Route schema of `GET /admin/audit`. Unknown or repeated parameters are refused. */
export const auditSchema = {
  tags: ["admin"],
  summary: "Audit events, newest first, a page at a time",
  description:
    "Needs a bearer token with the `admin` role. Filters combine; `next_cursor` is null on the last page. " +
    "Events are written in batches, so another instance's newest events may take a moment to appear.",
  security: [{ bearerAuth: [] }],
  querystring: {
    type: "object",
    additionalProperties: false,
    properties: {
      user: text("A user id or username"),
      session: text("A session id"),
      type: text(`Comma-separated event types: ${AUDIT_EVENT_TYPES.join(", ")}`, 1024),
      since: text("Inclusive: 2026-01-31 (UTC) or an ISO 8601 date-time with Z or an offset", 64),
      until: text("Exclusive, in the same forms as since", 64),
      limit: {
        type: "string",
        pattern: "^[1-9][0-9]{0,5}$",
        description: `Events per page, 1 to ${AUDIT_PAGE_LIMIT.max} (default ${AUDIT_PAGE_LIMIT.default})`,
      },
      cursor: { type: "string", pattern: "^[A-Za-z0-9_-]{1,128}$", description: "next_cursor of the previous page" },
    },
  },
  response: {
    200: {
      type: "object",
      required: ["events", "next_cursor"],
      properties: { events: { type: "array", items: auditEventResponse }, next_cursor: { type: ["string", "null"] } },
    },
    "4xx": errorResponse,
  },
} as const;

/**
 * Registers `GET /admin/audit?user=&session=&type=&since=&until=&limit=&cursor=`: the audit trail
 * for holders of the `admin` role (401 without a valid token, 403 `insufficient_scope` without
 * the role, 400 `invalid_request` for a bad filter).
 */
export function registerAuditRoutes(app: FastifyInstance, { auth, audit }: AuditRoutesOptions): void {
  const guard = requireRole(auth, AUDIT_READER_ROLE);
  app.get<{ Querystring: AuditQuery }>(
    "/admin/audit",
    { schema: auditSchema, preValidation: guard.preValidation },
    async (request, reply) => {
      const page = await audit.list(request.query);
      void reply.header("cache-control", "no-store");
      return {
        events: page.events.map((event) => ({
          id: event.id,
          type: event.type,
          user_id: event.userId,
          session_id: event.sessionId,
          ip: event.ip,
          user_agent: event.userAgent,
          details: event.details,
          created_at: event.createdAt.toISOString(),
        })),
        next_cursor: page.nextCursor,
      };
    },
  );
}
