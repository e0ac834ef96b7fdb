import { constants, createPrivateKey, createPublicKey, type JsonWebKey, randomUUID, sign } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { generateSigningKey, type SigningKey } from "../../src/core/signing-key.js";

/** A node:http server answering every request with what the test sets, counting requests. */
export interface StubServer {
  readonly url: string;
  readonly requests: IncomingMessage[];
  respond(status: number, body: unknown, headers?: Record<string, string>): void;
  /** Delay each answer by `ms`. */
  delay(ms: number): void;
  close(): Promise<void>;
}

export async function startStubServer(): Promise<StubServer> {
  let answer = { status: 200, body: "{}", headers: {} as Record<string, string> };
  let delayMs = 0;
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(request);
    setTimeout(() => {
      response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end(answer.body);
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    respond: (status, body, headers = {}) => void (answer = { status, body: JSON.stringify(body), headers }),
    delay: (ms) => void (delayMs = ms),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A fresh ES256 key and its JWK Set. */
export function es256Key(): { key: SigningKey; jwks: { keys: unknown[] } } {
  const key = generateSigningKey("ES256");
  return { key, jwks: { keys: [key.publicJwk] } };
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** Signs any header and payload with `key` (ES256, RS256 or PS256 after `key.alg`), for crafting attacks. */
export function signJws(header: Record<string, unknown>, payload: Record<string, unknown>, key: SigningKey): string {
  const input = `${base64url(header)}.${base64url(payload)}`;
  const signature = sign("sha256", Buffer.from(input), {
    key: createPrivateKey(key.privateKey),
    dsaEncoding: "ieee-p1363",
    // RFC 7518 §3.5: PS256 is RSASSA-PSS with SHA-256 and a 32-byte salt.
    ...(key.alg === "PS256" ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : {}),
  });
  return `${input}.${signature.toString("base64url")}`;
}

/** Claims a Tessera server would issue now, for tokens signed in tests. */
export function claimsFor(issuer: string, audience = "tessera", ttlSeconds = 900): Record<string, unknown> {
  const iat = Math.floor(Date.now() / 1000);
  return {
    iss: issuer,
    aud: audience,
    sub: randomUUID(),
    client_id: "tessera",
    iat,
    exp: iat + ttlSeconds,
    jti: randomUUID(),
    sid: randomUUID(),
    roles: ["user"],
  };
}

/** The header of a Tessera access token signed with `key`. */
export function headerFor(key: SigningKey, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: key.alg, typ: "at+jwt", kid: key.kid, ...extra };
}

/** The SPKI PEM of an EC JWK, as an attacker would derive it from the JWKS. */
export function pemOfJwk(jwk: unknown): string {
  return createPublicKey({ key: jwk as JsonWebKey, format: "jwk" }).export({ type: "spki", format: "pem" }) as string;
}

/** Waits until `condition()` holds, polling every 10 ms; throws after `timeoutMs`. */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The code of the TesseraError `promise` rejects with. */
export async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code ?? `no code: ${String(error)}`;
  }
  return "resolved";
}
