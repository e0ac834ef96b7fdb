import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { TesseraError } from "../core/errors.js";
import { errorAnswerOf, INSUFFICIENT_SCOPE } from "../core/http-errors.js";
import type { AuthService } from "../service/auth-service.js";
import { INTROSPECT_ROLE, type TokenIntrospection } from "../service/introspection.js";
import { onlyMediaType, requirePrincipal } from "./request-context.js";
import { AUTH_BODY_LIMIT, oauthSchemas } from "./schemas.js";

interface IntrospectionRequest {
  token: string;
  token_type_hint?: string;
}

/** Options of {@link registerIntrospectionRoutes}. */
export interface IntrospectionRoutesOptions {
  readonly auth: AuthService;
  readonly introspection: TokenIntrospection;
}

/** How callers of `/oauth/introspect` authenticate, as the RFC 8414 metadata lists them. */
export function introspectionAuthMethods(introspection: TokenIntrospection): string[] {
  return introspection.acceptsClientSecret ? ["client_secret_basic", "bearer"] : ["bearer"];
}

/**
 * Registers `POST /oauth/introspect` (RFC 7662). Callers present a bearer access token with the
 * `introspect` role (403 `insufficient_scope` without it) or HTTP Basic client credentials;
 * without either the answer is 401. The token itself is never logged or echoed.
 */
export function registerIntrospectionRoutes(app: FastifyInstance, { auth, introspection }: IntrospectionRoutesOptions) {
  app.post<{ Body: IntrospectionRequest }>(
    "/oauth/introspect",
    {
      schema: oauthSchemas.introspect,
      bodyLimit: AUTH_BODY_LIMIT,
      preParsing: onlyMediaType("application/x-www-form-urlencoded"),
    },
    async (request, reply) => {
      if (!(await authenticateCaller(request, reply, auth, introspection))) return reply;
      const { token, token_type_hint: hint } = request.body;
      const result = await introspection.introspect(token, hint);
      // RFC 7662 §4: answers about tokens must not be cached.
      return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(result);
    },
  );
}

/** True when the caller may introspect; otherwise throws, or sends the 403 and returns false. */
async function authenticateCaller(
  request: FastifyRequest,
  reply: FastifyReply,
  auth: AuthService,
  introspection: TokenIntrospection,
): Promise<boolean> {
  const header = request.headers.authorization ?? "";
  const basic = /^\s*basic\s+(\S+)\s*$/i.exec(header);
  if (basic) {
    const credentials = readBasicCredentials(basic[1] ?? "");
    if (credentials === null || !introspection.checkClientSecret(credentials.clientId, credentials.secret)) {
      throw new TesseraError("client_authentication_failed", "the introspection client credentials are wrong");
    }
    return true;
  }
  const principal = await requirePrincipal(auth, request);
  // The role must still be the user's, as the admin guard requires (`role-guard.ts`).
  if (principal.roles.includes(INTROSPECT_ROLE) && (await auth.me(principal)).roles.includes(INTROSPECT_ROLE))
    return true;
  // A valid token without the role: RFC 6750 §3.1 insufficient_scope, 403.
  const answer = errorAnswerOf(INSUFFICIENT_SCOPE);
  await reply.code(answer.status).headers(answer.headers).send(answer.body);
  return false;
}

/** RFC 6749 §2.3.1: base64 of form-encoded `client_id:client_secret`; `null` when malformed. */
function readBasicCredentials(encoded: string): { clientId: string; secret: string } | null {
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  try {
    const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
    const secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
    return { clientId, secret };
  } catch {
    return null;
  }
}
