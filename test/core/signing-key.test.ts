import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { describe, it } from "node:test";
import { generateSigningKey, RSA_MODULUS_BITS } from "../../src/core/signing-key.js";

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
