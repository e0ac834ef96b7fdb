import { AuthClientError, isAuthClientError } from "./client-errors.js";
import { createTabCoordinator, soloCoordinator, type TabCoordinator, type TabMessage } from "./tab-coordinator.js";
import { refreshDeadline, tokenSetFromResponse, type TokenSet } from "./token-set.js";
import { memoryStorage, type TokenStorage } from "./token-storage.js";

/** The events an {@link AuthClient} emits. */
export const AUTH_CLIENT_EVENTS = ["logged_in", "tokens_refreshed", "logged_out", "session_expired"] as const;

/** One of {@link AUTH_CLIENT_EVENTS}. */
export type AuthClientEventType = (typeof AUTH_CLIENT_EVENTS)[number];

/** Where an event happened: in this client (`"local"`) or in another tab on the channel (`"remote"`). */
export type AuthClientEventOrigin = "local" | "remote";

/** The payload of each event. Events never carry tokens. */
export interface AuthClientEventMap {
  /** A session started (by `login()` here or in another tab). */
  readonly logged_in: {
    readonly type: "logged_in";
    readonly origin: AuthClientEventOrigin;
    readonly accessTokenExpiresAt: Date;
  };
  /** The tokens were rotated. */
  readonly tokens_refreshed: {
    readonly type: "tokens_refreshed";
    readonly origin: AuthClientEventOrigin;
    readonly accessTokenExpiresAt: Date;
  };
  /** `logout()` ended the session. */
  readonly logged_out: { readonly type: "logged_out"; readonly origin: AuthClientEventOrigin };
  /** The server refused the refresh token (revoked, expired or reused session); storage was cleared. */
  readonly session_expired: { readonly type: "session_expired"; readonly origin: AuthClientEventOrigin };
}

/** Options of {@link createAuthClient}. */
export interface AuthClientOptions {
  /** Where Tessera's `/auth/*` routes live, e.g. `https://auth.example.com`; a relative URL resolves against the page. */
  readonly baseUrl: string | URL;
  /**
   * Where the tokens are kept; share it between tabs that should share a session. Required
   * unless `cookieMode` is on, where it must be left out.
   */
  readonly storage?: TokenStorage;
  /**
   * For a Tessera server with `TESSERA_COOKIE_MODE=on`: the refresh token lives in an `HttpOnly`
   * cookie this client never sees; requests to the `/auth` routes go with `credentials: "include"`
   * and `X-Tessera-CSRF: 1`; the access token is kept in memory only, and a page (re)loaded while
   * the cookie holds a session gets its access token by a refresh. Default false.
   */
  readonly cookieMode?: boolean;
  /** The `fetch` used for every request. Default: `globalThis.fetch`. */
  readonly fetch?: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  /**
   * Refresh this many seconds before the access token expires, capped at half its lifetime.
   * Default: 30 s capped at 10 % of the lifetime.
   */
  readonly refreshMarginSeconds?: number;
  /** The clock. Default: `() => new Date()`. */
  readonly now?: () => Date;
  /**
   * Name of the `BroadcastChannel` and Web Lock shared by tabs of the origin, or `false` for
   * none. Default: `tessera-auth:<baseUrl>` in a page (where `document` exists), `false` elsewhere.
   */
  readonly channelName?: string | false;
  /**
   * Origins (`https://api.example.com`) that {@link AuthClient.fetch} sends the access token to;
   * a request to any other origin is passed to `fetch` untouched, without the token and without
   * refreshing. Replaces the default, so list the `baseUrl` origin too if you call its routes.
   * Default: the origin of `baseUrl` and, in a page, the page's own origin.
   */
  readonly allowedOrigins?: readonly (string | URL)[];
}

const OPTION_NAMES: readonly string[] = [
  "baseUrl",
  "storage",
  "fetch",
  "refreshMarginSeconds",
  "now",
  "channelName",
  "allowedOrigins",
  "cookieMode",
] satisfies readonly (keyof AuthClientOptions)[];

/** The header (value `1`) that cookie-mode requests carry; the server refuses cookie requests without it. */
export const CSRF_HEADER = "X-Tessera-CSRF";

/** How long a login, refresh or logout request may take before it fails: 30 s. */
const TOKEN_REQUEST_TIMEOUT_MS = 30_000;

type Listener<K extends AuthClientEventType> = (event: AuthClientEventMap[K]) => void;

interface ResolvedOptions {
  readonly endpoint: (path: string) => string;
  readonly storage: TokenStorage;
  readonly transport: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  readonly refreshMarginSeconds: number | undefined;
  readonly now: () => number;
  readonly channelName: string | false;
  readonly allowedOrigins: ReadonlySet<string>;
  /** The page's URL, against which relative request URLs resolve; `undefined` outside a page. */
  readonly pageUrl: string | undefined;
  readonly cookieMode: boolean;
}

/**
 * A Tessera session for a browser or a Node program: logs in, keeps the tokens in `storage`,
 * refreshes them before they expire (once, however many calls need it, and once across tabs),
 * and adds `Authorization: Bearer` to requests made with {@link AuthClient.fetch}.
 */
export class AuthClient {
  readonly #options: ResolvedOptions;
  readonly #coordinator: TabCoordinator;
  readonly #listeners = new Map<AuthClientEventType, Set<(event: never) => void>>();
  /** The refresh in flight in this client, joined by every caller that needs one. */
  #refreshing: Promise<TokenSet> | null = null;
  /** Serializes this client's changes to the session (refresh, login, logout). */
  #tail: Promise<unknown> = Promise.resolve();
  /** When the last session ended here or in another tab (epoch ms); older token sets are stale. */
  #endedAt = Number.NEGATIVE_INFINITY;
  /**
   * Tokens the server issued that `storage.set` failed to keep. The server has already rotated
   * the refresh token, so forgetting them would turn the next refresh into reuse and end the
   * session: they are used from memory, and written again on every read until a write succeeds.
   */
  #unsaved: TokenSet | null = null;
  /** The refresh token of a session that ended while `storage.remove` failed: never used again. */
  #ended: string | null = null;
  /**
   * Cookie mode: the server said the browser holds no session cookie; no refresh is tried again
   * until a login here or tokens from another tab.
   */
  #noCookieSession = false;
  /** Cookie mode: the refresh in flight that looks for a session in the cookie. */
  #resuming: Promise<TokenSet | null> | null = null;

  /** @internal Use {@link createAuthClient}. */
  constructor(options: ResolvedOptions) {
    this.#options = options;
    this.#coordinator =
      options.channelName === false
        ? soloCoordinator
        : createTabCoordinator(options.channelName, (message) => this.#receive(message));
  }

  /**
   * Creates an account with `POST /auth/register` and returns its id and username; it does not log
   * in. With `email`, the server stores the address unverified and mails a verification link.
   * Throws `unexpected_response` with `status` (400: a bad username, password or address; 403:
   * registration is closed; 409: the username or the address is taken; 501: an address, and the
   * server sends no mail).
   */
  async register(
    username: string,
    password: string,
    options: { readonly email?: string } = {},
  ): Promise<{ readonly id: string; readonly username: string }> {
    const body: Record<string, string> = { username, password };
    if (options.email !== undefined) body.email = options.email;
    const response = await this.#post("/auth/register", body);
    if (response.status !== 201) {
      await response.body?.cancel();
      throw unexpected("the registration", response.status);
    }
    const created = await readJson(response);
    if (typeof created?.id !== "string" || typeof created.username !== "string")
      throw unexpected("the registration", response.status);
    return { id: created.id, username: created.username };
  }

  /**
   * Logs in with `POST /auth/login` and stores the tokens. Throws `invalid_credentials` (401),
   * `mfa_required` (403, the user has TOTP on: pass the error's `mfaToken` to {@link completeMfa})
   * or `unexpected_response`.
   */
  async login(username: string, password: string): Promise<void> {
    const response = await this.#post("/auth/login", { username, password });
    if (response.status === 401) {
      await response.body?.cancel();
      throw new AuthClientError("invalid_credentials", "the username or password is wrong", { status: 401 });
    }
    if (response.status === 403) {
      const body = await readJson(response);
      if (body?.error === "mfa_required" && typeof body.mfa_token === "string" && typeof body.expires_in === "number")
        throw new AuthClientError("mfa_required", "a second factor is required", {
          status: 403,
          mfaToken: body.mfa_token,
          expiresIn: body.expires_in,
        });
      throw unexpected("the login", 403);
    }
    await this.#loggedIn(await this.#readTokens(response));
  }

  /**
   * Completes a login that threw `mfa_required` with a TOTP code or a recovery code
   * (`POST /auth/login/mfa`), stores the tokens and tells other tabs, as `login()` does. Throws
   * `invalid_credentials` (401: a wrong or used code, or an mfa token that is used, expired or void
   * after 5 wrong codes: log in again), or `unexpected_response` (429 when throttled).
   */
  async completeMfa(
    mfaToken: string,
    proof: { readonly code: string } | { readonly recoveryCode: string },
  ): Promise<void> {
    const body: Record<string, string> =
      "code" in proof
        ? { mfa_token: mfaToken, code: proof.code }
        : { mfa_token: mfaToken, recovery_code: proof.recoveryCode };
    const response = await this.#post("/auth/login/mfa", body);
    if (response.status === 401) {
      await response.body?.cancel();
      throw new AuthClientError("invalid_credentials", "the code is wrong or the login has expired", { status: 401 });
    }
    await this.#loggedIn(await this.#readTokens(response));
  }

  /**
   * Starts (or restarts) a TOTP enrolment (`POST /auth/mfa/totp`): a new secret to show as text
   * and as a QR code (an SVG image), pending until {@link confirmTotp}. Throws `not_authenticated`,
   * `session_expired`, or `unexpected_response` with `status` (409: TOTP is already on).
   */
  async enrollTotp(): Promise<{ secret: string; uri: string; qrSvg: string }> {
    const response = await this.#authorized("POST", "/auth/mfa/totp", {}, true);
    const body = response.status === 200 ? await readJson(response) : null;
    if (typeof body?.secret !== "string" || typeof body.uri !== "string" || typeof body.qr_svg !== "string") {
      await response.body?.cancel().catch(() => undefined);
      throw unexpected("the TOTP enrolment", response.status);
    }
    return { secret: body.secret, uri: body.uri, qrSvg: body.qr_svg };
  }

  /**
   * Turns TOTP on with a code from the enrolled secret (`POST /auth/mfa/totp/confirm`); resolves to
   * the recovery codes, which the server shows this once. Throws `invalid_mfa_code`,
   * `not_authenticated`, `session_expired`, or `unexpected_response` with `status` (400: nothing
   * pending; 429: throttled).
   */
  async confirmTotp(code: string): Promise<{ recoveryCodes: string[] }> {
    const response = await this.#authorized("POST", "/auth/mfa/totp/confirm", { code }, true);
    const body = await readJson(response);
    if (response.status === 200 && Array.isArray(body?.recovery_codes)) {
      const codes = body.recovery_codes as unknown[];
      if (codes.every((item): item is string => typeof item === "string")) return { recoveryCodes: codes };
    }
    if (response.status === 400 && body?.error === "invalid_mfa_code")
      throw new AuthClientError("invalid_mfa_code", "the code is wrong", { status: 400 });
    throw unexpected("the TOTP confirmation", response.status);
  }

  /**
   * Turns TOTP off (`DELETE /auth/mfa/totp`) with a current code or the password; other sessions
   * stay open. Throws `invalid_mfa_code`, `invalid_credentials` (a wrong password),
   * `not_authenticated` (also when the server refuses the session's token), `session_expired`, or
   * `unexpected_response` with `status` (400: TOTP is not on; 429: throttled; 503: the second
   * factor cannot be read).
   */
  async disableTotp(proof: { readonly code: string } | { readonly password: string }): Promise<void> {
    const body: Record<string, string> = "code" in proof ? { code: proof.code } : { password: proof.password };
    const response = await this.#authorized("DELETE", "/auth/mfa/totp", body, true);
    if (response.status === 204) return;
    const answer = await readJson(response);
    if (response.status === 400 && answer?.error === "invalid_mfa_code")
      throw new AuthClientError("invalid_mfa_code", "the code is wrong", { status: 400 });
    // A wrong password is `invalid_grant`; any other 401 is about the session, not the password.
    if (response.status === 401 && answer?.error === "invalid_grant")
      throw new AuthClientError("invalid_credentials", "the password is wrong", { status: 401 });
    if (response.status === 401)
      throw new AuthClientError("not_authenticated", "the session is not valid; log in again", { status: 401 });
    throw unexpected("turning TOTP off", response.status);
  }

  /** Stores the tokens of a login, tells other tabs and emits `logged_in`. */
  async #loggedIn(tokens: TokenSet): Promise<void> {
    await this.#exclusive(() => this.#save(tokens));
    this.#noCookieSession = false;
    this.#coordinator.post({ type: "tokens", reason: "login", tokens });
    this.#emit("logged_in", {
      type: "logged_in",
      origin: "local",
      accessTokenExpiresAt: new Date(tokens.accessTokenExpiresAt),
    });
  }

  /**
   * Ends the session: `POST /auth/logout` with the refresh token, then clears storage, tells
   * other tabs and emits `logged_out`, even when the server could not be reached. Does nothing
   * when there is no session (in cookie mode the server is always asked, as only it sees the
   * cookie). Throws `unexpected_response` or the network error after clearing.
   */
  async logout(): Promise<void> {
    await this.#exclusive(async () => {
      const tokens = await this.#load();
      if (tokens === null && !this.#options.cookieMode) return;
      try {
        const response = await this.#post("/auth/logout", this.#refreshBody(tokens));
        await response.body?.cancel();
        if (!response.ok)
          throw new AuthClientError("unexpected_response", `logout answered ${response.status}`, {
            status: response.status,
          });
      } finally {
        await this.#end("logged_out");
      }
    });
  }

  /**
   * Ends every other session of the user (`POST /auth/logout-others`), in one step on the server,
   * sessions opened since the list was last read included; this one stays. Resolves to the ids of
   * the sessions ended. Throws `not_authenticated`, `session_expired`, or `unexpected_response`
   * with `status`.
   */
  async logoutOthers(): Promise<string[]> {
    const response = await this.#authorized("POST", "/auth/logout-others", {}, true);
    const body = response.status === 200 ? await readJson(response) : null;
    const revoked = body?.revoked;
    if (Array.isArray(revoked) && revoked.every((id): id is string => typeof id === "string")) return revoked;
    await response.body?.cancel().catch(() => undefined);
    throw unexpected("signing out the other sessions", response.status);
  }

  /**
   * Changes the password (`POST /auth/password`) with the current one. The server revokes every
   * other session of the user; this one stays. Throws `invalid_credentials` for a wrong current
   * password, `not_authenticated` without a session, `session_expired`, or `unexpected_response`
   * (with `status`: 400 for a new password outside the password rules, 429 when throttled).
   */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const response = await this.#authorized("POST", "/auth/password", {
      current_password: currentPassword,
      new_password: newPassword,
    });
    if (response.status === 204) return;
    if (response.status === 401)
      throw new AuthClientError("invalid_credentials", "the current password is wrong", { status: 401 });
    throw unexpected("the password change", response.status);
  }

  /**
   * Sets the user's email address (`POST /auth/email`); the server mails a verification link.
   * Throws `not_authenticated`, `session_expired`, or `unexpected_response` with `status` (400: not
   * an address; 409: another account has it; 429: throttled; 501: the server sends no mail).
   */
  async setEmail(email: string): Promise<void> {
    const response = await this.#authorized("POST", "/auth/email", { email });
    if (response.status !== 202) throw unexpected("setting the email address", response.status);
  }

  /**
   * Verifies the email address with the token of the mailed link (`POST /auth/email/verify`); needs
   * no session. Throws `unexpected_response` with `status` (400: the link is not valid).
   */
  async verifyEmail(token: string): Promise<void> {
    const response = await this.#post("/auth/email/verify", { token });
    await response.body?.cancel();
    if (response.status !== 204) throw unexpected("the email verification", response.status);
  }

  /**
   * Asks for a password reset mail (`POST /auth/password/forgot`); needs no session. Resolves alike
   * whether an account has the address or not. Throws `unexpected_response` with `status` (400: not
   * an address; 429: throttled; 501: the server sends no mail).
   */
  async forgotPassword(email: string): Promise<void> {
    const response = await this.#post("/auth/password/forgot", { email });
    await response.body?.cancel();
    if (response.status !== 202) throw unexpected("the password reset request", response.status);
  }

  /**
   * Sets a new password with the token of the mailed reset link (`POST /auth/password/reset`); the
   * server revokes every session of the user, so log in afterwards. Throws `unexpected_response`
   * with `status` (400: the link is not valid or the password breaks the password rules).
   */
  async resetPassword(token: string, password: string): Promise<void> {
    const response = await this.#post("/auth/password/reset", { token, password });
    await response.body?.cancel();
    if (response.status !== 204) throw unexpected("the password reset", response.status);
  }

  /**
   * Sends a JSON request to one of the server's bearer routes, with one refresh and retry on
   * `invalid_token`. The answer's body is dropped unless `keepBody`.
   */
  async #authorized(
    method: "POST" | "DELETE",
    path: string,
    body: Record<string, string>,
    keepBody = false,
  ): Promise<Response> {
    const tokens = await this.#usableTokens();
    if (tokens === null) throw new AuthClientError("not_authenticated", "there is no session; log in first");
    const request = () =>
      new Request(this.#options.endpoint(path), {
        method,
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
        credentials: this.#options.cookieMode ? "include" : "omit",
      });
    let response = await this.#send(request(), tokens.accessToken);
    if (await isCurableUnauthorized(response)) {
      await response.body?.cancel();
      response = await this.#send(request(), (await this.#refresh(tokens.accessToken)).accessToken);
    }
    if (!keepBody) await response.body?.cancel();
    return response;
  }

  /**
   * `fetch` with `Authorization: Bearer <access token>`, refreshed first when it is due. A 401
   * whose challenge says `error="invalid_token"` (RFC 6750 §3.1) triggers one refresh and one
   * retry; the retry's answer is returned whatever it is. Requests to origins outside
   * `allowedOrigins` go to `fetch` untouched: no token, no refresh, no retry. Throws
   * `not_authenticated`, `session_expired` (the refresh was refused), `unexpected_response`, or
   * `fetch`'s own errors.
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    if (!this.#mayCarryToken(input)) return this.#options.transport(input, init);
    const tokens = await this.#usableTokens();
    if (tokens === null) throw new AuthClientError("not_authenticated", "there is no session; log in first");
    const request = new Request(input, init);
    const retryCopy = request.clone();
    const first = await this.#send(request, tokens.accessToken);
    if (!(await isCurableUnauthorized(first))) return first;
    const renewed = await this.#refresh(tokens.accessToken);
    await first.body?.cancel();
    return this.#send(retryCopy, renewed.accessToken);
  }

  /**
   * The current access token, refreshed first when due; `null` when there is no session
   * (including when the refresh was just refused). Throws `unexpected_response` or network errors.
   */
  async getAccessToken(): Promise<string | null> {
    try {
      return (await this.#usableTokens())?.accessToken ?? null;
    } catch (error) {
      if (isAuthClientError(error, "session_expired") || isAuthClientError(error, "not_authenticated")) return null;
      throw error;
    }
  }

  /** Calls `listener` on every `type` event until the returned function is called. */
  on<K extends AuthClientEventType>(type: K, listener: Listener<K>): () => void {
    if (!AUTH_CLIENT_EVENTS.includes(type)) throw new TypeError(`on: unknown event type "${String(type)}"`);
    if (typeof listener !== "function") throw new TypeError("on: listener must be a function");
    let listeners = this.#listeners.get(type);
    if (listeners === undefined) {
      listeners = new Set();
      this.#listeners.set(type, listeners);
    }
    const registered = listener as (event: never) => void;
    listeners.add(registered);
    return () => {
      this.#listeners.get(type)?.delete(registered);
    };
  }

  /** Stops listening to other tabs and drops all listeners. The stored session is kept. */
  close(): void {
    this.#coordinator.close();
    this.#listeners.clear();
  }

  /** True when `input` goes to an allowed origin. A URL that cannot be read goes nowhere with a token. */
  #mayCarryToken(input: RequestInfo | URL): boolean {
    const url = input instanceof Request ? input.url : input instanceof URL ? input.href : String(input);
    try {
      return this.#options.allowedOrigins.has(new URL(url, this.#options.pageUrl).origin);
    } catch {
      return false;
    }
  }

  /** The stored tokens, refreshed when due; `null` without a session. */
  async #usableTokens(): Promise<TokenSet | null> {
    const tokens = await this.#load();
    if (tokens === null) return this.#options.cookieMode ? this.#resume() : null;
    const now = this.#options.now();
    if (now < refreshDeadline(tokens, this.#options.refreshMarginSeconds)) return tokens;
    try {
      return await this.#refresh(tokens.accessToken);
    } catch (error) {
      // A refresh that failed for a passing reason (network, 5xx) should not fail requests
      // the current token can still serve; a refused one must.
      const refused = isAuthClientError(error, "session_expired") || isAuthClientError(error, "not_authenticated");
      if (!refused && this.#options.now() < tokens.accessTokenExpiresAt) return tokens;
      throw error;
    }
  }

  /**
   * Single-flight refresh of the session whose access token `stale` is: every caller while one
   * is in flight shares it, and it runs under the cross-tab lock.
   */
  #refresh(stale: string): Promise<TokenSet> {
    this.#refreshing ??= this.#exclusive(() => this.#refreshHoldingLock(stale)).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  /**
   * Cookie mode, nothing in memory (a page just loaded): asks the server for tokens with the
   * cookie, once however many callers wait, under the cross-tab lock. `null` when the browser
   * holds no session.
   */
  #resume(): Promise<TokenSet | null> {
    if (this.#noCookieSession) return Promise.resolve(null);
    this.#resuming ??= this.#exclusive(() => this.#resumeHoldingLock()).finally(() => {
      this.#resuming = null;
    });
    return this.#resuming;
  }

  async #resumeHoldingLock(): Promise<TokenSet | null> {
    await this.#coordinator.caughtUp();
    const current = await this.#load();
    if (current !== null) return current; // another tab answered meanwhile
    if (this.#noCookieSession) return null;
    const response = await this.#post("/auth/refresh", {});
    if (response.status === 400 || response.status === 401) {
      const body = await readJson(response);
      if (body?.error === "invalid_grant") {
        this.#noCookieSession = true;
        return null;
      }
      throw new AuthClientError("unexpected_response", `refresh answered ${response.status}`, {
        status: response.status,
      });
    }
    return this.#refreshed(response);
  }

  /** Reads a successful refresh's tokens, keeps them, tells the other tabs and the listeners. */
  async #refreshed(response: Response): Promise<TokenSet> {
    const next = await this.#readTokens(response);
    await this.#save(next);
    this.#coordinator.post({ type: "tokens", reason: "refresh", tokens: next });
    this.#emit("tokens_refreshed", {
      type: "tokens_refreshed",
      origin: "local",
      accessTokenExpiresAt: new Date(next.accessTokenExpiresAt),
    });
    return next;
  }

  /** The body of a refresh or logout: the refresh token, or in cookie mode nothing (the cookie carries it). */
  #refreshBody(tokens: TokenSet | null): Record<string, string> {
    return tokens?.refreshToken ? { refresh_token: tokens.refreshToken } : {};
  }

  async #refreshHoldingLock(stale: string): Promise<TokenSet> {
    const { now } = this.#options;
    // In cookie mode each tab keeps its tokens in memory: let a refresh another tab just
    // announced arrive before deciding this one is needed.
    if (this.#options.cookieMode) await this.#coordinator.caughtUp();
    // Re-read: another tab (or this client's previous flight) may have refreshed while we waited.
    const current = await this.#load();
    if (current === null)
      throw new AuthClientError("not_authenticated", "the session ended while waiting to refresh it");
    if (current.accessToken !== stale && now() < refreshDeadline(current, this.#options.refreshMarginSeconds))
      return current;
    if (now() >= current.refreshTokenExpiresAt) {
      await this.#end("session_expired").catch(() => undefined); // the refusal matters, not storage
      throw new AuthClientError("session_expired", "the refresh token has expired");
    }
    const response = await this.#post("/auth/refresh", this.#refreshBody(current));
    if (response.status === 400 || response.status === 401) {
      const body = await readJson(response);
      if (body?.error === "invalid_grant") {
        await this.#end("session_expired").catch(() => undefined); // the refusal matters, not storage
        throw new AuthClientError("session_expired", "the server refused the refresh token", {
          status: response.status,
        });
      }
      throw new AuthClientError("unexpected_response", `refresh answered ${response.status}`, {
        status: response.status,
      });
    }
    return this.#refreshed(response);
  }

  /** The session's tokens: the stored ones, unless this client holds newer ones it could not store. */
  async #load(): Promise<TokenSet | null> {
    const stored = await this.#options.storage.get();
    const unsaved = this.#unsaved;
    if (unsaved !== null) {
      // Another tab may have stored a newer session meanwhile; it wins.
      if (stored !== null && stored.receivedAt > unsaved.receivedAt) {
        this.#unsaved = null;
        return stored;
      }
      await this.#save(unsaved);
      return unsaved;
    }
    if (stored !== null && this.#ended !== null && stored.refreshToken === this.#ended) return null;
    return stored;
  }

  /** Stores `tokens`; if storage fails they are kept in memory (see {@link #unsaved}). */
  async #save(tokens: TokenSet): Promise<void> {
    try {
      await this.#options.storage.set(tokens);
      this.#unsaved = null;
    } catch {
      this.#unsaved = tokens;
    }
    this.#ended = null;
  }

  /**
   * Clears storage, tells the other tabs, and emits `reason`, even when `storage.remove` fails
   * (the ended tokens are then ignored here); that failure is thrown afterwards. Called holding
   * the lock.
   */
  async #end(reason: "logged_out" | "session_expired"): Promise<void> {
    const { storage } = this.#options;
    const ending = this.#unsaved ?? (await (async () => storage.get())().catch(() => null));
    this.#unsaved = null;
    let failure: { error: unknown } | null = null;
    try {
      await storage.remove();
    } catch (error) {
      failure = { error };
      this.#ended = ending?.refreshToken ?? null;
    }
    this.#endedAt = this.#options.now();
    this.#coordinator.post({ type: "ended", reason, at: this.#endedAt });
    this.#emit(reason, { type: reason, origin: "local" });
    if (failure !== null) throw failure.error instanceof Error ? failure.error : new Error("storage.remove failed");
  }

  /** Applies what another tab did. With shared storage the write is already there; with separate storages this copies it. */
  #receive(message: TabMessage): Promise<void> {
    return this.#adopt(message).catch(() => undefined);
  }

  async #adopt(message: TabMessage): Promise<void> {
    const { storage } = this.#options;
    const current = await this.#load();
    if (message.type === "tokens") {
      // Tokens from before a logout seen here must not bring the session back.
      if (message.tokens.receivedAt <= this.#endedAt) return;
      if (current !== null && current.receivedAt > message.tokens.receivedAt) return;
      if (current?.accessToken !== message.tokens.accessToken || current.refreshToken !== message.tokens.refreshToken)
        await this.#save(message.tokens);
      this.#noCookieSession = false;
      const accessTokenExpiresAt = new Date(message.tokens.accessTokenExpiresAt);
      if (message.reason === "login")
        this.#emit("logged_in", { type: "logged_in", origin: "remote", accessTokenExpiresAt });
      else this.#emit("tokens_refreshed", { type: "tokens_refreshed", origin: "remote", accessTokenExpiresAt });
      return;
    }
    // A session started after the other tab's ended is a new one: keep it.
    if (current !== null && current.receivedAt > message.at) return;
    this.#endedAt = Math.max(this.#endedAt, message.at);
    this.#unsaved = null;
    if (current !== null) {
      try {
        await storage.remove();
      } catch {
        this.#ended = current.refreshToken;
      }
    }
    this.#emit(message.reason, { type: message.reason, origin: "remote" });
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(() => this.#coordinator.exclusive(task));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #send(request: Request, accessToken: string): Promise<Response> {
    const headers = new Headers(request.headers);
    headers.set("authorization", `Bearer ${accessToken}`);
    // In cookie mode the server wants the header on every browser request to its /auth routes.
    if (this.#options.cookieMode && request.url.startsWith(this.#options.endpoint("/auth/")))
      headers.set(CSRF_HEADER, "1");
    return this.#options.transport(new Request(request, { headers }));
  }

  #post(path: string, body: Record<string, string>): Promise<Response> {
    const { cookieMode } = this.#options;
    return this.#options.transport(this.#options.endpoint(path), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json",
        // A header a cross-site form cannot send: with it and the Origin, the server trusts the cookie.
        ...(cookieMode ? { [CSRF_HEADER]: "1" } : {}),
      },
      body: JSON.stringify(body),
      cache: "no-store",
      // Only cookie mode needs cookies; otherwise none are sent or accepted.
      credentials: cookieMode ? "include" : "omit",
      // A hung token request would hold the cross-tab lock, and so every tab, indefinitely.
      signal: typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(TOKEN_REQUEST_TIMEOUT_MS) : null,
    });
  }

  async #readTokens(response: Response): Promise<TokenSet> {
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new AuthClientError("unexpected_response", `the token endpoint answered ${response.status}`, {
        status: response.status,
      });
    }
    const body = await readJson(response);
    return tokenSetFromResponse(body, this.#options.now(), this.#options.cookieMode);
  }

  #emit<K extends AuthClientEventType>(type: K, event: AuthClientEventMap[K]): void {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        (listener as Listener<K>)(event);
      } catch (error) {
        // A failing listener must not break the session logic; surface it like an event handler error.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/**
 * Creates an {@link AuthClient}. Checks the options once and throws `TypeError` naming the
 * bad option.
 */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  if (typeof options !== "object" || options === null)
    throw new TypeError("createAuthClient: options must be an object");
  // A misspelled option must not silently become its default.
  const unknown = Object.keys(options).find((name) => !OPTION_NAMES.includes(name));
  if (unknown !== undefined)
    throw new TypeError(`createAuthClient: unknown option ${unknown}; known: ${OPTION_NAMES.join(", ")}`);
  const { fetch: customFetch, refreshMarginSeconds, now, channelName } = options;
  const cookieMode = options.cookieMode ?? false;
  if (typeof cookieMode !== "boolean")
    throw new TypeError("createAuthClient: options.cookieMode must be true or false");
  if (cookieMode && options.storage !== undefined) {
    throw new TypeError(
      "createAuthClient: options.storage is not taken with cookieMode, which keeps the access token in memory only",
    );
  }
  // Cookie mode: the access token never leaves this page's memory; tabs share refreshes over the channel.
  const storage = cookieMode ? memoryStorage() : options.storage;
  const base = resolveBaseUrl(options.baseUrl);
  const pageUrl = pageHref();
  const allowedOrigins = resolveAllowedOrigins(options.allowedOrigins, base, pageUrl);
  if (
    typeof storage !== "object" ||
    storage === null ||
    !["get", "set", "remove"].every(
      (name) => typeof (storage as unknown as Record<string, unknown>)[name] === "function",
    )
  ) {
    throw new TypeError("createAuthClient: options.storage must have get, set and remove methods");
  }
  if (customFetch !== undefined && typeof customFetch !== "function")
    throw new TypeError("createAuthClient: options.fetch must be a function");
  if (customFetch === undefined && typeof globalThis.fetch !== "function")
    throw new TypeError("createAuthClient: options.fetch is required where there is no globalThis.fetch");
  if (refreshMarginSeconds !== undefined && !(Number.isFinite(refreshMarginSeconds) && refreshMarginSeconds >= 0)) {
    throw new TypeError("createAuthClient: options.refreshMarginSeconds must be a finite number of seconds >= 0");
  }
  if (now !== undefined && typeof now !== "function")
    throw new TypeError("createAuthClient: options.now must be a function returning a Date");
  if (channelName !== undefined && channelName !== false && (typeof channelName !== "string" || channelName === "")) {
    throw new TypeError("createAuthClient: options.channelName must be a non-empty string or false");
  }
  const inPage = typeof (globalThis as { document?: unknown }).document !== "undefined";
  return new AuthClient(
    Object.freeze({
      endpoint: (path: string) => `${base}${path}`,
      storage,
      // Called as plain functions: a browser's fetch throws "Illegal invocation" when called as a method of another object.
      transport:
        customFetch === undefined
          ? (input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init)
          : (input: RequestInfo | URL, init?: RequestInit) => customFetch(input, init),
      refreshMarginSeconds,
      now: now === undefined ? () => Date.now() : () => now().getTime(),
      channelName: channelName ?? (inPage ? `tessera-auth:${base}` : false),
      allowedOrigins,
      pageUrl,
      cookieMode,
    }),
  );
}

function resolveBaseUrl(baseUrl: unknown): string {
  if (typeof baseUrl !== "string" && !(baseUrl instanceof URL))
    throw new TypeError("createAuthClient: options.baseUrl must be a string or URL");
  let url: URL;
  try {
    url = new URL(baseUrl, pageHref());
  } catch {
    throw new TypeError("createAuthClient: options.baseUrl must be an absolute URL (or relative, in a page)");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new TypeError("createAuthClient: options.baseUrl must be an http(s) URL");
  if (url.search !== "" || url.hash !== "")
    throw new TypeError("createAuthClient: options.baseUrl must not have a query or fragment");
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** The page's (or worker's) URL, where there is one. */
function pageHref(): string | undefined {
  return (globalThis as { location?: { href?: string } }).location?.href;
}

/**
 * The origins the access token may go to: the given ones (each an http(s) origin, nothing more),
 * else the `baseUrl` origin and the page's. A wildcard is refused: it would send tokens anywhere.
 */
function resolveAllowedOrigins(value: unknown, base: string, pageUrl: string | undefined): ReadonlySet<string> {
  if (value === undefined) {
    const origins = new Set([new URL(base).origin]);
    const page = pageUrl === undefined ? null : new URL(pageUrl);
    if (page !== null && (page.protocol === "https:" || page.protocol === "http:")) origins.add(page.origin);
    return origins;
  }
  const message =
    'createAuthClient: options.allowedOrigins must be a list of origins such as "https://api.example.com"';
  if (!Array.isArray(value)) throw new TypeError(message);
  const origins = new Set<string>();
  for (const item of value as unknown[]) {
    if (typeof item !== "string" && !(item instanceof URL)) throw new TypeError(message);
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      throw new TypeError(`${message} (got "${String(item)}")`);
    }
    const originOnly = url.pathname === "/" && url.search === "" && url.hash === "" && url.username === "";
    if ((url.protocol !== "https:" && url.protocol !== "http:") || !originOnly || url.password !== "")
      throw new TypeError(`${message} (got "${String(item)}")`);
    origins.add(url.origin);
  }
  return origins;
}

/** A 401 that a new access token may cure: RFC 6750 §3.1 `invalid_token`, from the challenge or, where CORS hides it, the body. */
async function isCurableUnauthorized(response: Response): Promise<boolean> {
  if (response.status !== 401) return false;
  const challenge = response.headers.get("www-authenticate");
  if (challenge !== null) return /^\s*bearer\b/i.test(challenge) && /\berror\s*=\s*"?invalid_token"?/i.test(challenge);
  if (!(response.headers.get("content-type") ?? "").includes("json")) return false;
  const body = await readJson(response.clone());
  return body?.error === "invalid_token";
}

async function readJson(response: Response): Promise<Record<string, unknown> | null> {
  try {
    const body: unknown = await response.json();
    return typeof body === "object" && body !== null ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The error for an answer the client cannot use. */
function unexpected(what: string, status: number): AuthClientError {
  return new AuthClientError("unexpected_response", `${what} answered ${status}`, { status });
}
