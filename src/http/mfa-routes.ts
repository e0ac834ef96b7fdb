import type { FastifyInstance, FastifyReply } from "fastify";
import type { AuthService } from "../service/auth-service.js";
import { normalizeUsername } from "../service/credential-policy.js";
import type { MfaProof, MfaService } from "../service/mfa-service.js";
import type { RefreshCookie } from "./cookie-mode.js";
import type { RateLimits } from "./rate-limits.js";
import { bearerGuard, contextOf, onlyMediaType, sendTokens } from "./request-context.js";
import { AUTH_BODY_LIMIT, mfaCookieSchemas, mfaSchemas } from "./schemas.js";

interface MfaLoginBody {
  mfa_token: string;
  code?: string;
  recovery_code?: string;
}

interface CodeBody {
  code: string;
}

interface DisableBody {
  code?: string;
  password?: string;
}

/** Options of {@link registerMfaRoutes}. */
export interface MfaRoutesOptions {
  readonly auth: AuthService;
  readonly mfa: MfaService;
  readonly limits: RateLimits;
  /** Cookie mode's refresh-token cookie; `null` (default) when cookie mode is off. */
  readonly cookie?: RefreshCookie | null;
}

/**
 * The login limits' account key of a user's second factor: apart from the password's, so that a
 * right password (which clears its failures) never clears wrong codes. An unknown or spent
 * `mfa_token` names no user: it counts against its client's IP, never one key shared by all.
 */
function mfaLimitKey(userId: string | null, ip: string): string {
  return userId === null ? `mfa-ip:${ip}` : `mfa:${userId}`;
}

/**
 * Marks an answer holding a TOTP secret or recovery codes as never to be stored, whatever a host
 * app's own hooks set (RFC 9111 §5.2.2.5).
 */
function noStore(reply: FastifyReply): FastifyReply {
  return reply.header("cache-control", "no-store").header("pragma", "no-cache");
}

/** Registers `POST /auth/login/mfa`, `POST /auth/mfa/totp`, `POST /auth/mfa/totp/confirm` and `DELETE /auth/mfa/totp`. */
export function registerMfaRoutes(app: FastifyInstance, { auth, mfa, limits, cookie = null }: MfaRoutesOptions): void {
  const schemas = cookie === null ? mfaSchemas : mfaCookieSchemas;
  const jsonOnly = onlyMediaType("application/json");
  const { preValidation, principalOf } = bearerGuard(auth);
  const bearer = { preValidation };

  app.post<{ Body: MfaLoginBody }>(
    "/auth/login/mfa",
    { schema: schemas.loginMfa, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly },
    async (request, reply) => {
      const { mfa_token: mfaToken, code, recovery_code: recoveryCode } = request.body;
      const proof: MfaProof = code !== undefined ? { code } : { recoveryCode: recoveryCode ?? "" };
      const userId = await mfa.challengedUserId(mfaToken);
      const tokens = await limits.login(request.ip, mfaLimitKey(userId, request.ip), () =>
        auth.completeMfaLogin(mfaToken, proof, contextOf(request)),
      );
      return sendTokens(reply, tokens, cookie);
    },
  );

  app.post(
    "/auth/mfa/totp",
    { schema: schemas.enrollTotp, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly, ...bearer },
    async (request, reply) => {
      const enrolment = await mfa.enrollTotp(principalOf(request));
      return noStore(reply).send({ secret: enrolment.secret, uri: enrolment.uri, qr_svg: enrolment.qrSvg });
    },
  );

  app.post<{ Body: CodeBody }>(
    "/auth/mfa/totp/confirm",
    { schema: schemas.confirmTotp, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly, ...bearer },
    async (request, reply) => {
      const principal = principalOf(request);
      const recoveryCodes = await limits.login(request.ip, mfaLimitKey(principal.userId, request.ip), () =>
        mfa.confirmTotp(principal, request.body.code, contextOf(request)),
      );
      return noStore(reply).send({ recovery_codes: recoveryCodes });
    },
  );

  app.delete<{ Body: DisableBody }>(
    "/auth/mfa/totp",
    { schema: schemas.disableTotp, bodyLimit: AUTH_BODY_LIMIT, preParsing: jsonOnly, ...bearer },
    async (request, reply) => {
      const principal = principalOf(request);
      const { code, password } = request.body;
      const context = contextOf(request);
      // A stolen access token must not buy unlimited guesses: a password counts as a login does, a code as a code.
      if (password !== undefined) {
        const { username } = await auth.me(principal);
        await limits.login(request.ip, normalizeUsername(username), () =>
          mfa.disableTotp(principal, { password }, context),
        );
      } else {
        await limits.login(request.ip, mfaLimitKey(principal.userId, request.ip), () =>
          mfa.disableTotp(principal, { code: code ?? "" }, context),
        );
      }
      return reply.code(204).send();
    },
  );
}
