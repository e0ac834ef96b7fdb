import { randomBytes, randomUUID } from "node:crypto";
import {
  type AccessTokenClaims,
  createAccessTokenSigner,
  createAccessTokenVerifier,
  decodeProtectedHeader,
  type ProtectedHeader,
} from "../core/access-token.js";
import { addSeconds, type Clock, systemClock } from "../core/clock.js";
import { type ErrorCode, TesseraError } from "../core/errors.js";
import { deriveSuccessorToken, generateRefreshToken, hashRefreshToken, isWellFormedRefreshToken } from "../core/refresh-token.js";
import { decideRotation } from "../core/rotation.js";
import type { PublicJwk } from "../core/signing-key.js";
import { LIMITS, type RefreshTokenLookup, type RevokedSession, type SessionRecord, type Store, type UserRecord } from "../store/store.js";
import { ROLE_NAME, type TesseraConfig } from "./config.js";
import { type KeyRing, type KeyRingOptions, loadKeyRing, rotateSigningKey, type ServiceLogger } from "./key-ring.js";
import { createArgon2Hasher, type PasswordHasher } from "./password-hasher.js";

/** Where a request came from, recorded on sessions and audit events. */
export interface RequestContext {
  readonly ip: string | null;
  readonly userAgent: string | null;
}

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

/** Who an access token speaks for, after verification and a session check. */
export interface Principal {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  readonly claims: AccessTokenClaims;
}

/** A session as its owner sees it. */
export interface SessionView {
  readonly id: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  /** When the session ends unless refreshed: the earlier of idle and absolute expiry. */
  readonly expiresAt: Date;
  readonly userAgent: string | null;
  readonly ip: string | null;
  /** True for the session of the access token asking. */
  readonly current: boolean;
}

/** A registered user as the API shows it. */
export interface UserView {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
}

/** Sessions that just ended; access tokens naming them must stop working. */
export interface SessionsRevokedEvent {
  readonly sessionIds: readonly string[];
  readonly revokedAt: Date;
}

/** Dependencies of {@link AuthService.create}. */
export interface AuthServiceDependencies {
  readonly store: Store;
  readonly config: Readonly<TesseraConfig>;
  readonly clock?: Clock;
  readonly hasher?: PasswordHasher;
  readonly logger: ServiceLogger;
}

const KEY_RELOAD_COOLDOWN_MS = 10_000;

/** Shortest and longest accepted passwords, in characters. */
export const PASSWORD_LENGTH = Object.freeze({ min: 8, max: 1024 });
// 3 to 64 letters (with their combining marks, as in Devanagari or a lower-cased İ), digits or
// . _ @ + -, at least one of them a letter or digit.
const USERNAME = /^(?=.*[\p{L}\p{N}])[\p{L}\p{M}\p{N}._@+-]{3,64}$/u;
// A lone UTF-16 surrogate has no UTF-8 form: argon2 would hash every one as U+FFFD.
const LONE_SURROGATE = /\p{Cs}/u;

/** Length in characters (code points), as the README and the request schema count it. */
function characters(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** Usernames compare case- and width-insensitively: `Alice` and `ａｌｉｃｅ` are one user. */
export function normalizeUsername(username: string): string {
  return username.normalize("NFKC").toLowerCase();
}

function reject(code: ErrorCode, message: string): never {
  throw new TesseraError(code, message);
}

function truncate(value: string | null, max: number): string | null {
  return value === null ? null : value.slice(0, max);
}

/** The use cases of Tessera: register, login, refresh, logout, sessions. */
export class AuthService {
  readonly #store: Store;
  readonly #config: Readonly<TesseraConfig>;
  readonly #clock: Clock;
  readonly #hasher: PasswordHasher;
  readonly #logger: ServiceLogger;
  readonly #keyRingOptions: KeyRingOptions;
  #keys: KeyRing;
  #sign: ReturnType<typeof createAccessTokenSigner>;
  #lastKeyReload = Number.NEGATIVE_INFINITY;
  #keyReload: Promise<void> | null = null;
  readonly #dummyHash: string;
  readonly #verify: ReturnType<typeof createAccessTokenVerifier>;
  readonly #revocationListeners = new Set<(event: SessionsRevokedEvent) => void>();

  private constructor(deps: Required<AuthServiceDependencies>, keyRingOptions: KeyRingOptions, keys: KeyRing, dummyHash: string) {
    this.#store = deps.store;
    this.#config = deps.config;
    this.#clock = deps.clock;
    this.#hasher = deps.hasher;
    this.#logger = deps.logger;
    this.#keyRingOptions = keyRingOptions;
    this.#keys = keys;
    this.#sign = this.#signerFor(keys);
    this.#dummyHash = dummyHash;
    this.#verify = createAccessTokenVerifier({
      issuer: deps.config.issuer,
      audience: deps.config.audience,
      algorithms: [deps.config.signingAlgorithm],
      findKey: (kid, alg) => this.#keys.findVerificationKey(kid, alg),
      clockSkewSeconds: deps.config.clockSkewSeconds,
      clock: deps.clock,
    });
  }

  #signerFor(keys: KeyRing): ReturnType<typeof createAccessTokenSigner> {
    return createAccessTokenSigner({
      key: keys.signingKey,
      issuer: this.#config.issuer,
      audience: this.#config.audience,
      ttlSeconds: this.#config.accessTokenTtlSeconds,
      clock: this.#clock,
    });
  }

  /** Loads (or creates) the signing keys and returns a ready service. The store must be migrated. */
  static async create(deps: AuthServiceDependencies): Promise<AuthService> {
    const full: Required<AuthServiceDependencies> = {
      clock: systemClock,
      hasher: createArgon2Hasher(),
      ...deps,
    };
    const keyRingOptions: KeyRingOptions = {
      store: full.store,
      algorithm: full.config.signingAlgorithm,
      secret: full.config.secret,
      hs256Secret: full.config.hs256Secret,
      // Other instances may sign with a retired key until their next reload (a minute at most).
      retiredKeyGraceSeconds: full.config.accessTokenTtlSeconds + full.config.clockSkewSeconds + 60,
      clock: full.clock,
      logger: full.logger,
    };
    const keys = await loadKeyRing(keyRingOptions);
    // Unknown users get the same argon2 work as known ones, against this hash.
    const dummyHash = full.hasher.unknownUserHash ?? (await full.hasher.hash(randomBytes(24).toString("base64url")));
    return new AuthService(full, keyRingOptions, keys, dummyHash);
  }

  /**
   * Re-reads the signing keys from the store: picks up keys rotated by another instance or by
   * `tessera keys rotate`, and drops retired keys past their grace. Servers call it periodically.
   */
  reloadKeys(): Promise<void> {
    // Concurrent callers share one reload.
    this.#keyReload ??= (async () => {
      this.#lastKeyReload = performance.now();
      try {
        const keys = await loadKeyRing(this.#keyRingOptions);
        if (keys.signingKey.kid !== this.#keys.signingKey.kid) this.#sign = this.#signerFor(keys);
        this.#keys = keys;
      } finally {
        this.#keyReload = null;
      }
    })();
    return this.#keyReload;
  }

  /**
   * Creates a new signing key, retires the others (still published for one access-token
   * lifetime so tokens they signed keep verifying) and starts signing with the new one.
   * Returns the new key id. Throws `TypeError` for HS256, whose key is the configured secret.
   */
  async rotateSigningKey(): Promise<string> {
    const kid = await rotateSigningKey(this.#keyRingOptions);
    await this.reloadKeys();
    return kid;
  }

  /** The configuration this service runs with. */
  get config(): Readonly<TesseraConfig> {
    return this.#config;
  }

  /** Public keys for the JWKS endpoint. */
  get jwks(): { readonly keys: readonly PublicJwk[] } {
    return this.#keys.jwks;
  }

  /** Succeeds when the store answers; throws `store_unavailable` otherwise. */
  async checkReady(): Promise<void> {
    await this.#store.ping();
  }

  /**
   * Calls `listener` after sessions are revoked (logout, logout-all, revocation, reuse).
   * Returns a function that removes it. Listener errors are logged, never thrown.
   */
  onSessionsRevoked(listener: (event: SessionsRevokedEvent) => void): () => void {
    this.#revocationListeners.add(listener);
    return () => this.#revocationListeners.delete(listener);
  }

  /** Closes the store. */
  async close(): Promise<void> {
    await this.#store.close();
  }

  /** Creates a user. Throws `invalid_request` for a bad username or password, `username_taken`. */
  async register(username: string, password: string, context: RequestContext): Promise<UserView> {
    const display = username.normalize("NFKC");
    const usernameKey = normalizeUsername(username);
    if (!USERNAME.test(display) || !USERNAME.test(usernameKey)) {
      reject("invalid_request", "username must be 3 to 64 letters, digits or . _ @ + -, with at least one letter or digit");
    }
    const length = characters(password);
    if (length < PASSWORD_LENGTH.min || length > PASSWORD_LENGTH.max) {
      reject("invalid_request", `password must be ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters`);
    }
    if (LONE_SURROGATE.test(password)) reject("invalid_request", "password must be valid Unicode text");
    const user: UserRecord = {
      id: randomUUID(),
      username: display,
      usernameKey,
      passwordHash: await this.#hasher.hash(password),
      roles: this.#config.defaultRoles,
      createdAt: this.#clock.now(),
    };
    if (!(await this.#store.createUser(user))) reject("username_taken", "that username is already registered");
    await this.#audit("user_registered", context, { userId: user.id });
    return { id: user.id, username: user.username, roles: user.roles };
  }

  /**
   * Checks a password and opens a session. Unknown users and wrong passwords cost the same
   * argon2 work and fail alike with `invalid_credentials`.
   */
  async login(username: string, password: string, context: RequestContext): Promise<IssuedTokens> {
    if (LONE_SURROGATE.test(password)) reject("invalid_request", "password must be valid Unicode text");
    const normalized = normalizeUsername(username);
    const user = USERNAME.test(normalized) ? await this.#store.findUserByUsername(normalized) : null;
    const valid = await this.#hasher.verify(user?.passwordHash ?? this.#dummyHash, password);
    if (!user || !valid) {
      await this.#audit("login_failed", context, { userId: user?.id ?? null });
      reject("invalid_credentials", "the username or password is wrong");
    }
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
      userAgent: truncate(context.userAgent, LIMITS.userAgent),
      ip: truncate(context.ip, LIMITS.ip),
    };
    await this.#store.createSession(
      session,
      { id: randomUUID(), sessionId: session.id, tokenHash: hashRefreshToken(refreshToken), parentId: null, createdAt: now, expiresAt: tokenExpiresAt, usedAt: null },
    );
    await this.#audit("login_succeeded", context, { userId: user.id, sessionId: session.id });
    return this.#issue(user, session.id, refreshToken, tokenExpiresAt, now);
  }

  /**
   * Rotates a refresh token: returns new tokens and marks the presented one used. A repeat
   * within the grace window returns the same successor; other reuse revokes the session.
   * Throws `refresh_token_malformed`, `refresh_token_unknown`, `refresh_token_expired`,
   * `refresh_token_reused`, `session_revoked` or `session_expired`.
   */
  async refresh(presented: string, context: RequestContext): Promise<IssuedTokens> {
    if (!isWellFormedRefreshToken(presented)) reject("refresh_token_malformed", "the refresh token is malformed");
    const tokenHash = hashRefreshToken(presented);
    // A lost race re-reads once: the winner's successor is then visible.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const found = await this.#store.findRefreshToken(tokenHash);
      if (!found) reject("refresh_token_unknown", "the refresh token is not known");
      const now = this.#clock.now();
      const successor = found.token.usedAt ? await this.#store.findSuccessor(found.token.id) : null;
      const decision = decideRotation({
        token: found.token,
        session: found.session,
        successor,
        now,
        graceSeconds: this.#config.refreshGraceSeconds,
      });
      switch (decision.action) {
        case "reject":
          reject(decision.code, "the refresh token cannot be used");
        // falls through: reject() never returns
        case "revoke_session":
          await this.#revokeForReuse(found, context);
          reject(decision.code, "the refresh token was already used; the session is revoked");
        // falls through
        case "repeat":
          return this.#issue(found.user, found.session.id, deriveSuccessorToken(this.#keys.rotationKey, presented), successor!.expiresAt, now);
        case "rotate": {
          const value = deriveSuccessorToken(this.#keys.rotationKey, presented);
          const expiresAt = this.#refreshExpiry(now, found.session);
          const won = await this.#store.rotateRefreshToken({
            presentedId: found.token.id,
            sessionId: found.session.id,
            now,
            successor: { id: randomUUID(), sessionId: found.session.id, tokenHash: hashRefreshToken(value), parentId: found.token.id, createdAt: now, expiresAt, usedAt: null },
          });
          if (won) return this.#issue(found.user, found.session.id, value, expiresAt, now);
        }
      }
    }
    // Only reachable if the database keeps changing under us: retryable, not the session's end.
    return reject("store_unavailable", "the refresh token could not be rotated; retry");
  }

  /** Ends the session of a refresh token. Unknown or malformed tokens are ignored. */
  async logout(presented: string, context: RequestContext): Promise<void> {
    if (!isWellFormedRefreshToken(presented)) return;
    const found = await this.#store.findRefreshToken(hashRefreshToken(presented));
    if (!found) return;
    const now = this.#clock.now();
    if (await this.#store.revokeSession(found.session.id, now, "logout")) {
      this.#announce([found.session.id], now);
      await this.#audit("session_revoked", context, { userId: found.user.id, sessionId: found.session.id }, { reason: "logout" });
    }
  }

  /** Ends every session of the principal's user; returns how many were open. */
  async logoutAll(principal: Principal, context: RequestContext): Promise<number> {
    const now = this.#clock.now();
    const sessionIds = await this.#store.revokeUserSessions(principal.userId, now, "logout_all");
    this.#announce(sessionIds, now);
    await this.#audit("sessions_revoked", context, { userId: principal.userId, sessionId: principal.sessionId }, { reason: "logout_all", count: sessionIds.length });
    return sessionIds.length;
  }

  /**
   * Verifies an access token and checks that its session is still open. Throws an
   * `access_token_*` code.
   */
  async authenticate(accessToken: string): Promise<Principal> {
    const header = decodeProtectedHeader(accessToken, [this.#config.signingAlgorithm]);
    await this.#reloadKeysForUnknownKid(header);
    const claims = this.#verify(accessToken, header);
    const session = await this.#store.findSession(claims.sid);
    const now = this.#clock.now();
    if (!session || session.userId !== claims.sub || session.revokedAt || now >= session.expiresAt) {
      reject("access_token_revoked", "the session of the access token has ended");
    }
    return { userId: claims.sub, sessionId: claims.sid, roles: claims.roles, claims };
  }

  /** The principal's user. Throws `access_token_revoked` if the user is gone. */
  async me(principal: Principal): Promise<UserView> {
    const user = await this.#store.findUserById(principal.userId);
    if (!user) reject("access_token_revoked", "the user of the access token no longer exists");
    return { id: user.id, username: user.username, roles: user.roles };
  }

  /** The user's open sessions, newest first, marking the principal's own. */
  listSessions(principal: Principal): Promise<SessionView[]> {
    return this.#sessionViews(principal.userId, principal.sessionId);
  }

  async #sessionViews(userId: string, currentSessionId: string | null): Promise<SessionView[]> {
    const sessions = await this.#store.listActiveSessions(userId, this.#clock.now());
    return sessions.map((session) => ({
      id: session.id,
      createdAt: session.createdAt,
      lastUsedAt: session.lastUsedAt,
      expiresAt: session.idleExpiresAt < session.expiresAt ? session.idleExpiresAt : session.expiresAt,
      userAgent: session.userAgent,
      ip: session.ip,
      current: session.id === currentSessionId,
    }));
  }

  /** Revokes one of the principal's own sessions. Throws `session_not_found` for any other id. */
  async revokeSession(principal: Principal, sessionId: string, context: RequestContext): Promise<void> {
    const session = await this.#store.findSession(sessionId);
    const now = this.#clock.now();
    if (!session || session.userId !== principal.userId || !(await this.#store.revokeSession(sessionId, now, "user"))) {
      reject("session_not_found", "no such open session");
    }
    this.#announce([sessionId], now);
    await this.#audit("session_revoked", context, { userId: principal.userId, sessionId }, { reason: "user" });
  }

  /**
   * RFC 7009 revocation: a refresh token or an access token ends its session. Tokens that are
   * unknown, malformed or already invalid are ignored, as §2.2 asks.
   */
  async revokeToken(token: string, context: RequestContext): Promise<void> {
    if (isWellFormedRefreshToken(token)) return this.logout(token, context);
    let claims: AccessTokenClaims;
    try {
      claims = this.#verify(token);
    } catch {
      return;
    }
    const now = this.#clock.now();
    if (await this.#store.revokeSession(claims.sid, now, "revocation")) {
      this.#announce([claims.sid], now);
      await this.#audit("session_revoked", context, { userId: claims.sub, sessionId: claims.sid }, { reason: "revocation" });
    }
  }

  /** Replaces a user's roles (administration). Throws `invalid_request` for an unknown user or a bad role name. */
  async setUserRoles(username: string, roles: readonly string[]): Promise<UserView> {
    if (!roles.every((role) => ROLE_NAME.test(role))) reject("invalid_request", "role names are 1 to 64 letters, digits or _ : . -");
    const user = await this.#store.findUserByUsername(normalizeUsername(username));
    const unique = [...new Set(roles)];
    if (!user || !(await this.#store.setUserRoles(user.id, unique))) reject("invalid_request", "no such user");
    return { id: user.id, username: user.username, roles: unique };
  }

  /** A user's open sessions (administration). Throws `invalid_request` for an unknown user. */
  async listUserSessions(username: string): Promise<SessionView[]> {
    const user = await this.#store.findUserByUsername(normalizeUsername(username));
    if (!user) reject("invalid_request", "no such user");
    return this.#sessionViews(user.id, null);
  }

  /**
   * Revokes a session by id, or every session of a user when `target` is `{ username }`
   * (administration). Returns the revoked session ids (none for one already revoked); an unknown
   * user or session id is `invalid_request`.
   */
  async revokeSessionsAsAdmin(target: { sessionId: string } | { username: string }): Promise<string[]> {
    const now = this.#clock.now();
    const admin: RequestContext = { ip: null, userAgent: "tessera-cli" };
    let revoked: string[];
    if ("sessionId" in target) {
      // An unknown id is a typo worth saying; an already revoked session is simply done.
      if (!(await this.#store.findSession(target.sessionId))) reject("invalid_request", "no such session");
      revoked = (await this.#store.revokeSession(target.sessionId, now, "admin")) ? [target.sessionId] : [];
    } else {
      const user = await this.#store.findUserByUsername(normalizeUsername(target.username));
      if (!user) reject("invalid_request", "no such user");
      revoked = await this.#store.revokeUserSessions(user.id, now, "admin");
    }
    this.#announce(revoked, now);
    for (const sessionId of revoked) await this.#audit("session_revoked", admin, { sessionId }, { reason: "admin" });
    return revoked;
  }

  /**
   * The revocation feed: sessions revoked at or after `since` (clamped to the last access-token
   * lifetime, since older revocations concern only expired tokens), oldest first, and the
   * moment the answer describes.
   */
  async listRecentRevocations(since?: Date): Promise<{ revoked: RevokedSession[]; windowStart: Date; generatedAt: Date }> {
    const generatedAt = this.#clock.now();
    const windowStart = addSeconds(generatedAt, -this.#config.accessTokenTtlSeconds);
    // Nothing can have been revoked after now; a far-future `since` must not reach the store,
    // where SQLite's text timestamps would compare year 10000 before this year.
    if (since !== undefined && since > generatedAt) return { revoked: [], windowStart, generatedAt };
    const from = since !== undefined && since > windowStart ? since : windowStart;
    return { revoked: await this.#store.listRevokedSessions(from), windowStart, generatedAt };
  }

  // A token signed with a key this instance has not loaded yet (rotated elsewhere) triggers one
  // reload, at most every 10 s, so random kids cannot turn into a flood of queries.
  async #reloadKeysForUnknownKid(header: ProtectedHeader): Promise<void> {
    if (this.#keys.findVerificationKey(header.kid, header.alg)) return;
    if (this.#keyReload) return this.#keyReload;
    if (performance.now() - this.#lastKeyReload < KEY_RELOAD_COOLDOWN_MS) return;
    await this.reloadKeys();
  }

  #refreshExpiry(now: Date, session: Pick<SessionRecord, "expiresAt">): Date {
    const idle = addSeconds(now, this.#config.refreshTokenTtlSeconds);
    return idle < session.expiresAt ? idle : session.expiresAt;
  }

  #issue(user: UserRecord, sessionId: string, refreshToken: string, refreshExpiresAt: Date, now: Date): IssuedTokens {
    const { token } = this.#sign({ userId: user.id, sessionId, roles: user.roles });
    return {
      accessToken: token,
      accessTokenExpiresIn: this.#config.accessTokenTtlSeconds,
      refreshToken,
      refreshTokenExpiresIn: Math.max(0, Math.floor((refreshExpiresAt.getTime() - now.getTime()) / 1000)),
      sessionId,
      userId: user.id,
    };
  }

  async #revokeForReuse(found: RefreshTokenLookup, context: RequestContext): Promise<void> {
    const now = this.#clock.now();
    if (await this.#store.revokeSession(found.session.id, now, "refresh_token_reused")) this.#announce([found.session.id], now);
    await this.#audit("refresh_token_reused", context, { userId: found.user.id, sessionId: found.session.id }, { tokenId: found.token.id });
    this.#logger.warn({ sessionId: found.session.id, userId: found.user.id }, "refresh token reuse detected; session revoked");
  }

  #announce(sessionIds: readonly string[], revokedAt: Date): void {
    if (sessionIds.length === 0) return;
    for (const listener of this.#revocationListeners) {
      try {
        listener({ sessionIds, revokedAt });
      } catch (error) {
        this.#logger.error({ err: error instanceof Error ? error.message : "unknown" }, "revocation listener failed");
      }
    }
  }

  async #audit(
    type: string,
    context: RequestContext,
    subject: { userId?: string | null; sessionId?: string | null },
    details: Record<string, unknown> | null = null,
  ): Promise<void> {
    await this.#store.insertAuditEvent({
      id: randomUUID(),
      type,
      userId: subject.userId ?? null,
      sessionId: subject.sessionId ?? null,
      ip: truncate(context.ip, LIMITS.ip),
      userAgent: truncate(context.userAgent, LIMITS.userAgent),
      details,
      createdAt: this.#clock.now(),
    });
  }
}
