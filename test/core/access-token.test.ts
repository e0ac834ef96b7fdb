import assert from "node:assert/strict";
import { createHmac, createSign, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { describe, it } from "node:test";
import {
  createAccessTokenSigner,
  createAccessTokenVerifier,
  createProtectedHeaderDecoder,
} from "../../src/core/access-token.js";
import { epochSeconds } from "../../src/core/clock.js";
import { TesseraError } from "../../src/core/errors.js";
import {
  generateSigningKey,
  hmacSigningKey,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
} from "../../src/core/signing-key.js";
import { FrozenClock } from "../support/clock.js";

const ISSUER = "https://issuer.test";
const AUDIENCE = "tessera";
const subject = { userId: "user-1", sessionId: "session-1", roles: ["user"] };

function b64(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

function setup(alg: Exclude<SigningAlgorithm, "HS256"> = "ES256", clockSkewSeconds = 0) {
  const clock = new FrozenClock();
  const key = generateSigningKey(alg);
  const sign = createAccessTokenSigner({ key, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900, clock });
  const verify = createAccessTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: [alg],
    findKey: (kid) => (kid === key.kid ? { kid: key.kid, alg: key.alg, key: key.publicKey } : undefined),
    clockSkewSeconds,
    clock,
  });
  return { clock, key, sign, verify };
}

function expectCode(fn: () => unknown, code: string) {
  assert.throws(fn, (error: unknown) => error instanceof TesseraError && error.code === code);
}

/** Signs header.payload with the ES256 key, producing a JOSE (r||s) signature. */
function signEs256(key: SigningKey, header: object, payload: object): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = cryptoSign("sha256", Buffer.from(input), {
    key: key.privateKey as string,
    dsaEncoding: "ieee-p1363",
  });
  return `${input}.${signature.toString("base64url")}`;
}

function claimsAt(clock: FrozenClock, overrides: Record<string, unknown> = {}) {
  const iat = epochSeconds(clock.now());
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "user-1",
    client_id: "tessera",
    iat,
    exp: iat + 900,
    jti: "j",
    sid: "session-1",
    roles: ["user"],
    ...overrides,
  };
}

describe("createAccessTokenSigner()", () => {
  it("issues an RFC 9068 token: typ at+jwt, kid, and the required claims", () => {
    const { sign, key, clock } = setup();
    const { token, claims } = sign(subject);
    const header = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString());
    assert.deepEqual(header, { alg: "ES256", typ: "at+jwt", kid: key.kid });
    assert.equal(claims.iat, epochSeconds(clock.now()));
    assert.equal(claims.exp - claims.iat, 900);
    assert.equal(claims.sid, "session-1");
    assert.deepEqual(claims.roles, ["user"]);
    assert.equal(typeof claims.jti, "string");
    assert.notEqual(sign(subject).claims.jti, claims.jti);
  });

  it("gives every token an amr claim: the subject's methods, a password login's by default", () => {
    const { sign, verify } = setup();
    assert.deepEqual(verify(sign(subject).token).amr, ["pwd"]);
    assert.deepEqual(verify(sign({ ...subject, amr: ["pwd", "otp"] }).token).amr, ["pwd", "otp"]);
  });

  for (const alg of ["ES256", "EdDSA", "PS256", "RS256"] as const) {
    it(`signs and verifies with ${alg}`, () => {
      const { sign, verify } = setup(alg);
      assert.equal(verify(sign(subject).token).sub, "user-1");
    });
  }

  it("signs and verifies with HS256 and refuses secrets shorter than 32 bytes", () => {
    assert.throws(() => hmacSigningKey(Buffer.alloc(31, 1)), TypeError);
    const key = hmacSigningKey(Buffer.alloc(32, 7));
    assert.equal(key.publicJwk, null);
    const clock = new FrozenClock();
    const token = createAccessTokenSigner({ key, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60, clock })(
      subject,
    ).token;
    const verify = createAccessTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ["HS256"],
      findKey: () => ({ kid: key.kid, alg: "HS256", key: key.publicKey }),
      clock,
    });
    assert.equal(verify(token).sid, "session-1");
  });
});

describe("createAccessTokenVerifier()", () => {
  it("accepts a valid token until exp and rejects it from exp on", () => {
    const { sign, verify, clock } = setup();
    const { token } = sign(subject);
    clock.advance(899);
    assert.equal(verify(token).sub, "user-1");
    clock.advance(1);
    expectCode(() => verify(token), "access_token_expired");
  });

  it("applies the configured clock skew to exp", () => {
    const { sign, verify, clock } = setup("ES256", 30);
    const { token } = sign(subject);
    clock.advance(920);
    assert.equal(verify(token).sub, "user-1");
    clock.advance(10);
    expectCode(() => verify(token), "access_token_expired");
  });

  it("rejects alg none", () => {
    const { verify, clock } = setup();
    const token = `${b64({ alg: "none", typ: "at+jwt" })}.${b64(claimsAt(clock))}.`;
    expectCode(() => verify(token), "access_token_invalid");
  });

  it("rejects an HS256 token signed with the public key", () => {
    const { verify, key, clock } = setup();
    const input = `${b64({ alg: "HS256", typ: "at+jwt", kid: key.kid })}.${b64(claimsAt(clock))}`;
    const mac = createHmac("sha256", key.publicKey).update(input).digest("base64url");
    expectCode(() => verify(`${input}.${mac}`), "access_token_invalid");
  });

  it("rejects an HS256 token with a valid public-key MAC even when HS256 is among the algorithms", () => {
    const { key, clock } = setup();
    const verify = createAccessTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ["ES256", "HS256"],
      findKey: (kid) => (kid === key.kid ? { kid: key.kid, alg: key.alg, key: key.publicKey } : undefined),
      clock,
    });
    const input = `${b64({ alg: "HS256", typ: "at+jwt", kid: key.kid })}.${b64(claimsAt(clock))}`;
    const mac = createHmac("sha256", key.publicKey).update(input).digest("base64url");
    expectCode(() => verify(`${input}.${mac}`), "access_token_invalid");
  });

  it("ignores an embedded jwk header and trusts only its own keys", () => {
    const { verify, clock } = setup();
    const attacker = generateSigningKey("ES256");
    const token = signEs256(attacker, { alg: "ES256", typ: "at+jwt", jwk: attacker.publicJwk }, claimsAt(clock));
    expectCode(() => verify(token), "access_token_invalid");
    const withKid = signEs256(
      attacker,
      { alg: "ES256", typ: "at+jwt", kid: attacker.kid, jku: "https://evil.test/jwks" },
      claimsAt(clock),
    );
    expectCode(() => verify(withKid), "access_token_invalid");
  });

  it("rejects a token whose kid names a real key but whose signature is the attacker's", () => {
    const { verify, key, clock } = setup();
    const attacker = generateSigningKey("ES256");
    const token = signEs256(attacker, { alg: "ES256", typ: "at+jwt", kid: key.kid }, claimsAt(clock));
    expectCode(() => verify(token), "access_token_invalid");
  });

  it("rejects a tampered payload", () => {
    const { sign, verify } = setup();
    const [header, payload, signature] = sign(subject).token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    const tampered = `${header}.${b64({ ...claims, roles: ["admin"] })}.${signature}`;
    expectCode(() => verify(tampered), "access_token_invalid");
  });

  it("rejects a wrong issuer, audience or typ", () => {
    const { verify, key, clock } = setup();
    const header = { alg: "ES256", typ: "at+jwt", kid: key.kid };
    expectCode(
      () => verify(signEs256(key, header, claimsAt(clock, { iss: "https://other.test" }))),
      "access_token_claim_invalid",
    );
    expectCode(
      () => verify(signEs256(key, header, claimsAt(clock, { aud: "other-api" }))),
      "access_token_claim_invalid",
    );
    expectCode(() => verify(signEs256(key, { ...header, typ: "JWT" }, claimsAt(clock))), "access_token_claim_invalid");
    expectCode(
      () => verify(signEs256(key, { alg: "ES256", kid: key.kid }, claimsAt(clock))),
      "access_token_claim_invalid",
    );
    assert.equal(verify(signEs256(key, { ...header, typ: "application/at+jwt" }, claimsAt(clock))).sub, "user-1");
  });

  it("rejects tokens not valid yet: nbf or iat in the future", () => {
    const { verify, key, clock } = setup();
    const header = { alg: "ES256", typ: "at+jwt", kid: key.kid };
    const now = epochSeconds(clock.now());
    expectCode(() => verify(signEs256(key, header, claimsAt(clock, { nbf: now + 60 }))), "access_token_not_yet_valid");
    expectCode(
      () => verify(signEs256(key, header, claimsAt(clock, { iat: now + 60, exp: now + 960 }))),
      "access_token_not_yet_valid",
    );
  });

  it("rejects tokens without exp, sid, sub, iss, aud or client_id, or with empty sub, jti, sid or client_id", () => {
    const { verify, key, clock } = setup();
    const header = { alg: "ES256", typ: "at+jwt", kid: key.kid };
    for (const missing of ["iss", "aud", "sub", "exp", "sid", "client_id"]) {
      const claims: Record<string, unknown> = claimsAt(clock);
      delete claims[missing];
      expectCode(() => verify(signEs256(key, header, claims)), "access_token_claim_invalid");
    }
    for (const empty of ["sub", "jti", "sid", "client_id"]) {
      expectCode(
        () => verify(signEs256(key, header, { ...claimsAt(clock), [empty]: "" })),
        "access_token_claim_invalid",
      );
    }
    assert.equal(verify(signEs256(key, header, claimsAt(clock))).client_id, "tessera");
  });

  it("reads a token without amr as no methods, and refuses an amr that is not a list of strings", () => {
    const { verify, key, clock } = setup();
    const header = { alg: "ES256", typ: "at+jwt", kid: key.kid };
    const claims = verify(signEs256(key, header, claimsAt(clock)));
    assert.deepEqual(claims.amr, []);
    assert.ok(Object.isFrozen(claims.amr));
    for (const amr of ["pwd otp", [1], { pwd: true }]) {
      expectCode(() => verify(signEs256(key, header, claimsAt(clock, { amr }))), "access_token_claim_invalid");
    }
  });

  it("rejects unknown critical header parameters", () => {
    const { verify, key, clock } = setup();
    const token = signEs256(key, { alg: "ES256", typ: "at+jwt", kid: key.kid, crit: ["exp"], exp: 1 }, claimsAt(clock));
    expectCode(() => verify(token), "access_token_invalid");
  });

  it("accepts one spelling per token: stray low bits in a segment's last character are refused", () => {
    const { sign, verify } = setup();
    const token = sign(subject).token;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const segments = token.split(".");
    assert.equal(segments[2]!.length % 4, 2, "an ES256 signature ends in a character with 4 unused bits");
    let respelled = 0;
    segments.forEach((segment, index) => {
      if (segment.length % 4 === 0) return;
      const last = alphabet.indexOf(segment.at(-1)!);
      const other = `${segment.slice(0, -1)}${alphabet[last ^ 1]}`;
      assert.deepEqual(Buffer.from(other, "base64url"), Buffer.from(segment, "base64url"), "the same bytes");
      const variant = segments.map((part, i) => (i === index ? other : part)).join(".");
      expectCode(() => verify(variant), "access_token_malformed");
      respelled += 1;
    });
    assert.ok(respelled >= 1);
    assert.equal(verify(token).sub, subject.userId);
  });

  it("rejects garbage and oversized input as malformed", () => {
    const { verify } = setup();
    for (const junk of ["", "abc", "a.b", "a.b.c.d", "!!.??.**", `${"a".repeat(9000)}.b.c`]) {
      expectCode(() => verify(junk), "access_token_malformed");
    }
  });

  it("rejects an RS256 token when only PS256 is allowed", () => {
    const { key, clock } = setup("PS256");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const input = `${b64({ alg: "RS256", typ: "at+jwt", kid: key.kid })}.${b64(claimsAt(clock))}`;
    const signature = createSign("RSA-SHA256").update(input).sign(privateKey).toString("base64url");
    const verify = createAccessTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ["PS256"],
      findKey: (): VerificationKey => ({ kid: key.kid, alg: "PS256", key: key.publicKey }),
      clock,
    });
    expectCode(() => verify(`${input}.${signature}`), "access_token_invalid");
  });

  it("refuses keys that do not fit their algorithm: wrong curve or type, short RSA, a public key as HS256 secret", () => {
    const clock = new FrozenClock();
    const { sign } = setup("ES256");
    const token = sign(subject).token;
    const verifierWith = (key: VerificationKey, alg: SigningAlgorithm) =>
      createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, algorithms: [alg], findKey: () => key, clock });
    const pem = (type: "ec" | "rsa" | "ed25519", options: object) =>
      generateKeyPairSync(type as "ec", options as { namedCurve: string }).publicKey.export({
        type: "spki",
        format: "pem",
      }) as string;
    for (const key of [pem("ec", { namedCurve: "P-384" }), pem("ed25519", {}), pem("rsa", { modulusLength: 1024 })]) {
      expectCode(() => verifierWith({ kid: "k", alg: "ES256", key }, "ES256")(token), "access_token_invalid");
    }
    const weakRsa = pem("rsa", { modulusLength: 1024 });
    expectCode(() => verifierWith({ kid: "k", alg: "RS256", key: weakRsa }, "RS256")(token), "access_token_invalid");
    // A public key's PEM is public: as an HMAC secret it would let anyone sign.
    const publicPem = pem("ec", { namedCurve: "P-256" });
    const input = `${b64({ alg: "HS256", typ: "at+jwt", kid: "k" })}.${b64(claimsAt(clock))}`;
    const forged = `${input}.${createHmac("sha256", publicPem).update(input).digest("base64url")}`;
    expectCode(() => verifierWith({ kid: "k", alg: "HS256", key: publicPem }, "HS256")(forged), "access_token_invalid");
  });
});

describe("createProtectedHeaderDecoder()", () => {
  it("checks the whole token every time, also when its header was seen before", () => {
    const { sign } = setup();
    const decode = createProtectedHeaderDecoder(["ES256"]);
    const token = sign(subject).token;
    assert.equal(decode(token).alg, "ES256");
    const [header, payload, signature] = token.split(".");
    for (const bad of [
      `${header}.${payload}`,
      `${header}.${payload}.${signature}.x`,
      `${header}.${payload}!.${signature}`,
    ]) {
      expectCode(() => decode(bad), "access_token_malformed");
    }
    assert.equal(decode(token), decode(token), "the same frozen header");
  });

  it("remembers only accepted headers, a bounded number of them", () => {
    const decode = createProtectedHeaderDecoder(["ES256"]);
    const refused = `${b64({ alg: "HS256", typ: "at+jwt" })}.${b64({})}.`;
    expectCode(() => decode(refused), "access_token_invalid");
    expectCode(() => decode(refused), "access_token_invalid");
    for (let i = 0; i < 100; i += 1) {
      const header = decode(`${b64({ alg: "ES256", typ: "at+jwt", kid: `k${i}` })}.${b64({})}.AAAA`);
      assert.equal(header.kid, `k${i}`);
    }
  });
});
