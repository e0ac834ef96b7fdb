// Local time far from UTC on purpose: every expiry must still hold.
process.env.TZ = "Pacific/Chatham";

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { isWellFormedRefreshToken } from "../../src/core/refresh-token.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { countingHasher, type ServiceFixture, serviceFixture, rejectsWith } from "../support/service.js";

const context: RequestContext = { ip: "203.0.113.7", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";

let counter = 0;
function username() {
  counter += 1;
  return `user${counter}`;
}

describe("AuthService", () => {
  let fixture: ServiceFixture;
  const hasher = countingHasher();

  before(async () => {
    fixture = await serviceFixture({}, hasher);
  });
  after(() => fixture.close());

  async function loggedIn() {
    const name = username();
    const user = await fixture.service.register(name, PASSWORD, context);
    const tokens = await fixture.service.login(name, PASSWORD, context);
    return { name, user, tokens };
  }

  describe("register()", () => {
    it("stores an argon2id hash with OWASP parameters, never the password", async () => {
      const name = username();
      const user = await fixture.service.register(name, PASSWORD, context);
      const stored = await fixture.store.findUserById(user.id);
      assert.match(stored!.passwordHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      assert.ok(!stored!.passwordHash.includes(PASSWORD));
      assert.deepEqual(user.roles, ["user"]);
    });

    it("treats usernames case-insensitively and refuses a taken one", async () => {
      const name = username();
      await fixture.service.register(name.toUpperCase(), PASSWORD, context);
      await rejectsWith(fixture.service.register(name, PASSWORD, context), "username_taken");
      const tokens = await fixture.service.login(name, PASSWORD, context);
      assert.ok(tokens.accessToken);
    });

    it("refuses short passwords and odd usernames", async () => {
      await rejectsWith(fixture.service.register(username(), "short", context), "invalid_request");
      await rejectsWith(fixture.service.register("a b", PASSWORD, context), "invalid_request");
      await rejectsWith(fixture.service.register("x", PASSWORD, context), "invalid_request");
    });
  });

  describe("login()", () => {
    it("returns an access token, a refresh token and their lifetimes", async () => {
      const { tokens, user } = await loggedIn();
      assert.equal(tokens.accessTokenExpiresIn, 900);
      assert.equal(tokens.refreshTokenExpiresIn, 3 * 86400);
      assert.ok(isWellFormedRefreshToken(tokens.refreshToken));
      const principal = await fixture.service.authenticate(tokens.accessToken);
      assert.equal(principal.userId, user.id);
      assert.equal(principal.sessionId, tokens.sessionId);
    });

    it("does the same argon2 work and gives the same answer for an unknown user as for a wrong password", async () => {
      const { name } = await loggedIn();
      const before = hasher.verifications;
      await rejectsWith(fixture.service.login(name, "wrong password!", context), "invalid_credentials");
      assert.equal(hasher.verifications, before + 1);
      await rejectsWith(fixture.service.login("nobody-here", PASSWORD, context), "invalid_credentials");
      assert.equal(hasher.verifications, before + 2);
    });

    it("writes audit events for success and failure", async () => {
      const { user } = await loggedIn();
      await rejectsWith(fixture.service.login(user.username, "nope nope nope", context), "invalid_credentials");
      await fixture.services.audit.flush();
      const events = await fixture.store.listAuditEvents({ userId: user.id }, null, 100);
      const types = events.map((event) => event.type).sort();
      assert.deepEqual(types, ["login_failed", "login_succeeded", "user_registered"]);
    });
  });

  describe("refresh()", () => {
    it("rotates: a new refresh token, the old one marked used", async () => {
      const { tokens } = await loggedIn();
      fixture.clock.advance(60);
      const next = await fixture.service.refresh(tokens.refreshToken, context);
      assert.notEqual(next.refreshToken, tokens.refreshToken);
      assert.equal(next.sessionId, tokens.sessionId);
      assert.ok(await fixture.service.authenticate(next.accessToken));
      const after = await fixture.service.refresh(next.refreshToken, context);
      assert.notEqual(after.refreshToken, next.refreshToken);
    });

    it("returns the same successor when the same token comes back within the grace window", async () => {
      const { tokens } = await loggedIn();
      const first = await fixture.service.refresh(tokens.refreshToken, context);
      fixture.clock.advance(9);
      const again = await fixture.service.refresh(tokens.refreshToken, context);
      assert.equal(again.refreshToken, first.refreshToken);
      // The successor still works after the repeat.
      const next = await fixture.service.refresh(first.refreshToken, context);
      assert.ok(next.refreshToken);
    });

    it("revokes the whole session and writes an audit event when a used token comes back after the grace window", async () => {
      const { tokens, user } = await loggedIn();
      const successor = await fixture.service.refresh(tokens.refreshToken, context);
      fixture.clock.advance(11);
      await rejectsWith(fixture.service.refresh(tokens.refreshToken, context), "refresh_token_reused");
      await rejectsWith(fixture.service.refresh(successor.refreshToken, context), "session_revoked");
      await rejectsWith(fixture.service.authenticate(successor.accessToken), "access_token_revoked");
      await fixture.services.audit.flush();
      const events = await fixture.store.listAuditEvents({ sessionId: tokens.sessionId }, null, 100);
      assert.ok(events.some((event) => event.type === "refresh_token_reused" && event.userId === user.id));
      const session = await fixture.store.findSession(tokens.sessionId);
      assert.equal(session!.revokedReason, "refresh_token_reused");
    });

    it("treats a repeat as reuse once the successor has been used, even within the grace window", async () => {
      const { tokens } = await loggedIn();
      const successor = await fixture.service.refresh(tokens.refreshToken, context);
      await fixture.service.refresh(successor.refreshToken, context);
      await rejectsWith(fixture.service.refresh(tokens.refreshToken, context), "refresh_token_reused");
    });

    it("judges the grace window as of the request's arrival: one that arrived within it and then waited past it repeats", async () => {
      const { tokens } = await loggedIn();
      const first = await fixture.service.refresh(tokens.refreshToken, context);
      fixture.clock.advance(11);
      // Arrived 8 s after the first use, then waited 3 s (for the database) before its lookup.
      const waited = { ...context, receivedAt: performance.now() - 3000 };
      const again = await fixture.service.refresh(tokens.refreshToken, waited);
      assert.equal(again.refreshToken, first.refreshToken);
      await rejectsWith(fixture.service.refresh(tokens.refreshToken, context), "refresh_token_reused");
    });

    it("hands a request that arrived before the token's first use the same successor, even once that was used, and revokes nothing", async () => {
      const { tokens } = await loggedIn();
      const first = await fixture.service.refresh(tokens.refreshToken, context);
      const next = await fixture.service.refresh(first.refreshToken, context);
      fixture.clock.advance(20);
      // A request the client gave up on: it arrived 21 s ago, before the first use above.
      const late = await fixture.service.refresh(tokens.refreshToken, {
        ...context,
        receivedAt: performance.now() - 21_000,
      });
      assert.equal(late.refreshToken, first.refreshToken);
      assert.equal((await fixture.store.findSession(tokens.sessionId))?.revokedAt, null);
      assert.ok(await fixture.service.refresh(next.refreshToken, context));
    });

    it("lets a token go idle after 3 days", async () => {
      const { tokens } = await loggedIn();
      fixture.clock.advance(3 * 86400);
      await rejectsWith(fixture.service.refresh(tokens.refreshToken, context), "refresh_token_expired");
    });

    it("ends the session 30 days after login however often it is refreshed", async () => {
      const { tokens } = await loggedIn();
      let current = tokens;
      for (let day = 2; day < 30; day += 2) {
        fixture.clock.advance(2 * 86400);
        current = await fixture.service.refresh(current.refreshToken, context);
      }
      // Day 28: the new token may not outlive the session.
      assert.equal(current.refreshTokenExpiresIn, 2 * 86400);
      fixture.clock.advance(2 * 86400);
      await rejectsWith(fixture.service.refresh(current.refreshToken, context), "session_expired");
    });

    it("rejects malformed and unknown tokens", async () => {
      await rejectsWith(fixture.service.refresh("not-a-token", context), "refresh_token_malformed");
      await rejectsWith(fixture.service.refresh(`tsr_${"A".repeat(49)}`, context), "refresh_token_malformed");
      const { tokens } = await loggedIn();
      const other = tokens.refreshToken.replace(/^tsr_./, (prefix) => (prefix.endsWith("A") ? "tsr_B" : "tsr_A"));
      await rejectsWith(fixture.service.refresh(other, context), "refresh_token_malformed");
    });

    it("lets exactly one of many concurrent refreshes rotate, all getting the same successor", async () => {
      const { tokens } = await loggedIn();
      const results = await Promise.all(
        Array.from({ length: 16 }, () => fixture.service.refresh(tokens.refreshToken, context)),
      );
      assert.equal(new Set(results.map((result) => result.refreshToken)).size, 1);
    });
  });

  describe("logout() and sessions", () => {
    it("logout ends the session and is idempotent", async () => {
      const { tokens } = await loggedIn();
      await fixture.service.logout(tokens.refreshToken, context);
      await fixture.service.logout(tokens.refreshToken, context);
      await fixture.service.logout("garbage", context);
      await rejectsWith(fixture.service.refresh(tokens.refreshToken, context), "session_revoked");
      await rejectsWith(fixture.service.authenticate(tokens.accessToken), "access_token_revoked");
    });

    it("lists open sessions with metadata and marks the current one", async () => {
      const { name, tokens } = await loggedIn();
      const second = await fixture.service.login(name, PASSWORD, { ip: "198.51.100.1", userAgent: "other" });
      const principal = await fixture.service.authenticate(tokens.accessToken);
      const sessions = await fixture.service.listSessions(principal);
      assert.equal(sessions.length, 2);
      const current = sessions.find((session) => session.current)!;
      assert.equal(current.id, tokens.sessionId);
      assert.equal(current.ip, "203.0.113.7");
      assert.equal(current.userAgent, "test-agent/1.0");
      assert.equal(current.expiresAt.getTime() - current.createdAt.getTime(), 3 * 86400 * 1000);
      const other = sessions.find((session) => !session.current)!;
      assert.equal(other.id, second.sessionId);
    });

    it("revokes one of the user's own sessions, and no one else's", async () => {
      const alice = await loggedIn();
      const bob = await loggedIn();
      const alicePrincipal = await fixture.service.authenticate(alice.tokens.accessToken);
      await rejectsWith(
        fixture.service.revokeSession(alicePrincipal, bob.tokens.sessionId, context),
        "session_not_found",
      );
      assert.ok(await fixture.service.authenticate(bob.tokens.accessToken));
      const second = await fixture.service.login(alice.name, PASSWORD, context);
      await fixture.service.revokeSession(alicePrincipal, second.sessionId, context);
      await rejectsWith(fixture.service.refresh(second.refreshToken, context), "session_revoked");
      await rejectsWith(fixture.service.revokeSession(alicePrincipal, second.sessionId, context), "session_not_found");
    });

    it("logout-all ends every session of the user and announces them", async () => {
      const { name, tokens } = await loggedIn();
      const second = await fixture.service.login(name, PASSWORD, context);
      const announced: string[] = [];
      const stop = fixture.services.revocations.onSessionsRevoked((event) => announced.push(...event.sessionIds));
      const principal = await fixture.service.authenticate(tokens.accessToken);
      assert.equal(await fixture.service.logoutAll(principal, context), 2);
      stop();
      assert.deepEqual(announced.sort(), [tokens.sessionId, second.sessionId].sort());
      await rejectsWith(fixture.service.refresh(second.refreshToken, context), "session_revoked");
    });

    it("revokeToken() ends the session of a refresh or an access token and ignores junk", async () => {
      const one = await loggedIn();
      await fixture.service.revokeToken(one.tokens.accessToken, context);
      await rejectsWith(fixture.service.refresh(one.tokens.refreshToken, context), "session_revoked");
      const two = await loggedIn();
      await fixture.service.revokeToken(two.tokens.refreshToken, context);
      await rejectsWith(fixture.service.authenticate(two.tokens.accessToken), "access_token_revoked");
      await fixture.service.revokeToken("junk", context);
    });
  });

  describe("signing keys", () => {
    it("are created once and shared by every instance on the database", async () => {
      const other = await fixture.another();
      // The clock has moved on in earlier tests: the instance starting may have advanced the schedule.
      await fixture.services.keys.reload();
      assert.deepEqual(other.jwks, fixture.services.jwks);
      const stored = await fixture.store.listSigningKeys();
      assert.equal(stored.filter((key) => key.state === "current").length, 1);
      const { tokens } = await loggedIn();
      assert.equal((await other.auth.authenticate(tokens.accessToken)).sessionId, tokens.sessionId);
    });

    it("publish only public members", () => {
      for (const key of fixture.services.jwks.keys) {
        assert.deepEqual(Object.keys(key).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"]);
      }
    });

    it("cannot be opened with another secret", async () => {
      await assert.rejects(
        fixture.another({ secret: "a-completely-different-secret-0123456789" }),
        (error: unknown) => {
          return error instanceof TesseraError && error.code === "signing_key_unavailable";
        },
      );
    });
  });
});

describe("AuthService near the absolute end of a session", () => {
  const claimsOf = (token: string) =>
    JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { iat: number; exp: number };

  it("never lets an access token outlive its session: login, refresh and the grace-window repeat", async () => {
    const fixture = await serviceFixture({ accessTokenTtl: "15m", refreshTokenTtl: "1h", sessionTtl: "1h" });
    try {
      await fixture.service.register("closing", PASSWORD, context);
      const login = await fixture.service.login("closing", PASSWORD, context);
      const end = (await fixture.store.findSession(login.sessionId))!.expiresAt.getTime() / 1000;
      assert.equal(claimsOf(login.accessToken).exp - claimsOf(login.accessToken).iat, 900);
      assert.equal(login.accessTokenExpiresIn, 900);

      // 4 min 59.6 s before the end: the token ends with the session, and expires_in says so.
      fixture.clock.advance(55 * 60 + 0.4);
      const refreshed = await fixture.service.refresh(login.refreshToken, context);
      assert.equal(claimsOf(refreshed.accessToken).exp, end);
      assert.equal(refreshed.accessTokenExpiresIn, 300);

      fixture.clock.advance(5);
      const repeated = await fixture.service.refresh(login.refreshToken, context);
      assert.equal(repeated.refreshToken, refreshed.refreshToken);
      assert.equal(claimsOf(repeated.accessToken).exp, end);
      assert.equal(repeated.accessTokenExpiresIn, 295);
      assert.ok(await fixture.service.authenticate(repeated.accessToken));
    } finally {
      await fixture.close();
    }
  });
});

describe("AuthService in development mode", () => {
  it("keeps working across restarts and retires its key once a secret is set", async () => {
    const fixture = await serviceFixture({ secret: "" });
    try {
      assert.equal(fixture.services.config.developmentMode, true);
      const devKid = fixture.services.jwks.keys[0]!.kid;
      const restarted = await fixture.another({ secret: "" });
      assert.equal(restarted.jwks.keys[0]!.kid, devKid);
      const secured = await fixture.another({ secret: "now-a-real-secret-0123456789-abcdefgh" });
      const kids = secured.jwks.keys.map((key) => key.kid);
      assert.equal(kids.length, 2, "the retired key stays published for the access-token lifetime");
      assert.ok(kids.includes(devKid));
    } finally {
      await fixture.close();
    }
  });
});

describe("AuthService without a secret on a database sealed with one", () => {
  it("refuses to start instead of signing with a development key beside the real ones", async () => {
    const fixture = await serviceFixture();
    try {
      await assert.rejects(
        fixture.another({ secret: "" }),
        (error: unknown) => error instanceof TesseraError && error.code === "signing_key_unavailable",
      );
      const keys = await fixture.store.listSigningKeys();
      assert.deepEqual(
        keys.map((key) => key.encryption),
        ["secret"],
        "no development key was written",
      );
    } finally {
      await fixture.close();
    }
  });
});

describe("AuthService with HS256", () => {
  it("signs with the shared secret and publishes no keys", async () => {
    const fixture = await serviceFixture({ signingAlgorithm: "HS256", hs256Secret: "s".repeat(32) });
    try {
      assert.deepEqual(fixture.services.jwks.keys, []);
      await fixture.service.register("hsuser", PASSWORD, context);
      const tokens = await fixture.service.login("hsuser", PASSWORD, context);
      const header = JSON.parse(Buffer.from(tokens.accessToken.split(".")[0]!, "base64url").toString());
      assert.equal(header.alg, "HS256");
      assert.ok(await fixture.service.authenticate(tokens.accessToken));
    } finally {
      await fixture.close();
    }
  });
});

describe("AdminService.rotateSigningKey()", () => {
  it("switches signing to a new key while tokens of the old one keep verifying, on every instance", async () => {
    const fixture = await serviceFixture();
    try {
      const other = await fixture.another();
      await fixture.service.register("rotator", PASSWORD, context);
      const before = await fixture.service.login("rotator", PASSWORD, context);
      const oldKid = fixture.services.jwks.keys[0]!.kid;
      const { kid: newKid } = await other.admin.rotateSigningKey({ immediately: true });
      assert.notEqual(newKid, oldKid);
      const after = await other.auth.login("rotator", PASSWORD, context);
      const kidOf = (token: string) =>
        JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).kid as string;
      assert.equal(kidOf(after.accessToken), newKid);
      // The first instance has not reloaded yet: the unknown kid makes it look.
      assert.equal((await fixture.service.authenticate(after.accessToken)).sessionId, after.sessionId);
      assert.equal((await other.auth.authenticate(before.accessToken)).sessionId, before.sessionId);
      assert.deepEqual(fixture.services.jwks.keys.map((key) => key.kid).sort(), [oldKid, newKid].sort());
      const signedByFirst = await fixture.service.login("rotator", PASSWORD, context);
      assert.equal(kidOf(signedByFirst.accessToken), newKid);
      // Still published while instances that have not reloaded may sign with it...
      fixture.clock.advance(970);
      await fixture.services.keys.reload();
      assert.equal(fixture.services.jwks.keys.length, 2);
      // ...and gone one access-token lifetime plus the longest reload interval after retirement.
      fixture.clock.advance(6);
      await fixture.services.keys.reload();
      assert.deepEqual(
        fixture.services.jwks.keys.map((key) => key.kid),
        [newKid],
      );
    } finally {
      await fixture.close();
    }
  });
});

describe("AdminService", () => {
  it("sets roles that the next access token carries, and revokes a user's sessions", async () => {
    const fixture = await serviceFixture();
    try {
      await fixture.service.register("managed", PASSWORD, context);
      const first = await fixture.service.login("managed", PASSWORD, context);
      assert.deepEqual((await fixture.services.admin.setUserRoles("MANAGED", ["admin", "user", "admin"])).roles, [
        "admin",
        "user",
      ]);
      await rejectsWith(fixture.services.admin.setUserRoles("managed", ["bad role"]), "invalid_request");
      await rejectsWith(fixture.services.admin.setUserRoles("ghost", ["x"]), "user_not_found");
      const refreshed = await fixture.service.refresh(first.refreshToken, context);
      assert.deepEqual((await fixture.service.authenticate(refreshed.accessToken)).roles, ["admin", "user"]);
      assert.equal((await fixture.services.admin.listUserSessions("managed")).length, 1);
      assert.deepEqual(await fixture.services.admin.revokeSessions({ username: "managed" }), [first.sessionId]);
      await rejectsWith(fixture.service.authenticate(refreshed.accessToken), "access_token_revoked");
    } finally {
      await fixture.close();
    }
  });
});

describe("AuthService with registration closed", () => {
  it("refuses register() with registration_closed; the operator's createUser() still creates accounts", async () => {
    const fixture = await serviceFixture({ registration: "closed" });
    try {
      await rejectsWith(fixture.service.register("walk-in", PASSWORD, context), "registration_closed");
      assert.equal(await fixture.store.findUserByUsername("walk-in"), null);
      const created = await fixture.services.admin.createUser("Invited", PASSWORD);
      assert.deepEqual(created.roles, ["user"]);
      assert.ok((await fixture.service.login("invited", PASSWORD, context)).accessToken);
      await rejectsWith(fixture.services.admin.createUser("invited", PASSWORD), "username_taken");
    } finally {
      await fixture.close();
    }
  });
});
