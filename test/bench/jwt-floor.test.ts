// The benchmark's node:crypto floor must be a correct verifier, or the ratios against it mean
// nothing: it accepts what it should and refuses every token a real verifier refuses.
import assert from "node:assert/strict";
import { createHmac, createSecretKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { describe, it } from "node:test";
import { createFloorVerifier, type FloorAlgorithm } from "../../bench/floor/jwt-floor.js";

const ISSUER = "https://issuer.test";
const AUDIENCE = "tessera";
const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

interface Keys {
  readonly signWith: (input: string) => Buffer;
  readonly verifyWith: KeyObject;
}

function keysFor(alg: FloorAlgorithm): Keys {
  if (alg === "HS256") {
    const secret = createSecretKey(Buffer.alloc(32, 7));
    return { signWith: (input) => createHmac("sha256", secret).update(input).digest(), verifyWith: secret };
  }
  const pair = alg === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519");
  return {
    signWith: (input) =>
      alg === "ES256"
        ? sign("sha256", Buffer.from(input), { key: pair.privateKey, dsaEncoding: "ieee-p1363" })
        : sign(null, Buffer.from(input), pair.privateKey),
    verifyWith: pair.publicKey,
  };
}

function tokenOf(keys: Keys, header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${encode(header)}.${encode(claims)}`;
  return `${input}.${keys.signWith(input).toString("base64url")}`;
}

for (const alg of ["HS256", "ES256", "EdDSA"] as const) {
  describe(`createFloorVerifier() with ${alg}`, () => {
    const keys = keysFor(alg);
    const verify = createFloorVerifier({ alg, key: keys.verifyWith, issuer: ISSUER, audience: AUDIENCE });
    const header = { alg, typ: "at+jwt", kid: "k1" };
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: "user-1", exp: Math.floor(Date.now() / 1000) + 60 };

    it("returns the claims of a valid token, also when aud is a list naming the audience", () => {
      assert.equal(verify(tokenOf(keys, header, claims)).sub, "user-1");
      assert.equal(verify(tokenOf(keys, header, { ...claims, aud: ["other", AUDIENCE] })).sub, "user-1");
    });

    it("refuses a changed signature, a changed payload and a token of the wrong shape", () => {
      const token = tokenOf(keys, header, claims);
      const at = token.lastIndexOf(".") + 5;
      assert.throws(() => verify(token.slice(0, at) + (token[at] === "A" ? "B" : "A") + token.slice(at + 1)));
      const [h, , s] = token.split(".");
      assert.throws(() => verify(`${h}.${encode({ ...claims, sub: "admin" })}.${s}`));
      assert.throws(() => verify(`${token}.x`));
      assert.throws(() => verify("not-a-token"));
    });

    it("refuses another algorithm, alg none, and a typ other than at+jwt", () => {
      assert.throws(() => verify(tokenOf(keys, { ...header, alg: alg === "HS256" ? "HS384" : "HS256" }, claims)));
      assert.throws(() => verify(`${encode({ alg: "none", typ: "at+jwt" })}.${encode(claims)}.`));
      assert.throws(() => verify(tokenOf(keys, { ...header, typ: "JWT" }, claims)));
      assert.throws(() => verify(tokenOf(keys, { alg }, claims)));
    });

    it("refuses an expired token, a token without exp, another issuer and another audience", () => {
      assert.throws(() => verify(tokenOf(keys, header, { ...claims, exp: Math.floor(Date.now() / 1000) - 1 })));
      assert.throws(() => verify(tokenOf(keys, header, { ...claims, exp: undefined })));
      assert.throws(() => verify(tokenOf(keys, header, { ...claims, iss: "https://evil.test" })));
      assert.throws(() => verify(tokenOf(keys, header, { ...claims, aud: "other" })));
    });
  });
}
