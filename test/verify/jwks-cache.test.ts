import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, beforeEach, describe, it } from "node:test";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { jwksMaxAgeSeconds } from "../../src/verify/jwks-cache.js";
import { FrozenClock } from "../support/clock.js";
import {
  claimsFor,
  es256Key,
  eventually,
  headerFor,
  rejectionCode,
  signJws,
  startStubServer,
  type StubServer,
} from "./support.js";

const ISSUER = "https://issuer.test";
const silent = { warn: () => undefined };

void describe("createVerifier() with a remote JWK Set", () => {
  let jwksServer: StubServer;
  let verifiers: Verifier[] = [];
  const signer = es256Key();
  const tokenFor = (keyPair = signer, kid?: string) =>
    signJws(headerFor(keyPair.key, kid === undefined ? {} : { kid }), claimsFor(ISSUER), keyPair.key);

  const verifierFor = (overrides: Partial<VerifierOptions> = {}) => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: "tessera",
      algorithms: ["ES256"],
      jwksUri: `${jwksServer.url}/jwks.json`,
      cache: false,
      logger: silent,
      ...overrides,
    });
    verifiers.push(verifier);
    return verifier;
  };

  beforeEach(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    verifiers = [];
    await jwksServer?.close();
    jwksServer = await startStubServer();
    jwksServer.respond(200, signer.jwks);
  });
  after(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    await jwksServer.close();
  });

  void it("fetches the JWK Set once for many tokens and shares one in-flight fetch between concurrent ones", async () => {
    jwksServer.delay(50);
    const verifier = verifierFor();
    const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(tokenFor())));
    assert.equal(results.length, 20);
    await verifier.verify(tokenFor());
    assert.equal(jwksServer.requests.length, 1);
  });

  void it("refetches the JWK Set at most once per cooldown when kids are unknown", async () => {
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock, jwksCooldownSeconds: 30 });
    await verifier.verify(tokenFor());
    const flood = () =>
      Promise.all(Array.from({ length: 50 }, () => rejectionCode(verifier.verify(tokenFor(signer, randomUUID())))));
    assert.deepEqual(new Set(await flood()), new Set(["access_token_invalid"]));
    assert.equal(jwksServer.requests.length, 1, "no refetch within the cooldown");
    clock.advance(31);
    await flood();
    assert.equal(jwksServer.requests.length, 2, "one shared refetch after the cooldown");
    await flood();
    assert.equal(jwksServer.requests.length, 2);
  });

  void it("picks up a rotated-in key once the cooldown allows a refetch", async () => {
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock });
    await verifier.verify(tokenFor());
    const rotated = es256Key();
    jwksServer.respond(200, { keys: [...signer.jwks.keys, ...rotated.jwks.keys] });
    clock.advance(31);
    assert.equal((await verifier.verify(tokenFor(rotated))).iss, ISSUER);
    assert.equal(jwksServer.requests.length, 2);
  });

  void it("stops serving a cached token once its key is withdrawn from the JWK Set", async () => {
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock, cache: { maxEntries: 100 } });
    const token = tokenFor();
    await verifier.verify(token);
    await verifier.verify(token);
    assert.equal(verifier.stats().tokenCacheHits, 1, "served from the cache while the key is trusted");
    const replacement = es256Key();
    jwksServer.respond(200, replacement.jwks);
    clock.advance(301); // the default 5-minute max-age: a background refresh starts
    await verifier.verify(token);
    await eventually(() => jwksServer.requests.length === 2);
    // The request has arrived; the new key set takes effect once its answer has been read.
    await eventually(async () => (await rejectionCode(verifier.verify(token))) !== "resolved");
    assert.equal(await rejectionCode(verifier.verify(token)), "access_token_invalid");
    assert.equal(verifier.stats().tokenCacheSize, 0);
  });

  void it("keeps the JWK Set for its Cache-Control max-age, then refreshes it in the background", async () => {
    jwksServer.respond(200, signer.jwks, { "cache-control": "public, max-age=120" });
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock });
    await verifier.verify(tokenFor());
    clock.advance(119);
    await verifier.verify(tokenFor());
    assert.equal(jwksServer.requests.length, 1);
    clock.advance(2);
    await verifier.verify(tokenFor());
    await eventually(() => jwksServer.requests.length === 2);
  });

  void it("clamps max-age to 30 seconds … 24 hours and defaults to 5 minutes", () => {
    assert.equal(jwksMaxAgeSeconds("max-age=1"), 30);
    assert.equal(jwksMaxAgeSeconds("max-age=999999999"), 86_400);
    assert.equal(jwksMaxAgeSeconds("no-store"), 30);
    assert.equal(jwksMaxAgeSeconds(null), 300);
    assert.equal(jwksMaxAgeSeconds("private, max-age=600"), 600);
    assert.equal(jwksMaxAgeSeconds("s-maxage=10"), 300);
  });

  void it("keeps serving the cached keys when a refresh fails", async () => {
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock });
    await verifier.verify(tokenFor());
    jwksServer.respond(500, { error: "down" });
    clock.advance(301);
    await verifier.verify(tokenFor());
    await eventually(() => jwksServer.requests.length === 2);
    assert.equal((await verifier.verify(tokenFor())).iss, ISSUER);
  });

  void it("answers verification_keys_unavailable while no JWK Set could be loaded, and retries after the cooldown", async () => {
    jwksServer.respond(503, {});
    const clock = FrozenClock.onSystemTime();
    const verifier = verifierFor({ clock });
    assert.equal(await rejectionCode(verifier.verify(tokenFor())), "verification_keys_unavailable");
    assert.equal(await rejectionCode(verifier.verify(tokenFor())), "verification_keys_unavailable");
    assert.equal(jwksServer.requests.length, 1);
    jwksServer.respond(200, signer.jwks);
    clock.advance(31);
    assert.equal((await verifier.verify(tokenFor())).iss, ISSUER);
  });

  void it("refuses a JWKS response larger than 512 KiB, even one sent without Content-Length", async () => {
    const huge = { keys: [...signer.jwks.keys, { kty: "oct", k: "x".repeat(600 * 1024) }] };
    const verifier = verifierFor({
      // Strip Content-Length by re-streaming the body: the cap must hold while reading.
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        return new Response(response.body, {
          status: response.status,
          headers: { "content-type": "application/json" },
        });
      },
    });
    jwksServer.respond(200, huge);
    assert.equal(await rejectionCode(verifier.verify(tokenFor())), "verification_keys_unavailable");
  });

  void it("gives up a fetch after fetchTimeoutMs", async () => {
    jwksServer.delay(1000);
    const verifier = verifierFor({ fetchTimeoutMs: 100 });
    const started = Date.now();
    assert.equal(await rejectionCode(verifier.verify(tokenFor())), "verification_keys_unavailable");
    assert.ok(Date.now() - started < 1000);
  });

  void it("uses the injected fetch", async () => {
    const seen: string[] = [];
    const verifier = verifierFor({
      fetch: (input, init) => {
        seen.push(input instanceof Request ? input.url : input.toString());
        return fetch(input, init);
      },
    });
    await verifier.verify(tokenFor());
    assert.deepEqual(seen, [`${jwksServer.url}/jwks.json`]);
  });
});
