import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideRotation, type RotationInput } from "../../src/core/rotation.js";

const now = new Date("2026-03-01T00:00:00.000Z");
const later = (seconds: number) => new Date(now.getTime() + seconds * 1000);

function input(overrides: Partial<RotationInput> = {}): RotationInput {
  return {
    token: { expiresAt: later(3600), usedAt: null },
    session: { expiresAt: later(86400), revokedAt: null },
    successor: null,
    now,
    graceSeconds: 10,
    ...overrides,
  };
}

describe("decideRotation()", () => {
  it("rotates an unused, unexpired token of an open session", () => {
    assert.deepEqual(decideRotation(input()), { action: "rotate" });
  });

  it("repeats the same successor when the token comes back within the grace window", () => {
    const decision = decideRotation(
      input({
        token: { expiresAt: later(3600), usedAt: later(-9) },
        successor: { expiresAt: later(3600), usedAt: null },
      }),
    );
    assert.deepEqual(decision, { action: "repeat" });
  });

  it("revokes the session when a used token comes back after the grace window", () => {
    const decision = decideRotation(
      input({
        token: { expiresAt: later(3600), usedAt: later(-10) },
        successor: { expiresAt: later(3600), usedAt: null },
      }),
    );
    assert.deepEqual(decision, { action: "revoke_session", code: "refresh_token_reused" });
  });

  it("revokes the session when the successor has been used, even within the grace window", () => {
    const decision = decideRotation(
      input({
        token: { expiresAt: later(3600), usedAt: later(-1) },
        successor: { expiresAt: later(3600), usedAt: later(0) },
      }),
    );
    assert.deepEqual(decision, { action: "revoke_session", code: "refresh_token_reused" });
  });

  it("judges the grace window by the request's arrival, not by now", () => {
    const token = { expiresAt: later(3600), usedAt: later(-12) };
    const successor = { expiresAt: later(3600), usedAt: null };
    assert.deepEqual(decideRotation(input({ token, successor, arrivedAt: later(-3) })), { action: "repeat" });
    assert.equal(decideRotation(input({ token, successor })).action, "revoke_session");
  });

  it("repeats for a request that arrived before the token's first use, even once the successor was used", () => {
    const decision = decideRotation(
      input({
        token: { expiresAt: later(3600), usedAt: later(-30) },
        successor: { expiresAt: later(3600), usedAt: later(-20) },
        arrivedAt: later(-31),
      }),
    );
    assert.deepEqual(decision, { action: "repeat" });
  });

  it("treats a zero grace window as no grace at all", () => {
    const decision = decideRotation(
      input({
        graceSeconds: 0,
        token: { expiresAt: later(3600), usedAt: now },
        successor: { expiresAt: later(3600), usedAt: null },
      }),
    );
    assert.equal(decision.action, "revoke_session");
  });

  it("rejects an expired token without revoking anything", () => {
    assert.deepEqual(decideRotation(input({ token: { expiresAt: now, usedAt: null } })), {
      action: "reject",
      code: "refresh_token_expired",
    });
  });

  it("rejects tokens of revoked or expired sessions first", () => {
    assert.deepEqual(decideRotation(input({ session: { expiresAt: later(10), revokedAt: later(-5) } })), {
      action: "reject",
      code: "session_revoked",
    });
    assert.deepEqual(decideRotation(input({ session: { expiresAt: now, revokedAt: null } })), {
      action: "reject",
      code: "session_expired",
    });
  });
});
