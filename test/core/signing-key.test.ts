import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { describe, it } from "node:test";
import { generateSigningKey, keyScheduleStep, RSA_MODULUS_BITS } from "../../src/core/signing-key.js";

describe("generateSigningKey()", () => {
  for (const alg of ["PS256", "RS256"] as const) {
    it(`makes ${alg} keys of 3072 bits (ASVS 11.2.3), in the key and in the published JWK`, () => {
      const key = generateSigningKey(alg);
      assert.equal(RSA_MODULUS_BITS, 3072);
      assert.equal(createPublicKey(key.publicKey).asymmetricKeyDetails?.modulusLength, 3072);
      assert.equal(Buffer.from(key.publicJwk!.n!, "base64url").length * 8, 3072);
    });
  }
});

describe("keyScheduleStep()", () => {
  const T = new Date("2026-01-01T00:00:00Z");
  const at = (seconds: number) => new Date(T.getTime() + seconds * 1000);
  const base = {
    current: { kid: "k1", activatedAt: T },
    next: null,
    rotationSeconds: 3600,
    publicationLeadSeconds: 375,
  };

  it("waits until one publication lead before the current key is due", () => {
    assert.deepEqual(keyScheduleStep({ ...base, now: at(3600 - 376) }), { action: "wait" });
  });

  it("prepares a next key to activate when the current one is due", () => {
    assert.deepEqual(keyScheduleStep({ ...base, now: at(3600 - 375) }), { action: "prepare", activatesAt: at(3600) });
  });

  it("never lets a late next key sign sooner than one lead after it is published", () => {
    assert.deepEqual(keyScheduleStep({ ...base, now: at(5 * 3600) }), {
      action: "prepare",
      activatesAt: at(5 * 3600 + 375),
    });
  });

  it("waits for a published next key, then promotes it in place of the current one", () => {
    const next = { kid: "k2", activatesAt: at(3600) };
    assert.deepEqual(keyScheduleStep({ ...base, next, now: at(3599) }), { action: "wait" });
    assert.deepEqual(keyScheduleStep({ ...base, next, now: at(3600) }), {
      action: "promote",
      nextKid: "k2",
      currentKid: "k1",
    });
  });

  it("promotes a next key even with scheduled rotation off, and prepares none", () => {
    const off = { ...base, rotationSeconds: null };
    assert.deepEqual(keyScheduleStep({ ...off, now: at(400 * 86400) }), { action: "wait" });
    const next = { kid: "k2", activatesAt: at(10) };
    assert.equal(keyScheduleStep({ ...off, next, now: at(10) }).action, "promote");
  });
});
