import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Store, UserRecord } from "../store/store.js";
import { unverifiedClaimsGiveWayBefore } from "./account-mail.js";
import type { CheckedEmail } from "./account-service.js";
import type { AuditDetails, AuditTrail } from "./audit-trail.js";
import { checkNewPassword, checkNewUsername } from "./credential-policy.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { RequestContext } from "./request-context.js";
import { type AccountView, accountViewOf } from "./views.js";

/** What creating an account needs. */
export interface UserCreationDependencies {
  readonly store: Store;
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly audit: AuditTrail;
}

/**
 * Creates an account with `roles` and, when given, its email address (unverified, stored with the
 * user in one transaction that first releases another account's stale unverified claim on it), whether a user registers or an operator adds one, and records
 * `user_registered` with `details` (who added it, when not the user). Throws `invalid_request`
 * for a bad username or password, `username_taken`, `email_taken`.
 */
export async function createUser(
  deps: UserCreationDependencies,
  account: {
    readonly username: string;
    readonly password: string;
    readonly roles: readonly string[];
    readonly email?: CheckedEmail | null;
  },
  context: RequestContext,
  details: AuditDetails | null = null,
): Promise<AccountView> {
  const { display, key } = checkNewUsername(account.username);
  checkNewPassword(account.password);
  const email = account.email ?? null;
  const user: UserRecord = {
    id: randomUUID(),
    username: display,
    usernameKey: key,
    passwordHash: await deps.hasher.hash(account.password),
    roles: account.roles,
    createdAt: deps.clock.now(),
    disabledAt: null,
    ...(email ? { email: email.email, emailKey: email.key } : {}),
  };
  // An unverified address past its verification window gives way, as it does to POST /auth/email.
  const giveWay = email ? unverifiedClaimsGiveWayBefore(user.createdAt) : undefined;
  if (!(await deps.store.createUser(user, giveWay))) {
    // One insert, two unique keys: the username answers first, as it does without an address.
    if (email === null || (await deps.store.findUserByUsername(key)))
      fail("username_taken", "that username is already registered");
    fail("email_taken", "that address belongs to another account");
  }
  await deps.audit.record("user_registered", context, { userId: user.id }, details);
  return accountViewOf(user);
}
