import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { FrozenClock } from "../support/clock.js";
import { claimsFor, es256Key, headerFor, rejectionCode, signJws } from "./support.js";

const ISSUER = "https://issuer.test";

void describe("createVerifier() token cache", () => {
  const signer = es256Key();
  const verifiers: Verifier[] = [];
  const verifierFor = (overrides: Partial<VerifierOptions> = {}) => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: "tessera",
      algorithms: ["ES256"],
      jwks: signer.jwks,
      ...overrides,
    });
    verifiers.push(verifier);
    return verifier;
  };
  const tokenFor = (ttlSeconds = 900) =>
    signJws(headerFor(signer.key), claimsFor(ISSUER, "tessera", ttlSeconds), signer.key);
  after(() => Promise.all(verifiers.map((verifier) => verifier.close())));

  void it("answers a repeated token from the cache without verifying it again", async () => {
    const verifier = verifierFor();
    const token = tokenFor();
    const first = await verifier.verify(token);
    const second = await verifier.verify(token);
    assert.equal(second, first);
    assert.deepEqual(
      { hits: verifier.stats().tokenCacheHits, misses: verifier.stats().tokenCacheMisses },
      { hits: 1, misses: 1 },
    );
  });

  void it("never serves a cached token to one that differs only in its signature", async () => {
    const verifier = verifierFor();
    const token = tokenFor();
    await verifier.verify(token);
    const [header, payload, signature] = token.split(".");
    // A middle character carries six full bits: changing it changes the signature bytes.
    const altered = `${header}.${payload}.${signature!.slice(0, 10)}${signature![10] === "A" ? "B" : "A"}${signature!.slice(11)}`;
    assert.equal(await rejectionCode(verifier.verify(altered)), "access_token_invalid");
  });

  void it("never returns an expired token from the cache", async () => {
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock });
    const token = tokenFor(60);
    await verifier.verify(token);
    clock.advance(61);
    assert.equal(await rejectionCode(verifier.verify(token)), "access_token_expired");
    assert.equal(verifier.stats().tokenCacheHits, 0);
  });

  void it("keeps at most cache.maxEntries tokens, evicting the least recently used", async () => {
    const verifier = verifierFor({ cache: { maxEntries: 2 } });
    const [a, b, c] = [tokenFor(), tokenFor(), tokenFor()];
    await verifier.verify(a);
    await verifier.verify(b);
    await verifier.verify(a);
    await verifier.verify(c);
    assert.equal(verifier.stats().tokenCacheSize, 2);
    await verifier.verify(a);
    assert.equal(verifier.stats().tokenCacheHits, 2, "a stayed: it was used more recently than b");
    await verifier.verify(b);
    assert.equal(verifier.stats().tokenCacheHits, 2, "b was evicted");
  });

  void it("caches nothing with cache: false", async () => {
    const verifier = verifierFor({ cache: false });
    const token = tokenFor();
    await verifier.verify(token);
    await verifier.verify(token);
    assert.equal(verifier.stats().tokenCacheHits, 0);
  });
});
