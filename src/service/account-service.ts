import { fail } from "../core/errors.js";
import type { Store } from "../store/store.js";
import type { AuditTrail } from "./audit-trail.js";
import type { Principal } from "./auth-service.js";
import { checkNewPassword, checkPasswordText } from "./credential-policy.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { RequestContext } from "./request-context.js";
import type { SessionRevocations } from "./session-revocations.js";

/** Dependencies of {@link AccountService}. */
export interface AccountServiceDependencies {
  readonly store: Store;
  readonly hasher: PasswordHasher;
  readonly revocations: SessionRevocations;
  readonly audit: AuditTrail;
}

/** The end user's own account: changing the password. */
export class AccountService {
  readonly #store: Store;
  readonly #hasher: PasswordHasher;
  readonly #revocations: SessionRevocations;
  readonly #audit: AuditTrail;

  constructor(deps: AccountServiceDependencies) {
    this.#store = deps.store;
    this.#hasher = deps.hasher;
    this.#revocations = deps.revocations;
    this.#audit = deps.audit;
  }

  /**
   * Replaces the principal's password after checking the current one, then revokes (and
   * announces) every other session of the user; the principal's session stays open. Returns how
   * many sessions were revoked. Records `password_changed`. Throws `invalid_request` for a new
   * password outside the policy, `invalid_credentials` for a wrong current password (as login
   * does), `access_token_revoked` when the user is gone.
   */
  async changePassword(
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    context: RequestContext,
  ): Promise<number> {
    checkPasswordText(currentPassword);
    checkNewPassword(newPassword);
    const user = await this.#store.findUserById(principal.userId);
    if (!user) fail("access_token_revoked", "the user of the access token no longer exists");
    const valid = await this.#hasher.verify(user.passwordHash, currentPassword);
    // A disabled account answers as a wrong password does; its sessions are revoked anyway.
    if (!valid || user.disabledAt) fail("invalid_credentials", "the current password is wrong");
    if (!(await this.#store.setPasswordHash(user.id, await this.#hasher.hash(newPassword))))
      fail("access_token_revoked", "the user of the access token no longer exists");
    const revoked = await this.#revocations.revokeUserSessions(user.id, "password_changed", principal.sessionId);
    await this.#audit.record(
      "password_changed",
      context,
      { userId: user.id, sessionId: principal.sessionId },
      { by: user.id, sessionsRevoked: revoked.length },
    );
    return revoked.length;
  }
}
