import { randomBytes, randomUUID } from "node:crypto";
import type { AccessTokenClaims } from "../core/access-token.js";
import { addSeconds, type Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import {
  deriveSuccessorToken,
  generateRefreshToken,
  hashRefreshToken,
  isWellFormedRefreshToken,
} from "../core/refresh-token.js";
import { decideRotation } from "../core/rotation.js";
import type { RefreshTokenLookup, SessionRecord, Store, UserRecord } from "../store/store.js";
import type { AccountMail } from "./account-mail.js";
import { type CheckedEmail, checkEmail } from "./account-service.js";
import type { AuditSubject, AuditTrail } from "./audit-trail.js";
import type { MfaChallenge, MfaProof, MfaService } from "./mfa-service.js";
import type { ServiceConfig } from "./config.js";
import { checkPasswordText } from "./credential-policy.js";
import type { PasswordHasher } from "./password-hasher.js";
import { type RequestContext, storedContext } from "./request-context.js";
import type { SessionRevocations } from "./session-revocations.js";
import { type SessionView, sessionViewsOf, type UserView, userViewOf } from "./views.js";
import type { SigningKeys } from "./signing-keys.js";
import { createUser } from "./user-creation.js";
import { findUserByName } from "./username-keys.js";

/** Tokens handed to a client after login or refresh. */
export interface IssuedTokens {
  readonly accessToken: string;
  /** Seconds until the access token expires. */
  readonly accessTokenExpiresIn: number;
  readonly refreshToken: string;
  /** Seconds until the refresh token expires if unused. */
  readonly refreshTokenExpiresIn: number;
  readonly sessionId: string;
  readonly userId: string;
}

/** What a password login leads to: tokens, or the second step when the user has TOTP on. */
export type SignInResult =
  | { readonly kind: "tokens"; readonly tokens: IssuedTokens }
  | { readonly kind: "mfa_required"; readonly challenge: MfaChallenge };

/** RFC 8176 methods of a password login. */
export const PASSWORD_AMR: readonly string[] = Object.freeze(["pwd"]);
/** RFC 8176 methods of a password login completed with a second factor. */
const MFA_AMR = Object.freeze(["pwd", "otp"]);

/** Who an access token speaks for, after verification and a session check. */
export interface Principal {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  readonly claims: AccessTokenClaims;
}

/** Dependencies of {@link AuthService.create}. */
export interface AuthServiceDependencies {
  readonly store: Store;
  readonly config: Readonly<ServiceConfig>;
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly keys: SigningKeys;
  readonly revocations: SessionRevocations;
  readonly audit: AuditTrail;
  readonly logger: Logger;
  /** The second factor: a user with TOTP on completes a login with a code. */
  readonly mfa: MfaService;
  /** Mails the verification link of an address given at registration; default none (no mail). */
  readonly mail?: AccountMail | null;
}

/** The end user's flows: register, login, refresh, logout, sessions, and access-token checks. */
export class AuthService {
  readonly #store: Store;
  readonly #config: Readonly<ServiceConfig>;
  readonly #clock: Clock;
  readonly #hasher: PasswordHasher;
  readonly #keys: SigningKeys;
  readonly #revocations: SessionRevocations;
  readonly #audit: AuditTrail;
  readonly #logger: Logger;
  readonly #mfa: MfaService;
  readonly #mail: AccountMail | null;
  readonly #dummyHash: string;

  private constructor(deps: AuthServiceDependencies, dummyHash: string) {
    this.#store = deps.store;
    this.#config = deps.config;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#keys = deps.keys;
    this.#revocations = deps.revocations;
    this.#audit = deps.audit;
    this.#logger = deps.logger;
    this.#mfa = deps.mfa;
    this.#mail = deps.mail ?? null;
    this.#dummyHash = dummyHash;
  }

  /** A ready service over a migrated store and loaded keys. */
  static async create(deps: AuthServiceDependencies): Promise<AuthService> {
    // Unknown users get the same argon2 work as known ones, against this hash.
    const dummyHash = deps.hasher.unknownUserHash ?? (await deps.hasher.hash(randomBytes(24).toString("base64url")));
    return new AuthService(deps, dummyHash);
  }

  /**
   * Creates a user with the default roles and, when `email` is given, that address, unverified,
   * stored with the user; its verification link is mailed after this returns, and a failed mail
   * is only logged. Throws `registration_closed` when registration is closed, `mail_unavailable`
   * for an address when the server sends no mail, `invalid_request` for a bad username, password
   * or address, `username_taken`, `email_taken`.
   */
  async register(
    username: string,
    password: string,
    context: RequestContext,
    options: { readonly email?: string } = {},
  ): Promise<UserView> {
    if (this.#config.registration === "closed") fail("registration_closed", "registration is closed");
    const mail = this.#mail;
    let email: CheckedEmail | null = null;
    if (options.email !== undefined) {
      if (mail === null || !mail.enabled) fail("mail_unavailable", "this server sends no mail");
      email = checkEmail(options.email);
    }
    const deps = { store: this.#store, clock: this.#clock, hasher: this.#hasher, audit: this.#audit };
    const user = await createUser(deps, { username, password, roles: this.#config.defaultRoles, email }, context);
    if (email !== null && mail !== null)
      mail
        .sendVerification(user.id, email.email, email.key)
        .catch((error: unknown) =>
          this.#logger.warn(
            { userId: user.id, err: error instanceof Error ? error.message : "unknown" },
            "verification mail not sent",
          ),
        );
    return user;
  }

  /**
   * Checks a password and opens a session. Unknown users and wrong passwords cost the same
   * argon2 work and fail alike with `invalid_credentials`; a user with TOTP on gets
   * `mfa_required` (use {@link signIn} to receive the second step's token).
   */
  async login(username: string, password: string, context: RequestContext): Promise<IssuedTokens> {
    const result = await this.signIn(username, password, context);
    if (result.kind === "mfa_required") fail("mfa_required", "a second factor is required");
    return result.tokens;
  }

  /**
   * Checks a password; opens a session, or, when the user has TOTP on, issues the token of the
   * second step ({@link completeMfaLogin}) and no session yet. Unknown users and wrong passwords
   * cost the same argon2 work and fail alike with `invalid_credentials`.
   */
  async signIn(username: string, password: string, context: RequestContext): Promise<SignInResult> {
    checkPasswordText(password);
    const user = await findUserByName(this.#store, username);
    const valid = await this.#hasher.verify(user?.passwordHash ?? this.#dummyHash, password);
    // A disabled account fails exactly as a wrong password does, after the same hashing work.
    if (!user || !valid || user.disabledAt) {
      // Told apart here only: the client gets the same answer in every case.
      const reason = !user ? "unknown_user" : !valid ? "wrong_password" : "user_disabled";
      await this.#audit.record("login_failed", context, { userId: user?.id ?? null }, { reason });
      fail("invalid_credentials", "the username or password is wrong");
    }
    const challenge = await this.#mfa.createChallenge(user);
    if (challenge !== null) return { kind: "mfa_required", challenge };
    return { kind: "tokens", tokens: await this.#openSession(user, PASSWORD_AMR, context) };
  }

  /**
   * The second step of a login: checks a TOTP or recovery code against the `mfa_token` of
   * {@link signIn} and opens a session with `amr` `["pwd", "otp"]`. Throws `mfa_login_invalid`
   * (see {@link MfaService.verifyChallenge}), `invalid_credentials` when the account was disabled.
   */
  async completeMfaLogin(mfaToken: string, proof: MfaProof, context: RequestContext): Promise<IssuedTokens> {
    const userId = await this.#mfa.verifyChallenge(mfaToken, proof, context);
    const user = await this.#store.findUserById(userId);
    if (!user || user.disabledAt) fail("invalid_credentials", "the username or password is wrong");
    return this.#openSession(user, MFA_AMR, context);
  }

  async #openSession(user: UserRecord, amr: readonly string[], context: RequestContext): Promise<IssuedTokens> {
    const now = this.#clock.now();
    const refreshToken = generateRefreshToken();
    const expiresAt = addSeconds(now, this.#config.sessionTtlSeconds);
    const tokenExpiresAt = this.#refreshExpiry(now, { expiresAt });
    const session: SessionRecord = {
      id: randomUUID(),
      userId: user.id,
      createdAt: now,
      lastUsedAt: now,
      expiresAt,
      idleExpiresAt: tokenExpiresAt,
      revokedAt: null,
      revokedReason: null,
      ...storedContext(context),
      amr,
    };
    await this.#store.createSession(session, {
      id: randomUUID(),
      sessionId: session.id,
      tokenHash: hashRefreshToken(refreshToken),
      parentId: null,
      createdAt: now,
      expiresAt: tokenExpiresAt,
      usedAt: null,
    });
    // An operator may have disabled the account since it was read, revoking its sessions before
    // this one existed: look again now that it does.
    const current = await this.#store.findUserById(user.id);
    if (!current || current.disabledAt) {
      await this.#revocations.revokeSession(session.id, "admin");
      fail("invalid_credentials", "the username or password is wrong");
    }
    await this.#audit.record("login_succeeded", context, { userId: user.id, sessionId: session.id });
    return this.#issue(user, session, refreshToken, tokenExpiresAt, now);
  }

  /**
   * Rotates a refresh token: returns new tokens and marks the presented one used. A repeat
   * within the grace window returns the same successor; other reuse revokes the session.
   * Throws `refresh_token_malformed`, `refresh_token_unknown`, `refresh_token_expired`,
   * `refresh_token_reused`, `session_revoked` or `session_expired`.
   */
  async refresh(presented: string, context: RequestContext): Promise<IssuedTokens> {
    if (!isWellFormedRefreshToken(presented)) fail("refresh_token_malformed", "the refresh token is malformed");
    const tokenHash = hashRefreshToken(presented);
    // A lost race re-reads once: the winner's successor is then visible.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const found = await this.#store.findRefreshToken(tokenHash);
      if (!found) fail("refresh_token_unknown", "the refresh token is not known");
      if (found.user.disabledAt) {
        // Disabling revoked the user's sessions; one that slipped past ends here.
        await this.#revocations.revokeSession(found.session.id, "admin");
        fail("session_revoked", "the session has been revoked");
      }
      const now = this.#clock.now();
      // The grace window is judged on the database's clock, as of the request's arrival: what
      // it waited here (for the database, for a lost race) is measured on the monotonic clock.
      const waitedMs = context.receivedAt === undefined ? 0 : Math.max(0, performance.now() - context.receivedAt);
      const arrivedAt = new Date(found.readAt.getTime() - waitedMs);
      const successor = found.token.usedAt ? await this.#store.findSuccessor(found.token.id) : null;
      const decision = decideRotation({
        token: found.token,
        session: found.session,
        successor,
        now,
        arrivedAt,
        graceSeconds: this.#config.refreshGraceSeconds,
      });
      switch (decision.action) {
        case "reject":
          fail(decision.code, "the refresh token cannot be used");
        // falls through: fail() never returns
        case "revoke_session":
          await this.#revokeForReuse(found, context);
          fail(decision.code, "the refresh token was already used; the session is revoked");
        // falls through
        case "repeat": {
          const value = deriveSuccessorToken(this.#keys.rotationKey, presented);
          await this.#audit.record("refresh_grace_repeat", context, subjectOf(found), { tokenId: found.token.id });
          return this.#issue(found.user, found.session, value, successor!.expiresAt, now);
        }
        case "rotate": {
          const value = deriveSuccessorToken(this.#keys.rotationKey, presented);
          const expiresAt = this.#refreshExpiry(now, found.session);
          const won = await this.#store.rotateRefreshToken({
            presentedId: found.token.id,
            sessionId: found.session.id,
            now,
            successor: {
              id: randomUUID(),
              sessionId: found.session.id,
              tokenHash: hashRefreshToken(value),
              parentId: found.token.id,
              createdAt: now,
              expiresAt,
              usedAt: null,
            },
          });
          if (won) {
            await this.#audit.record("token_refreshed", context, subjectOf(found), { tokenId: found.token.id });
            return this.#issue(found.user, found.session, value, expiresAt, now);
          }
        }
      }
    }
    // Only reachable if the database keeps changing under us: retryable, not the session's end.
    return fail("store_unavailable", "the refresh token could not be rotated; retry");
  }

  /** Ends the session of a refresh token. Unknown or malformed tokens are ignored. */
  async logout(presented: string, context: RequestContext): Promise<void> {
    if (!isWellFormedRefreshToken(presented)) return;
    const found = await this.#store.findRefreshToken(hashRefreshToken(presented));
    if (!found) return;
    if (await this.#revocations.revokeSession(found.session.id, "logout")) {
      await this.#audit.record("logout", context, subjectOf(found));
    }
  }

  /** Ends every session of the principal's user; returns how many were open. */
  async logoutAll(principal: Principal, context: RequestContext): Promise<number> {
    const sessionIds = await this.#revocations.revokeUserSessions(principal.userId, "logout_all");
    const subject = { userId: principal.userId, sessionId: principal.sessionId };
    const details = { reason: "logout_all", count: sessionIds.length, by: principal.userId } as const;
    await this.#audit.record("sessions_revoked", context, subject, details);
    return sessionIds.length;
  }

  /**
   * Ends every session of the principal's user but the principal's own, in one store call (so a
   * session opened a moment ago ends too); returns the ids of the sessions it ended.
   */
  async logoutOthers(principal: Principal, context: RequestContext): Promise<string[]> {
    const sessionIds = await this.#revocations.revokeUserSessions(
      principal.userId,
      "logout_others",
      principal.sessionId,
    );
    const subject = { userId: principal.userId, sessionId: principal.sessionId };
    const details = { reason: "logout_others", count: sessionIds.length, by: principal.userId } as const;
    await this.#audit.record("sessions_revoked", context, subject, details);
    return sessionIds;
  }

  /**
   * Verifies an access token and checks that its session is still open. Throws an
   * `access_token_*` code.
   */
  async authenticate(accessToken: string): Promise<Principal> {
    const claims = await this.#keys.verifyAccessToken(accessToken);
    const session = await this.#store.findSession(claims.sid);
    const now = this.#clock.now();
    if (!session || session.userId !== claims.sub || session.revokedAt || now >= session.expiresAt) {
      fail("access_token_revoked", "the session of the access token has ended");
    }
    return { userId: claims.sub, sessionId: claims.sid, roles: claims.roles, claims };
  }

  /** The principal's user. Throws `access_token_revoked` if the user is gone. */
  async me(principal: Principal): Promise<UserView> {
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    return userViewOf(user);
  }

  /** The user's open sessions, newest first, marking the principal's own. */
  async listSessions(principal: Principal): Promise<SessionView[]> {
    return sessionViewsOf(
      await this.#store.listActiveSessions(principal.userId, this.#clock.now()),
      principal.sessionId,
    );
  }

  /** Revokes one of the principal's own sessions. Throws `session_not_found` for any other id. */
  async revokeSession(principal: Principal, sessionId: string, context: RequestContext): Promise<void> {
    const session = await this.#store.findSession(sessionId);
    if (
      !session ||
      session.userId !== principal.userId ||
      !(await this.#revocations.revokeSession(sessionId, "user"))
    ) {
      fail("session_not_found", "no such open session");
    }
    const details = { reason: "user", by: principal.userId } as const;
    await this.#audit.record("session_revoked", context, { userId: principal.userId, sessionId }, details);
  }

  /**
   * RFC 7009 revocation: a refresh token or an access token ends its session. Tokens that are
   * unknown, malformed or already invalid are ignored, as §2.2 asks.
   */
  async revokeToken(token: string, context: RequestContext): Promise<void> {
    if (isWellFormedRefreshToken(token)) return this.logout(token, context);
    let claims: AccessTokenClaims;
    try {
      claims = this.#keys.verifyLoaded(token);
    } catch {
      return;
    }
    if (await this.#revocations.revokeSession(claims.sid, "revocation")) {
      await this.#audit.record(
        "session_revoked",
        context,
        { userId: claims.sub, sessionId: claims.sid },
        { reason: "revocation", by: claims.sub },
      );
    }
  }

  #refreshExpiry(now: Date, session: Pick<SessionRecord, "expiresAt">): Date {
    const idle = addSeconds(now, this.#config.refreshTokenTtlSeconds);
    return idle < session.expiresAt ? idle : session.expiresAt;
  }

  #issue(
    user: UserRecord,
    session: Pick<SessionRecord, "id" | "expiresAt" | "amr">,
    refreshToken: string,
    refreshExpiresAt: Date,
    now: Date,
  ): IssuedTokens {
    // The access token ends with its session at the latest, as expires_in says.
    const { token, claims } = this.#keys.signAccessToken({
      userId: user.id,
      sessionId: session.id,
      roles: user.roles,
      notAfter: session.expiresAt,
      // The session's methods, kept by every refresh: a second factor is not lost by refreshing.
      amr: session.amr ?? PASSWORD_AMR,
    });
    return {
      accessToken: token,
      accessTokenExpiresIn: Math.max(0, claims.exp - claims.iat),
      refreshToken,
      refreshTokenExpiresIn: Math.max(0, Math.floor((refreshExpiresAt.getTime() - now.getTime()) / 1000)),
      sessionId: session.id,
      userId: user.id,
    };
  }

  async #revokeForReuse(found: RefreshTokenLookup, context: RequestContext): Promise<void> {
    const revoked = await this.#revocations.revokeSession(found.session.id, "refresh_token_reused");
    const subject = subjectOf(found);
    // sessionRevoked is false when a racing request revoked the session first.
    await this.#audit.record("refresh_token_reused", context, subject, {
      tokenId: found.token.id,
      sessionRevoked: revoked,
    });
    this.#logger.warn(subject, "refresh token reuse detected; session revoked");
  }
}

/** The audit subject of a refresh token's lookup: its user and session. */
function subjectOf(found: RefreshTokenLookup): AuditSubject {
  return { userId: found.user.id, sessionId: found.session.id };
}
