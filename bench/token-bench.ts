import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from "node:crypto";
import { createAccessTokenSigner, createAccessTokenVerifier } from "../src/core/access-token.js";
import { generateSigningKey } from "../src/core/signing-key.js";

/** Operations per second of `work`, measured over about `milliseconds` after a warm-up. */
export function measure(work: () => unknown, milliseconds = 1500): number {
  for (let i = 0; i < 2000; i += 1) work();
  let operations = 0;
  const started = process.hrtime.bigint();
  const budget = BigInt(milliseconds) * 1_000_000n;
  while (process.hrtime.bigint() - started < budget) {
    for (let i = 0; i < 200; i += 1) work();
    operations += 200;
  }
  return operations / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** Tessera's access-token signing and verification against raw node:crypto ES256 on the same input. */
export function runTokenBench(): Array<{ name: string; opsPerSecond: number; baseline: number; ratio: number }> {
  const key = generateSigningKey("ES256");
  const sign = createAccessTokenSigner({ key, issuer: "https://issuer.test", audience: "tessera", ttlSeconds: 900 });
  const verify = createAccessTokenVerifier({
    issuer: "https://issuer.test",
    audience: "tessera",
    algorithms: ["ES256"],
    findKey: () => ({ kid: key.kid, alg: "ES256", key: key.publicKey }),
  });
  const subject = {
    userId: "0b6f6f4e-3c1e-4a6e-9a7e-2f1d5c9e8b7a",
    sessionId: "5d0b8a7e-8f7e-4b1e-9c3d-1a2b3c4d5e6f",
    roles: ["user"],
  };
  const token = sign(subject).token;
  const signingInput = Buffer.from(token.slice(0, token.lastIndexOf(".")));
  const signature = Buffer.from(token.slice(token.lastIndexOf(".") + 1), "base64url");
  const publicKey = createPublicKey(key.publicKey);
  const privateKey = createPrivateKey(key.privateKey);

  // Baselines: the bare ECDSA P-256 operation a JWS library cannot avoid.
  const rawSign = measure(() => cryptoSign("sha256", signingInput, { key: privateKey, dsaEncoding: "ieee-p1363" }));
  const rawVerify = measure(() =>
    cryptoVerify("sha256", signingInput, { key: publicKey, dsaEncoding: "ieee-p1363" }, signature),
  );
  const tesseraSign = measure(() => sign(subject));
  const tesseraVerify = measure(() => verify(token));
  return [
    { name: "sign access token (ES256)", opsPerSecond: tesseraSign, baseline: rawSign, ratio: tesseraSign / rawSign },
    {
      name: "verify access token (ES256)",
      opsPerSecond: tesseraVerify,
      baseline: rawVerify,
      ratio: tesseraVerify / rawVerify,
    },
  ];
}
