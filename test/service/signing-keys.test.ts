import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { resolveConfig } from "../../src/http/server-config.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { createServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import { serviceFixture, silentLogger } from "../support/service.js";

const context: RequestContext = { ip: "203.0.113.7", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";
const kidOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;

describe("SigningKeys after a change of signing algorithm", () => {
  it("retires the old algorithm's key, published until the tokens it signed have expired", async () => {
    const fixture = await serviceFixture();
    try {
      await fixture.service.register("switcher", PASSWORD, context);
      const before = await fixture.service.login("switcher", PASSWORD, context);
      const oldKid = kidOf(before.accessToken);
      fixture.clock.advance(60);
      const switched = await fixture.another({ signingAlgorithm: "EdDSA" });
      const after = await switched.auth.login("switcher", PASSWORD, context);
      const newKid = kidOf(after.accessToken);
      assert.deepEqual(
        switched.jwks.keys.map(({ kid, alg }) => ({ kid, alg })),
        [
          { kid: oldKid, alg: "ES256" },
          { kid: newKid, alg: "EdDSA" },
        ],
      );
      const unretired = (await fixture.store.listSigningKeys()).filter((key) => key.retiredAt === null);
      assert.deepEqual(
        unretired.map((key) => key.kid),
        [newKid],
      );
      // An instance still on the old setting keeps its key until restarted; it makes no new one.
      await fixture.services.keys.reload();
      assert.equal((await fixture.store.listSigningKeys()).length, 2);
      assert.equal(kidOf((await fixture.service.login("switcher", PASSWORD, context)).accessToken), oldKid);
      // One access-token lifetime plus the reload interval later, only the new key is published.
      fixture.clock.advance(900 + 60 + 1);
      await switched.keys.reload();
      assert.deepEqual(
        switched.jwks.keys.map((key) => key.kid),
        [newKid],
      );
    } finally {
      await fixture.close();
    }
  });

  it("retires the stored key when the algorithm becomes HS256", async () => {
    const fixture = await serviceFixture();
    try {
      await fixture.another({ signingAlgorithm: "HS256", hs256Secret: "h".repeat(32) });
      const keys = await fixture.store.listSigningKeys();
      assert.deepEqual(
        keys.map((key) => [key.retiredAt !== null, key.current]),
        [[true, false]],
      );
    } finally {
      await fixture.close();
    }
  });

  it("leaves the servers' key alone for services loaded without electing, as the CLI loads them", async () => {
    const fixture = await serviceFixture();
    const store = openStore({ url: fixture.databaseUrl });
    try {
      const before = await fixture.store.listSigningKeys();
      const config = resolveConfig({
        databaseUrl: fixture.databaseUrl,
        secret: "service-test-secret-0123456789-abcdefgh",
        issuer: "https://issuer.test",
        signingAlgorithm: "EdDSA",
      });
      const cli = await createServices({ store, config, logger: silentLogger, electSigningKey: false });
      assert.deepEqual(await fixture.store.listSigningKeys(), before);
      assert.deepEqual(cli.jwks.keys, fixture.services.jwks.keys);
      await cli.auth.register("cli-user", PASSWORD, context);
      await assert.rejects(
        cli.auth.login("cli-user", PASSWORD, context),
        (error: unknown) => error instanceof TesseraError && error.code === "signing_key_unavailable",
      );
    } finally {
      await store.close();
      await fixture.close();
    }
  });
});
