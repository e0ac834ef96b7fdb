import type { FastifyInstance, FastifyRequest } from "fastify";
import { TesseraError } from "../core/errors.js";
import { JWKS_CACHE_SECONDS } from "../core/signing-key.js";
import type { TesseraServices } from "../service/tessera-services.js";
import { introspectionAuthMethods } from "./introspection-routes.js";
import type { RateLimits } from "./rate-limits.js";
import { arrivalContextOf, contextOf, onlyMediaType, sendTokens } from "./request-context.js";
import { AUTH_BODY_LIMIT, oauthSchemas } from "./schemas.js";

interface TokenRequest {
  grant_type: string;
  refresh_token?: string;
  client_id?: string;
  scope?: string;
}

interface RevocationRequest {
  token: string;
  token_type_hint?: string;
}

/** Options of {@link registerOAuthRoutes}. */
export interface OAuthRoutesOptions {
  readonly services: TesseraServices;
  readonly limits: RateLimits;
  /** Absolute URL prefix of this server's routes, for the RFC 8414 metadata. */
  readonly baseUrl: string;
}

/** Registers `/oauth/token`, `/oauth/revoke` and the two `/.well-known/` documents (`/oauth/introspect` is its own file). */
export function registerOAuthRoutes(app: FastifyInstance, { services, limits, baseUrl }: OAuthRoutesOptions): void {
  const formOnly = onlyMediaType("application/x-www-form-urlencoded");
  app.post<{ Body: TokenRequest }>(
    "/oauth/token",
    {
      schema: oauthSchemas.token,
      bodyLimit: AUTH_BODY_LIMIT,
      ...(limits.perClient ? { onRequest: limits.perClient } : {}),
      preParsing: formOnly,
    },
    async (request, reply) => {
      refuseClientAuthentication(request);
      const { grant_type: grantType, refresh_token: refreshToken, scope } = request.body;
      if (grantType !== "refresh_token") throw new TesseraError("unsupported_grant_type", "unsupported grant_type");
      if (refreshToken === undefined)
        throw new TesseraError("invalid_request", "the refresh_token parameter is required");
      // Tessera grants no scopes, so any requested scope exceeds the original grant (RFC 6749 §6).
      if (scope !== undefined && scope.trim() !== "")
        throw new TesseraError("invalid_scope", "scope exceeds the grant");
      return sendTokens(reply, await services.auth.refresh(refreshToken, arrivalContextOf(request)));
    },
  );

  app.post<{ Body: RevocationRequest }>(
    "/oauth/revoke",
    { schema: oauthSchemas.revoke, bodyLimit: AUTH_BODY_LIMIT, preParsing: formOnly },
    async (request, reply) => {
      refuseClientAuthentication(request);
      await services.auth.revokeToken(request.body.token, contextOf(request));
      // RFC 7009 §2.2: 200 whether or not the token was valid.
      return reply.code(200).header("cache-control", "no-store").send();
    },
  );

  app.get("/.well-known/jwks.json", { schema: oauthSchemas.jwks }, (_request, reply) =>
    reply.header("cache-control", `public, max-age=${JWKS_CACHE_SECONDS}`).send(services.jwks),
  );

  app.get("/.well-known/oauth-authorization-server", { schema: oauthSchemas.metadata }, (_request, reply) =>
    reply.header("cache-control", "public, max-age=300").send({
      issuer: services.config.issuer,
      token_endpoint: `${baseUrl}/oauth/token`,
      revocation_endpoint: `${baseUrl}/oauth/revoke`,
      // HS256 keys are secret: there is no key set to point verifiers at.
      ...(services.config.signingAlgorithm === "HS256" ? {} : { jwks_uri: `${baseUrl}/.well-known/jwks.json` }),
      grant_types_supported: ["refresh_token"],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: ["none"],
      revocation_endpoint_auth_methods_supported: ["none"],
      introspection_endpoint: `${baseUrl}/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: introspectionAuthMethods(services.introspection),
    }),
  );
}

/**
 * Tessera serves public clients only (metadata: `token_endpoint_auth_methods_supported:
 * ["none"]`). Client credentials it cannot check are refused as `invalid_client` rather than
 * ignored, so a misconfigured confidential client learns at once (RFC 6749 §2.3, §5.2).
 */
function refuseClientAuthentication(request: FastifyRequest): void {
  const scheme = request.headers.authorization?.trimStart().split(" ", 1)[0]?.toLowerCase();
  const body = request.body as object; // the route schema requires an object
  if (scheme === "basic" || "client_secret" in body || "client_assertion" in body) {
    throw new TesseraError("client_authentication_unsupported", "client authentication is not supported");
  }
}

/** True when a route is one of the RFC 6749 form endpoints, whose errors are all 400. */
export function isOAuthRoute(url: string | undefined): boolean {
  return url !== undefined && /\/oauth\/(token|revoke)$/.test(url);
}
