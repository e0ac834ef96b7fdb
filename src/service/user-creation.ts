import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { fail } from "../core/errors.js";
import type { Store, UserRecord } from "../store/store.js";
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
 * Creates an account with `roles`, whether a user registers or an operator adds one, and records
 * `user_registered` with `details` (who added it, when not the user). Throws `invalid_request`
 * for a bad username or password, `username_taken`.
 */
export async function createUser(
  deps: UserCreationDependencies,
  account: { readonly username: string; readonly password: string; readonly roles: readonly string[] },
  context: RequestContext,
  details: AuditDetails | null = null,
): Promise<AccountView> {
  const { display, key } = checkNewUsername(account.username);
  checkNewPassword(account.password);
  const user: UserRecord = {
    id: randomUUID(),
    username: display,
    usernameKey: key,
    passwordHash: await deps.hasher.hash(account.password),
    roles: account.roles,
    createdAt: deps.clock.now(),
    disabledAt: null,
  };
  if (!(await deps.store.createUser(user))) fail("username_taken", "that username is already registered");
  await deps.audit.record("user_registered", context, { userId: user.id }, details);
  return accountViewOf(user);
}
