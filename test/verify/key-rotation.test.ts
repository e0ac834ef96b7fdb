import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createServer } from "../../src/http/server.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { KEY_PUBLICATION_LEAD_SECONDS } from "../../src/service/signing-keys.js";
import { createServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import { createVerifier, type Verifier } from "../../src/verify/index.js";
import { FrozenClock } from "../support/clock.js";
import { temporaryDirectory } from "../support/server.js";
import { silentLogger } from "../support/service.js";

const HOUR = 3600;
const STEP_SECONDS = 30;
const kidOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;

describe("a tessera/verify verifier holding a cached JWK Set across two scheduled rotations", () => {
  const clock = new FrozenClock();
  const dir = temporaryDirectory();
  let services: TesseraServices;
  let close: () => Promise<void>;
  let jwksUri: string;

  before(async () => {
    const store = openStore({ url: `sqlite:${join(dir.path, "tessera.db")}` });
    await store.migrate();
    const config = resolveConfig({
      databaseUrl: `sqlite:${join(dir.path, "tessera.db")}`,
      secret: "rotation-test-secret-0123456789-abcdefghij",
      issuer: "https://issuer.test",
      keyRotation: "1h",
    });
    services = await createServices({ store, config, clock, logger: silentLogger });
    const app = await createServer({ services, logger: false, rateLimitPerMinute: 0 });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    jwksUri = `http://127.0.0.1:${address.port}/.well-known/jwks.json`;
    close = async () => {
      await app.close();
      await services.close();
    };
  });

  after(async () => {
    await close?.();
    dir.remove();
  });

  it("never refuses a valid token: each key is fetched before it signs and kept until its tokens expire", async () => {
    // Unknown kids never cause a fetch here (the longest cooldown): only the JWKS max-age does.
    const verifiers: { verifier: Verifier; from: number }[] = [0, 100, 200].map((offset) => ({
      verifier: createVerifier({
        issuer: "https://issuer.test",
        audience: "tessera",
        algorithms: ["ES256"],
        jwksUri,
        jwksCooldownSeconds: 3600,
        clock,
        logger: { warn: () => undefined },
      }),
      from: offset,
    }));
    const ttl = services.config.accessTokenTtlSeconds;
    const live: { token: string; exp: number; signedAt: number }[] = [];
    const kids: string[] = [];
    const sign = (elapsed: number) => {
      const { token, claims } = services.keys.signAccessToken({ userId: "u1", sessionId: "s1", roles: [] });
      live.push({ token, exp: claims.exp, signedAt: elapsed });
      if (kids.at(-1) !== kidOf(token)) kids.push(kidOf(token));
    };
    const end = 2 * HOUR + KEY_PUBLICATION_LEAD_SECONDS + 2 * ttl;
    for (let elapsed = 0; elapsed <= end; elapsed += STEP_SECONDS) {
      // Signed just before and just after the instance's reload: at a transition, by both keys.
      sign(elapsed);
      await services.keys.reload();
      sign(elapsed);
      const now = Math.floor(clock.now().getTime() / 1000);
      for (const { verifier, from } of verifiers) {
        if (elapsed < from) continue;
        for (const entry of live) {
          if (entry.exp <= now) continue;
          await verifier.verify(entry.token).catch((error: unknown) => {
            assert.fail(
              `at +${elapsed}s a verifier started at +${from}s refused a token of ${kidOf(entry.token)} ` +
                `signed at +${entry.signedAt}s: ${error instanceof Error ? error.message : String(error)}`,
            );
          });
        }
      }
      // Let background JWKS refreshes finish before time moves on, as they would in real time.
      await new Promise((resolve) => setTimeout(resolve, 5));
      clock.advance(STEP_SECONDS);
    }
    console.error(
      "FETCHES",
      verifiers.map(({ verifier }) => verifier.stats().jwksFetches),
      (await fetch(jwksUri)).headers.get("cache-control"),
    );
    assert.equal(kids.length, 3, `two rotations: ${kids.join(" → ")}`);
    for (const { verifier } of verifiers) {
      // About one fetch per max-age, never one per token.
      const { jwksFetches } = verifier.stats();
      assert.ok(jwksFetches >= end / 330 && jwksFetches <= end / 300 + 2, `${jwksFetches} JWKS fetches`);
      await verifier.close();
    }
    // The first key has left the JWK Set: its last tokens expired long ago.
    assert.ok(!services.jwks.keys.some((key) => key.kid === kids[0]), "the first key is no longer published");
  });
});
