import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { FrozenClock } from "../support/clock.js";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";
import {
  claimsFor,
  es256Key,
  headerFor,
  pemOfJwk,
  rejectionCode,
  signJws,
  startStubServer,
  type StubServer,
} from "./support.js";

const silent = { warn: () => undefined };

void describe("createVerifier() options", () => {
  const valid: VerifierOptions = {
    issuer: "https://issuer.test",
    audience: "tessera",
    algorithms: ["ES256"],
    jwksUri: "https://issuer.test/jwks",
  };
  const without = (name: keyof VerifierOptions) =>
    Object.fromEntries(Object.entries(valid).filter(([key]) => key !== name)) as unknown as VerifierOptions;

  for (const name of ["issuer", "audience", "algorithms"] as const) {
    void it(`throws a TypeError naming ${name} when it is missing`, () => {
      assert.throws(
        () => createVerifier(without(name)),
        (error: unknown) => error instanceof TypeError && error.message.includes(name),
      );
    });
  }

  void it("throws a TypeError when no key source is given", () => {
    assert.throws(
      () => createVerifier(without("jwksUri")),
      (error: unknown) => error instanceof TypeError && /jwksUri/.test(error.message),
    );
  });

  void it("throws a TypeError when two key sources are given", () => {
    const { jwks } = es256Key();
    assert.throws(
      () => createVerifier({ ...valid, jwks }),
      (error: unknown) => error instanceof TypeError && /jwksUri and jwks/.test(error.message),
    );
  });

  void it("refuses an algorithm Tessera does not know, such as none", () => {
    assert.throws(() => createVerifier({ ...valid, algorithms: ["none" as "ES256"] }), TypeError);
  });

  void it("refuses HS256 next to a JWK Set and public-key algorithms next to a secret", () => {
    assert.throws(() => createVerifier({ ...valid, algorithms: ["ES256", "HS256"] }), /HS256/);
    assert.throws(() => createVerifier({ ...without("jwksUri"), secret: "x".repeat(32) }), /algorithms/);
    assert.throws(() => createVerifier({ ...without("jwksUri"), algorithms: ["HS256"], secret: "short" }), /secret/);
  });

  void it("refuses bad numbers instead of falling back to defaults", () => {
    assert.throws(() => createVerifier({ ...valid, clockSkewSeconds: -1 }), /clockSkewSeconds/);
    assert.throws(() => createVerifier({ ...valid, cache: { maxEntries: 0 } }), /cache\.maxEntries/);
    assert.throws(
      () => createVerifier({ ...valid, revocation: { url: "http://x.test/r", intervalSeconds: 0 } }),
      /revocation\.intervalSeconds/,
    );
    assert.throws(
      () => createVerifier({ ...valid, revocation: { url: "ftp://x.test/r", intervalSeconds: 1 } }),
      /revocation\.url/,
    );
  });

  void it("refuses null, misspelled options and non-byte secrets instead of using defaults", () => {
    const loose = (extra: Record<string, unknown>): VerifierOptions => ({ ...valid, ...extra });
    assert.throws(() => createVerifier(loose({ clockSkewSeconds: null })), /clockSkewSeconds/);
    assert.throws(() => createVerifier(loose({ fetchTimeoutMs: null })), /fetchTimeoutMs/);
    assert.throws(() => createVerifier(loose({ jwksCooldownSeconds: null })), /jwksCooldownSeconds/);
    assert.throws(() => createVerifier(loose({ fetch: null })), /fetch/);
    assert.throws(() => createVerifier(loose({ clockSkew: 60 })), /unknown option clockSkew/);
    assert.throws(() => createVerifier(loose({ cache: { maxEntry: 5 } })), /unknown option cache\.maxEntry/);
    assert.throws(
      () => createVerifier(loose({ revocation: { url: "http://x.test/r", intervalSeconds: 1, interval: 5 } })),
      /unknown option revocation\.interval/,
    );
    assert.throws(
      () =>
        createVerifier({
          ...without("jwksUri"),
          algorithms: ["HS256"],
          secret: new ArrayBuffer(32) as unknown as Uint8Array,
        }),
      /string or a Uint8Array/,
    );
  });

  void it("freezes the resolved options and leaves the caller's object alone", () => {
    const options = { ...valid, algorithms: ["ES256" as const] };
    const verifier = createVerifier(options);
    assert.ok(Object.isFrozen(verifier.config));
    assert.ok(Object.isFrozen(verifier.config.algorithms));
    assert.equal(verifier.config.clockSkewSeconds, 0);
    assert.equal(verifier.config.cacheMaxEntries, 1000);
    assert.deepEqual(options, { ...valid, algorithms: ["ES256"] });
  });
});

void describe("createVerifier() against a real Tessera server", () => {
  let server: RunningServer;
  let tokens: Awaited<ReturnType<typeof registerAndLogin>>;
  let jwksUri: string;
  let attacker: StubServer;
  const verifiers: Verifier[] = [];
  const clock = FrozenClock.onSystemTime();

  const verifierFor = (overrides: Partial<VerifierOptions> = {}) => {
    const verifier = createVerifier({
      issuer: server.issuer,
      audience: server.audience,
      algorithms: ["ES256"],
      jwksUri,
      clock,
      logger: silent,
      ...overrides,
    });
    verifiers.push(verifier);
    return verifier;
  };

  before(async () => {
    server = await startServer();
    jwksUri = `${server.url}/.well-known/jwks.json`;
    tokens = await registerAndLogin(server.url, "verifier-user");
    attacker = await startStubServer();
  });
  after(async () => {
    await Promise.all(verifiers.map((verifier) => verifier.close()));
    await attacker.close();
    await server.close();
  });

  void it("returns the frozen claims of a valid token", async () => {
    const claims = await verifierFor().verify(tokens.access_token);
    assert.equal(claims.iss, server.issuer);
    assert.deepEqual(claims.roles, ["user"]);
    assert.equal(typeof claims.sid, "string");
    assert.ok(Object.isFrozen(claims) && Object.isFrozen(claims.roles));
  });

  void it("reads the token of an Authorization header and reports a missing or malformed one", async () => {
    const verifier = verifierFor();
    assert.equal((await verifier.authenticate(`Bearer ${tokens.access_token}`)).iss, server.issuer);
    assert.equal(await rejectionCode(verifier.authenticate(undefined)), "access_token_missing");
    assert.equal(await rejectionCode(verifier.authenticate("Basic dXNlcjpwYXNz")), "access_token_missing");
    assert.equal(await rejectionCode(verifier.authenticate("Bearer a b")), "access_token_malformed");
  });

  void it("refuses alg none", async () => {
    const [, payload] = tokens.access_token.split(".");
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString("base64url");
    assert.equal(await rejectionCode(verifierFor().verify(`${header}.${payload}.`)), "access_token_invalid");
  });

  void it("refuses HS256 signed with the issuer's public key PEM", async () => {
    const jwks = (await (await fetch(jwksUri)).json()) as { keys: { kid: string }[] };
    const jwk = jwks.keys[0]!;
    const [, payload] = tokens.access_token.split(".");
    const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "at+jwt", kid: jwk.kid })).toString("base64url");
    const signature = createHmac("sha256", pemOfJwk(jwk)).update(`${header}.${payload}`).digest("base64url");
    assert.equal(
      await rejectionCode(verifierFor().verify(`${header}.${payload}.${signature}`)),
      "access_token_invalid",
    );
  });

  void it("never fetches a key from jwk or jku headers", async () => {
    const { key, jwks } = es256Key();
    attacker.respond(200, jwks);
    const token = signJws(
      headerFor(key, { jku: `${attacker.url}/jwks.json`, x5u: `${attacker.url}/cert.pem`, jwk: key.publicJwk }),
      claimsFor(server.issuer),
      key,
    );
    assert.equal(await rejectionCode(verifierFor().verify(token)), "access_token_invalid");
    assert.equal(attacker.requests.length, 0);
  });

  void it("refuses a tampered payload", async () => {
    const [header, payload, signature] = tokens.access_token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, roles: ["admin"] })).toString("base64url");
    assert.equal(await rejectionCode(verifierFor().verify(`${header}.${forged}.${signature}`)), "access_token_invalid");
  });

  void it("refuses a token for another issuer or audience", async () => {
    assert.equal(
      await rejectionCode(verifierFor({ issuer: "https://other.test" }).verify(tokens.access_token)),
      "access_token_claim_invalid",
    );
    assert.equal(
      await rejectionCode(verifierFor({ audience: "billing" }).verify(tokens.access_token)),
      "access_token_claim_invalid",
    );
  });

  void it("refuses a token whose typ is not at+jwt", async () => {
    const { key, jwks } = es256Key();
    const verifier = verifierFor({ jwksUri: undefined, jwks });
    const token = signJws(headerFor(key, { typ: "JWT" }), claimsFor(server.issuer), key);
    assert.equal(await rejectionCode(verifier.verify(token)), "access_token_claim_invalid");
    assert.equal((await verifier.verify(signJws(headerFor(key), claimsFor(server.issuer), key))).iss, server.issuer);
  });

  void it("refuses a token with a crit header it does not understand", async () => {
    const { key, jwks } = es256Key();
    const token = signJws(headerFor(key, { crit: ["exp-policy"], "exp-policy": 1 }), claimsFor(server.issuer), key);
    assert.equal(await rejectionCode(verifierFor({ jwksUri: undefined, jwks }).verify(token)), "access_token_invalid");
  });

  void it("refuses an expired token, allowing only the configured clock skew", async () => {
    const skewed = FrozenClock.onSystemTime();
    skewed.advance(tokens.expires_in + 5);
    assert.equal(
      await rejectionCode(verifierFor({ clock: skewed }).verify(tokens.access_token)),
      "access_token_expired",
    );
    assert.equal(
      (await verifierFor({ clock: skewed, clockSkewSeconds: 30 }).verify(tokens.access_token)).iss,
      server.issuer,
    );
  });

  void it("refuses a token that is not valid yet", async () => {
    const { key, jwks } = es256Key();
    const claims = claimsFor(server.issuer);
    const token = signJws(headerFor(key), { ...claims, nbf: (claims.iat as number) + 60 }, key);
    assert.equal(
      await rejectionCode(verifierFor({ jwksUri: undefined, jwks }).verify(token)),
      "access_token_not_yet_valid",
    );
    const early = FrozenClock.onSystemTime();
    early.advance(-60);
    assert.equal(
      await rejectionCode(verifierFor({ clock: early }).verify(tokens.access_token)),
      "access_token_not_yet_valid",
    );
  });

  void it("uses only signing keys of allowed algorithms from a JWK Set", async () => {
    const { key, jwks } = es256Key();
    const encryption = { keys: [{ ...(jwks.keys[0] as object), use: "enc" }] };
    const otherAlg = { keys: [{ ...(jwks.keys[0] as object), alg: "RS256" }] };
    assert.throws(() => verifierFor({ jwksUri: undefined, jwks: encryption }), /jwks/);
    assert.throws(() => verifierFor({ jwksUri: undefined, jwks: otherAlg }), /jwks/);
    const mixed = { keys: [...encryption.keys, { ...(es256Key().jwks.keys[0] as object) }] };
    const token = signJws(headerFor(key), claimsFor(server.issuer), key);
    assert.equal(
      await rejectionCode(verifierFor({ jwksUri: undefined, jwks: mixed }).verify(token)),
      "access_token_invalid",
    );
  });

  void it("verifies HS256 tokens with a shared secret", async () => {
    const secret = "s".repeat(40);
    const hs = await startServer({ signingAlgorithm: "HS256", hs256Secret: secret });
    try {
      const issued = await registerAndLogin(hs.url, "hs-user");
      const verifier = verifierFor({ jwksUri: undefined, algorithms: ["HS256"], secret });
      assert.equal((await verifier.verify(issued.access_token)).iss, hs.issuer);
      const wrong = verifierFor({ jwksUri: undefined, algorithms: ["HS256"], secret: "t".repeat(40) });
      assert.equal(await rejectionCode(wrong.verify(issued.access_token)), "access_token_invalid");
    } finally {
      await hs.close();
    }
  });
});

void describe("verifier.authenticateNow()", () => {
  const issuer = "https://issuer.test";
  const signer = es256Key();
  const token = signJws(headerFor(signer.key), claimsFor(issuer, "tessera", 900), signer.key);

  void it("returns the claims without a promise when the keys are at hand", async () => {
    const verifier = createVerifier({ issuer, audience: "tessera", algorithms: ["ES256"], jwks: signer.jwks });
    const claims = verifier.authenticateNow(`Bearer ${token}`);
    assert.ok(!(claims instanceof Promise));
    assert.equal(claims.iss, issuer);
    assert.ok(Object.isFrozen(claims) && Object.isFrozen(claims.roles));
    await verifier.close();
  });

  void it("throws synchronously the codes authenticate() rejects with", async () => {
    const verifier = createVerifier({
      issuer,
      audience: "tessera",
      algorithms: ["ES256"],
      jwks: signer.jwks,
      cache: false,
    });
    const codeOf = (header: string | undefined) => {
      try {
        return verifier.authenticateNow(header) instanceof Promise ? "a promise" : "accepted";
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    assert.equal(codeOf(undefined), "access_token_missing");
    assert.equal(codeOf("Bearer a.b.c"), "access_token_malformed");
    const [header, payload, signature] = token.split(".");
    const altered = `${header}.${payload}.${signature!.slice(0, 10)}${signature![10] === "A" ? "B" : "A"}${signature!.slice(11)}`;
    assert.equal(codeOf(`Bearer ${altered}`), "access_token_invalid");
    assert.equal(await rejectionCode(verifier.authenticate(`Bearer ${altered}`)), "access_token_invalid");
    await verifier.close();
  });

  void it("answers with a promise while the JWK Set must be fetched, then without", async () => {
    const stub = await startStubServer();
    try {
      stub.respond(200, signer.jwks);
      const verifier = createVerifier({
        issuer,
        audience: "tessera",
        algorithms: ["ES256"],
        jwksUri: `${stub.url}/jwks`,
        logger: silent,
      });
      const first = verifier.authenticateNow(`Bearer ${token}`);
      assert.ok(first instanceof Promise);
      assert.equal((await first).iss, issuer);
      assert.ok(!(verifier.authenticateNow(`Bearer ${token}`) instanceof Promise));
      await verifier.close();
    } finally {
      await stub.close();
    }
  });
});
