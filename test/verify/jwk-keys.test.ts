import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type SigningKey, signingKeyFromPem } from "../../src/core/signing-key.js";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { claimsFor, headerFor, rejectionCode, signJws, startStubServer, type StubServer } from "./support.js";

const ISSUER = "https://other-issuer.test";

function rsaKey(alg: "PS256" | "RS256", modulusLength: number): SigningKey {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength });
  return signingKeyFromPem(alg, privateKey.export({ type: "pkcs8", format: "pem" }) as string);
}

void describe("createVerifier() and the RSA key size (minRsaModulusBits)", () => {
  const weakPs = rsaKey("PS256", 2048);
  const weakRs = rsaKey("RS256", 2048);
  const strong = rsaKey("PS256", 3072);
  const weakJwks = { keys: [weakPs.publicJwk, weakRs.publicJwk] };
  const tokenOf = (key: SigningKey) => signJws(headerFor(key), claimsFor(ISSUER), key);
  let jwksServer: StubServer;
  const verifiers: Verifier[] = [];
  const warnings: string[] = [];

  const verifierFor = (overrides: Partial<VerifierOptions>) => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: "tessera",
      algorithms: ["PS256", "RS256"],
      logger: { warn: (_details, message) => void warnings.push(message) },
      ...overrides,
    });
    verifiers.push(verifier);
    return verifier;
  };

  before(async () => {
    jwksServer = await startStubServer();
  });
  after(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    await jwksServer.close();
  });

  void it("refuses a static key set of 2048-bit RSA keys by default, naming minRsaModulusBits", () => {
    assert.throws(
      () => verifierFor({ jwks: weakJwks }),
      (error: unknown) =>
        error instanceof TypeError &&
        /minRsaModulusBits \(3072\)/.test(error.message) &&
        /2048 bits/.test(error.message),
    );
  });

  void it("accepts 2048-bit RSA keys of a static key set with minRsaModulusBits: 2048", async () => {
    const verifier = verifierFor({ jwks: weakJwks, minRsaModulusBits: 2048 });
    assert.equal(verifier.config.minRsaModulusBits, 2048);
    assert.equal((await verifier.verify(tokenOf(weakPs))).iss, ISSUER);
    assert.equal((await verifier.verify(tokenOf(weakRs))).iss, ISSUER);
  });

  void it("skips 2048-bit RSA keys served from a jwksUri by default, and says why", async () => {
    jwksServer.respond(200, weakJwks);
    warnings.length = 0;
    const verifier = verifierFor({ jwksUri: `${jwksServer.url}/jwks.json` });
    assert.equal(await rejectionCode(verifier.verify(tokenOf(weakPs))), "verification_keys_unavailable");
    assert.ok(
      warnings.some((message) => /minRsaModulusBits \(3072\)/.test(message)),
      `warned: ${warnings.join("; ")}`,
    );
  });

  void it("refuses a token of a 2048-bit key beside usable keys of a jwksUri", async () => {
    jwksServer.respond(200, { keys: [strong.publicJwk, weakPs.publicJwk] });
    const verifier = verifierFor({ jwksUri: `${jwksServer.url}/jwks.json` });
    assert.equal((await verifier.verify(tokenOf(strong))).iss, ISSUER);
    assert.equal(await rejectionCode(verifier.verify(tokenOf(weakPs))), "access_token_invalid");
  });

  void it("accepts 2048-bit RSA keys served from a jwksUri with minRsaModulusBits: 2048", async () => {
    jwksServer.respond(200, weakJwks);
    const verifier = verifierFor({ jwksUri: `${jwksServer.url}/jwks.json`, minRsaModulusBits: 2048 });
    assert.equal((await verifier.verify(tokenOf(weakPs))).iss, ISSUER);
    assert.equal((await verifier.verify(tokenOf(weakRs))).iss, ISSUER);
  });

  void it("accepts 3072-bit RSA keys by default, from a static set and from a jwksUri", async () => {
    jwksServer.respond(200, { keys: [strong.publicJwk] });
    assert.equal((await verifierFor({ jwks: { keys: [strong.publicJwk] } }).verify(tokenOf(strong))).iss, ISSUER);
    assert.equal((await verifierFor({ jwksUri: `${jwksServer.url}/jwks.json` }).verify(tokenOf(strong))).iss, ISSUER);
  });

  void it("refuses minRsaModulusBits under 2048, fractional or null", () => {
    const options = { jwks: { keys: [strong.publicJwk] } };
    for (const minRsaModulusBits of [1024, 2047, 3072.5, null, "3072"]) {
      assert.throws(
        () => verifierFor({ ...options, minRsaModulusBits: minRsaModulusBits as number }),
        (error: unknown) => error instanceof TypeError && /minRsaModulusBits/.test(error.message),
        String(minRsaModulusBits),
      );
    }
  });
});
