import type { FastifyInstance } from "fastify";
import { type AccountService, checkEmail } from "../service/account-service.js";
import type { AuthService } from "../service/auth-service.js";
import { normalizeUsername } from "../service/credential-policy.js";
import type { RateLimits } from "./rate-limits.js";
import { bearerGuard, contextOf, onlyMediaType } from "./request-context.js";
import { accountCookieSchemas, accountSchemas, AUTH_BODY_LIMIT } from "./schemas.js";

interface EmailBody {
  email: string;
}

interface TokenBody {
  token: string;
}

interface ResetBody {
  token: string;
  password: string;
}

interface ChangePasswordBody {
  current_password: string;
  new_password: string;
}

/** Options of {@link registerAccountRoutes}. */
export interface AccountRoutesOptions {
  readonly auth: AuthService;
  readonly account: AccountService;
  readonly limits: RateLimits;
  /** Whether cookie mode is on (its CSRF check covers these routes); default false. */
  readonly cookieMode?: boolean;
}

/** Registers the end user's own account routes: `POST /auth/password`, `POST /auth/email`, `POST /auth/email/verify`. */
export function registerAccountRoutes(
  app: FastifyInstance,
  { auth, account, limits, cookieMode = false }: AccountRoutesOptions,
): void {
  const schemas = cookieMode ? accountCookieSchemas : accountSchemas;
  const { preValidation, principalOf } = bearerGuard(auth);
  const bearer = { preValidation };

  app.post<{ Body: ChangePasswordBody }>(
    "/auth/password",
    {
      schema: schemas.changePassword,
      bodyLimit: AUTH_BODY_LIMIT,
      preParsing: onlyMediaType("application/json"),
      ...bearer,
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { username } = await auth.me(principal);
      // A stolen access token must not buy unlimited guesses at the password: the same limits as login.
      await limits.login(request.ip, normalizeUsername(username), () =>
        account.changePassword(principal, request.body.current_password, request.body.new_password, contextOf(request)),
      );
      return reply.code(204).send();
    },
  );

  app.post<{ Body: EmailBody }>(
    "/auth/password/forgot",
    { schema: schemas.forgotPassword, bodyLimit: AUTH_BODY_LIMIT, preParsing: onlyMediaType("application/json") },
    async (request, reply) => {
      const { email } = request.body;
      // Counted by the address's key, known or not, before any lookup.
      await limits.passwordReset(request.ip, checkEmail(email).key);
      await account.forgotPassword(email, contextOf(request));
      return reply.code(202).send();
    },
  );

  app.post<{ Body: ResetBody }>(
    "/auth/password/reset",
    {
      schema: schemas.resetPassword,
      bodyLimit: AUTH_BODY_LIMIT,
      preParsing: onlyMediaType("application/json"),
      ...(limits.perClient ? { onRequest: limits.perClient } : {}),
    },
    async (request, reply) => {
      await account.resetPassword(request.body.token, request.body.password, contextOf(request));
      return reply.code(204).send();
    },
  );

  app.post<{ Body: EmailBody }>(
    "/auth/email",
    { schema: schemas.setEmail, bodyLimit: AUTH_BODY_LIMIT, preParsing: onlyMediaType("application/json"), ...bearer },
    async (request, reply) => {
      const principal = principalOf(request);
      const { email } = request.body;
      // Per account, whatever the address: a mailbox must not be flooded with links, nor the taken
      // addresses found out by trying them. A malformed one costs nothing.
      checkEmail(email);
      await limits.verificationMail(principal.userId);
      await account.setEmail(principal, email, contextOf(request));
      return reply.code(202).send();
    },
  );

  app.post<{ Body: TokenBody }>(
    "/auth/email/verify",
    {
      schema: schemas.verifyEmail,
      bodyLimit: AUTH_BODY_LIMIT,
      preParsing: onlyMediaType("application/json"),
      ...(limits.perClient ? { onRequest: limits.perClient } : {}),
    },
    async (request, reply) => {
      await account.verifyEmail(request.body.token, contextOf(request));
      return reply.code(204).send();
    },
  );
}
