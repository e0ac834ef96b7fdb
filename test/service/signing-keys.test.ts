import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { resolveConfig } from "../../src/http/server-config.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { RETIRED_KEY_KEEP_SECONDS } from "../../src/service/key-ring.js";
import { KEY_PUBLICATION_LEAD_SECONDS, KEY_RELOAD_INTERVAL } from "../../src/service/signing-keys.js";
import { createServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import { type ServiceFixture, serviceFixture, silentLogger } from "../support/service.js";

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
      fixture.clock.advance(900 + 75 + 1);
      await switched.keys.reload();
      assert.deepEqual(
        switched.jwks.keys.map((key) => key.kid),
        [newKid],
      );
      // The instance on the old setting stops signing then: nobody would accept its tokens.
      await fixture.services.keys.reload();
      await assert.rejects(fixture.service.login("switcher", PASSWORD, context), { code: "signing_key_unavailable" });
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

describe("the signing-key schedule", () => {
  const HOUR = 3600;
  const TTL = 900;
  const GRACE = TTL + KEY_RELOAD_INTERVAL.maxSeconds;
  const keyEvents = async (fixture: ServiceFixture, instances: readonly TesseraServices[] = [fixture.services]) => {
    for (const services of instances) await services.audit.flush();
    return (await fixture.store.listAuditEvents({}, null, 1000))
      .filter((event) => event.type.startsWith("key_"))
      .reverse()
      .map((event) => ({ type: event.type, kid: event.details?.kid }));
  };
  const kidsOf = (services: TesseraServices) => services.jwks.keys.map((key) => key.kid);

  it("publishes the next key a lead before it signs, promotes it once, and drops the old key after its tokens", async () => {
    const fixture = await serviceFixture({ keyRotation: "1h" });
    try {
      const instances = [fixture.services, await fixture.another(), await fixture.another()];
      const tickAll = () => Promise.all(instances.map((services) => services.keys.reload()));
      const signedKid = async (services: TesseraServices, name: string) => {
        await services.auth.register(name, PASSWORD, context);
        return (await services.auth.login(name, PASSWORD, context)).accessToken;
      };
      const first = kidsOf(fixture.services)[0] ?? assert.fail("one key at start");
      const start = fixture.clock.now().getTime();

      // Until one publication lead before the hour is up, nothing changes.
      fixture.clock.advance(HOUR - KEY_PUBLICATION_LEAD_SECONDS - 1);
      await tickAll();
      for (const services of instances) assert.deepEqual(kidsOf(services), [first]);

      // Then the three instances tick together: one next key, published by all, signing nothing yet.
      fixture.clock.advance(1);
      await tickAll();
      const stored = await fixture.store.listSigningKeys();
      assert.deepEqual(
        stored.map(({ state }) => state),
        ["current", "next"],
      );
      const next = stored[1]!;
      assert.equal(next.activatesAt.getTime(), start + HOUR * 1000);
      for (const services of instances) assert.deepEqual(kidsOf(services), [first, next.kid]);
      assert.equal(kidOf(await signedKid(instances[1]!, "before-1")), first);

      // One second before its time, the old key still signs; the token it signs must outlive the switch.
      fixture.clock.advance(KEY_PUBLICATION_LEAD_SECONDS - 1);
      await tickAll();
      const lastOfFirst = await signedKid(instances[2]!, "before-2");
      assert.equal(kidOf(lastOfFirst), first);

      fixture.clock.advance(1);
      await tickAll();
      const after = await fixture.store.listSigningKeys();
      assert.deepEqual(
        after.map(({ kid, state }) => [kid, state]),
        [
          [first, "retired"],
          [next.kid, "current"],
        ],
      );
      assert.equal(after[0]!.retiredAt?.getTime(), start + HOUR * 1000);
      for (const [i, services] of instances.entries()) {
        assert.equal(kidOf(await signedKid(services, `after-${i}`)), next.kid);
        assert.deepEqual(kidsOf(services), [first, next.kid]);
      }

      // The old key's last token verifies everywhere until it expires; the key is published past that.
      // (It was signed one second before the switch, so it expires TTL - 1 s after it.)
      fixture.clock.advance(TTL - 2);
      for (const services of instances) await services.auth.authenticate(lastOfFirst);
      fixture.clock.advance(GRACE - TTL + 1);
      await tickAll();
      for (const services of instances) assert.deepEqual(kidsOf(services), [first, next.kid]);
      fixture.clock.advance(1);
      await tickAll();
      for (const services of instances) assert.deepEqual(kidsOf(services), [next.kid]);

      const events = (await keyEvents(fixture, instances)).map(({ type, kid }) => `${type} ${String(kid)}`);
      assert.deepEqual(
        events.sort(),
        [`key_created ${first}`, `key_created ${next.kid}`, `key_retired ${first}`, `key_rotated ${next.kid}`].sort(),
        "the first key's election at start, then the schedule's changes",
      );

      // A day after it left the JWK Set, the retired key is deleted, private part and all.
      const storedKids = async () => (await fixture.store.listSigningKeys()).map((key) => key.kid);
      fixture.clock.advance(RETIRED_KEY_KEEP_SECONDS);
      await tickAll();
      assert.equal((await storedKids()).includes(first), true, "kept for a day");
      fixture.clock.advance(1);
      await fixture.services.keys.reload();
      assert.equal((await storedKids()).includes(first), false, "deleted after a day");
    } finally {
      await fixture.close();
    }
  });

  it("keeps one key in development mode, and still carries out a `keys rotate`", async () => {
    const fixture = await serviceFixture({ secret: "" });
    try {
      assert.equal(fixture.services.config.keyRotationSeconds, null);
      const [first] = kidsOf(fixture.services);
      fixture.clock.advance(400 * 86400);
      await fixture.services.keys.reload();
      assert.deepEqual(kidsOf(fixture.services), [first]);

      const started = await fixture.services.admin.rotateSigningKey();
      assert.equal(started.activatesAt.getTime(), fixture.clock.now().getTime() + KEY_PUBLICATION_LEAD_SECONDS * 1000);
      assert.deepEqual(kidsOf(fixture.services), [first, started.kid]);
      await fixture.service.register("dev", PASSWORD, context);
      assert.equal(kidOf((await fixture.service.login("dev", PASSWORD, context)).accessToken), first);
      fixture.clock.advance(KEY_PUBLICATION_LEAD_SECONDS);
      await fixture.services.keys.reload();
      assert.equal(kidOf((await fixture.service.login("dev", PASSWORD, context)).accessToken), started.kid);
    } finally {
      await fixture.close();
    }
  });

  it("rotates at once with `immediately`, retiring the current and the pending next key", async () => {
    const fixture = await serviceFixture();
    try {
      const other = await fixture.another();
      const [first] = kidsOf(fixture.services);
      const pending = await fixture.services.admin.rotateSigningKey();
      const urgent = await other.admin.rotateSigningKey({ immediately: true });
      assert.equal(urgent.activatesAt.getTime(), fixture.clock.now().getTime());
      await fixture.service.register("urgent", PASSWORD, context);
      // The other instance reloaded when it rotated; this one picks the key up at its next tick.
      await fixture.services.keys.reload();
      const token = (await fixture.service.login("urgent", PASSWORD, context)).accessToken;
      assert.equal(kidOf(token), urgent.kid);
      const states = new Map((await fixture.store.listSigningKeys()).map(({ kid, state }) => [kid, state]));
      assert.deepEqual(
        [states.get(first!), states.get(pending.kid), states.get(urgent.kid), states.size],
        ["retired", "retired", "current", 3],
      );
      const events = (await keyEvents(fixture, [fixture.services, other])).map(
        ({ type, kid }) => `${type} ${String(kid)}`,
      );
      assert.deepEqual(
        events.sort(),
        [
          `key_created ${first}`,
          `key_created ${pending.kid}`,
          `key_created ${urgent.kid}`,
          `key_retired ${first}`,
          `key_retired ${pending.kid}`,
          `key_rotated ${urgent.kid}`,
        ].sort(),
      );
      // The pending key never signed, but stays published like any retired key: it was announced.
      assert.deepEqual(kidsOf(fixture.services).sort(), [first, pending.kid, urgent.kid].sort());
    } finally {
      await fixture.close();
    }
  });

  it("refuses a rotation period outside 1h to 365d, and any with HS256", () => {
    const base = { secret: "service-test-secret-0123456789-abcdefgh", issuer: "https://issuer.test" };
    assert.equal(resolveConfig(base).keyRotationSeconds, 30 * 86400);
    assert.equal(resolveConfig({ ...base, keyRotation: "off" }).keyRotationSeconds, null);
    assert.equal(resolveConfig({ ...base, keyRotation: "12h" }).keyRotationSeconds, 12 * 3600);
    assert.throws(() => resolveConfig({ ...base, keyRotation: "59m" }), /keyRotation/);
    assert.throws(() => resolveConfig({ ...base, keyRotation: "366d" }), /keyRotation/);
    assert.throws(() => resolveConfig({ ...base, keyRotation: "monthly" }), /keyRotation/);
    const hs = { ...base, signingAlgorithm: "HS256" as const, hs256Secret: "h".repeat(32) };
    assert.equal(resolveConfig(hs).keyRotationSeconds, null);
    assert.throws(() => resolveConfig({ ...hs, keyRotation: "30d" }), /keyRotation/);
  });
});
