// Real access tokens for the verify and route groups: each is issued by a `tessera serve` of
// its algorithm (a login), and the public key comes from its /.well-known/jwks.json.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUDIENCE, HS256_SECRET, ISSUER, login, registerUser, startTessera } from "./tessera-process.js";

/** The algorithms benchmarked. */
export const BENCH_ALGORITHMS = ["HS256", "ES256", "EdDSA"] as const;
export type BenchAlgorithm = (typeof BENCH_ALGORITHMS)[number];

/** A token and what a verifier needs to check it. Serializable (passed to server processes). */
export interface TokenMaterial {
  readonly alg: BenchAlgorithm;
  readonly token: string;
  readonly issuer: string;
  readonly audience: string;
  /** HS256 only. */
  readonly secret?: string;
  /** ES256 / EdDSA only: the public JWK from the issuer's JWK Set. */
  readonly jwk?: JsonWebKey & { kid?: string; alg?: string };
}

/** Issues one access token per algorithm, valid for an hour. */
export async function issueAccessTokens(
  algorithms: readonly BenchAlgorithm[] = BENCH_ALGORITHMS,
): Promise<Map<BenchAlgorithm, TokenMaterial>> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-tokens-"));
  try {
    const entries = await Promise.all(
      algorithms.map(async (alg): Promise<[BenchAlgorithm, TokenMaterial]> => {
        const server = await startTessera({
          pinned: false,
          databaseUrl: `sqlite:${join(dir, `${alg}.db`)}`,
          env: {
            TESSERA_SIGNING_ALG: alg,
            TESSERA_ACCESS_TOKEN_TTL: "1h",
            ...(alg === "HS256" ? { TESSERA_HS256_SECRET: HS256_SECRET } : {}),
          },
        });
        try {
          await registerUser(server.url);
          const { access_token: token } = await login(server.url);
          if (alg === "HS256") return [alg, { alg, token, issuer: ISSUER, audience: AUDIENCE, secret: HS256_SECRET }];
          const jwks = (await (await fetch(`${server.url}/.well-known/jwks.json`)).json()) as {
            keys: TokenMaterial["jwk"][];
          };
          const jwk = jwks.keys.find((key) => key?.alg === alg);
          if (!jwk) throw new Error(`no ${alg} key in the JWK Set`);
          return [alg, { alg, token, issuer: ISSUER, audience: AUDIENCE, jwk }];
        } finally {
          await server.stop();
        }
      }),
    );
    return new Map(entries);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `token` with one character of its signature changed: every verifier must refuse it. */
export function tamperedSignature(token: string): string {
  const at = token.lastIndexOf(".") + 5;
  const replacement = token[at] === "A" ? "B" : "A";
  return token.slice(0, at) + replacement + token.slice(at + 1);
}
