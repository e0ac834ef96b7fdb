import { createHash, timingSafeEqual } from "node:crypto";
import { DEFAULT_CLIENT_ID } from "../core/access-token.js";
import { type Clock, epochSeconds } from "../core/clock.js";
import { isTesseraError } from "../core/errors.js";
import { hashRefreshToken, isWellFormedRefreshToken } from "../core/refresh-token.js";
import { decideRotation } from "../core/rotation.js";
import type { Store } from "../store/store.js";
import { type AuthService, PASSWORD_AMR } from "./auth-service.js";
import type { ServiceConfig } from "./config.js";

/** The role an access token needs to call the introspection endpoint. */
export const INTROSPECT_ROLE = "introspect";

/** The client id that goes with the configured introspection secret in HTTP Basic credentials. */
export const INTROSPECTION_CLIENT_ID = "introspection";

/** An RFC 7662 §2.2 answer: `{active: false}` alone, or an active token's claims. */
export type IntrospectionResult =
  | { readonly active: false }
  | {
      readonly active: true;
      readonly token_type: "Bearer" | "refresh_token";
      readonly sub: string;
      readonly client_id: string;
      readonly exp: number;
      readonly iat?: number;
      readonly iss?: string;
      readonly aud?: string | readonly string[];
      readonly jti?: string;
      readonly sid: string;
      readonly scope?: string;
      readonly username?: string;
      /** RFC 8176 methods of the login: the access token's `amr` claim, or the refresh token's session's. */
      readonly amr: readonly string[];
    };

const INACTIVE: IntrospectionResult = Object.freeze({ active: false });

/** Dependencies of {@link TokenIntrospection}. */
export interface TokenIntrospectionDependencies {
  readonly store: Store;
  readonly config: Readonly<ServiceConfig>;
  readonly clock: Clock;
  readonly auth: AuthService;
}

/**
 * RFC 7662 introspection: says whether an access or refresh token is active right now, by the
 * same rules that accept an access token (`AuthService.authenticate`) and rotate a refresh token
 * (`decideRotation`). Introspecting never changes a token or session.
 */
export class TokenIntrospection {
  readonly #deps: TokenIntrospectionDependencies;
  readonly #secretDigest: Buffer | null;

  constructor(deps: TokenIntrospectionDependencies) {
    this.#deps = deps;
    const secret = deps.config.introspectionSecret;
    this.#secretDigest = secret === null ? null : digest(secret);
  }

  /** True when client credentials were configured, so HTTP Basic callers can be admitted. */
  get acceptsClientSecret(): boolean {
    return this.#secretDigest !== null;
  }

  /**
   * True when `clientId` is {@link INTROSPECTION_CLIENT_ID} and `secret` is the configured
   * introspection secret, compared in constant time; false when none is configured.
   */
  checkClientSecret(clientId: string, secret: string): boolean {
    if (this.#secretDigest === null) return false;
    // Digests have one length, so timingSafeEqual leaks neither the secret nor its length.
    const secretMatches = timingSafeEqual(digest(secret), this.#secretDigest);
    return secretMatches && clientId === INTROSPECTION_CLIENT_ID;
  }

  /**
   * What `token` is: `{active: false}` for anything revoked, expired, used, malformed or unknown.
   * `hint` (`access_token` or `refresh_token`) is only a hint (RFC 7662 §2.1): both kinds are tried.
   */
  async introspect(token: string, _hint?: string): Promise<IntrospectionResult> {
    return isWellFormedRefreshToken(token) ? this.#refreshToken(token) : this.#accessToken(token);
  }

  async #accessToken(token: string): Promise<IntrospectionResult> {
    let claims: Awaited<ReturnType<AuthService["authenticate"]>>["claims"];
    try {
      ({ claims } = await this.#deps.auth.authenticate(token));
    } catch (error) {
      if (isTesseraError(error) && error.code.startsWith("access_token_")) return INACTIVE;
      throw error;
    }
    const user = await this.#deps.store.findUserById(claims.sub);
    if (!user) return INACTIVE;
    return {
      active: true,
      token_type: "Bearer",
      sub: claims.sub,
      client_id: claims.client_id,
      exp: claims.exp,
      iat: claims.iat,
      iss: claims.iss,
      aud: claims.aud,
      jti: claims.jti,
      sid: claims.sid,
      ...(claims.scope === undefined ? {} : { scope: claims.scope }),
      username: user.username,
      amr: claims.amr,
    };
  }

  async #refreshToken(token: string): Promise<IntrospectionResult> {
    const found = await this.#deps.store.findRefreshToken(hashRefreshToken(token));
    if (!found) return INACTIVE;
    // Active exactly when a refresh would rotate it: a used token is never active, even in grace.
    const decision = decideRotation({
      token: found.token,
      session: found.session,
      successor: null,
      now: this.#deps.clock.now(),
      graceSeconds: 0,
    });
    if (decision.action !== "rotate") return INACTIVE;
    return {
      active: true,
      token_type: "refresh_token",
      sub: found.user.id,
      client_id: DEFAULT_CLIENT_ID,
      exp: epochSeconds(found.token.expiresAt),
      iat: epochSeconds(found.token.createdAt),
      sid: found.session.id,
      username: found.user.username,
      amr: found.session.amr ?? PASSWORD_AMR,
    };
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
