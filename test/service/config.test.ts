import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resolveConfig } from "../../src/http/server-config.js";

describe("resolveConfig()", () => {
  it("applies the documented defaults and freezes the result", () => {
    const config = resolveConfig({});
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.port, 3000);
    assert.equal(config.databaseUrl, "sqlite:./data/tessera.db");
    assert.equal(config.issuer, "http://127.0.0.1:3000");
    assert.equal(config.audience, "tessera");
    assert.equal(config.signingAlgorithm, "ES256");
    assert.equal(config.accessTokenTtlSeconds, 900);
    assert.equal(config.refreshTokenTtlSeconds, 3 * 86400);
    assert.equal(config.sessionTtlSeconds, 30 * 86400);
    assert.equal(config.refreshGraceSeconds, 10);
    assert.equal(config.clockSkewSeconds, 0);
    assert.equal(config.developmentMode, true);
    assert.equal(config.registration, "open");
    assert.equal(config.metricsAddress, "api");
    assert.equal(config.docs, true);
    assert.deepEqual(
      [config.rateLimitPerMinute, config.ipLoginFailuresPerHour, config.accountFailuresBeforeDelay],
      [30, 30, 5],
    );
    assert.equal(config.accountMaxDelaySeconds, 900);
    assert.equal(config.shutdownTimeoutSeconds, 10);
    assert.deepEqual([config.passwordHashConcurrency, config.passwordHashQueue], [1, 16]);
    assert.equal(config.auditRetentionSeconds, 90 * 86400);
    assert.ok(Object.isFrozen(config));
  });

  it("turns email features on only with an SMTP URL and a sender", () => {
    assert.deepEqual([resolveConfig({}).smtpUrl, resolveConfig({}).mailFrom], [null, null]);
    const config = resolveConfig({ smtpUrl: "smtps://u:p@mail.example.test:465", mailFrom: "Ex <a@example.test>" });
    assert.deepEqual([config.smtpUrl, config.mailFrom], ["smtps://u:p@mail.example.test:465", "Ex <a@example.test>"]);
  });

  it("never mutates the caller's options", () => {
    const options = { port: 4000, defaultRoles: ["user"] };
    resolveConfig(options);
    assert.deepEqual(options, { port: 4000, defaultRoles: ["user"] });
  });

  it("throws a TypeError naming the option for every bad value", () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ port: 70000 }, /^port/],
      [{ databaseUrl: "redis://x" }, /database URL/],
      [{ secret: "short" }, /^secret/],
      [{ production: true }, /^secret is required/],
      [{ signingAlgorithm: "none" }, /^signingAlgorithm/],
      [{ signingAlgorithm: "HS256" }, /^hs256Secret is required/],
      [{ signingAlgorithm: "HS256", hs256Secret: "x".repeat(31) }, /^hs256Secret must be at least 32 bytes/],
      [{ signingAlgorithm: "HS256", secret: "s".repeat(40), hs256Secret: "s".repeat(40) }, /^hs256Secret must differ/],
      [{ accessTokenTtl: "15 minutes" }, /^accessTokenTtl/],
      [{ accessTokenTtl: "2d" }, /^accessTokenTtl/],
      [{ accessTokenTtl: 0 }, /^accessTokenTtl/],
      [{ sessionTtl: "999999999d" }, /^sessionTtl/],
      [{ refreshTokenTtl: "5m", accessTokenTtl: "15m" }, /^refreshTokenTtl must be at least accessTokenTtl/],
      [{ sessionTtl: "1d" }, /^sessionTtl must be at least refreshTokenTtl/],
      [{ refreshGrace: "10m" }, /^refreshGrace/],
      [{ clockSkew: "1h" }, /^clockSkew/],
      [{ issuer: "not a url" }, /^issuer/],
      [{ issuer: "ftp://issuer.test" }, /^issuer/],
      [{ audience: "" }, /^audience/],
      [{ logLevel: "loud" }, /^logLevel/],
      [{ rateLimitPerMinute: -1 }, /^rateLimitPerMinute/],
      [{ ipLoginFailuresPerHour: 1.5 }, /^ipLoginFailuresPerHour/],
      [{ accountFailuresBeforeDelay: -1 }, /^accountFailuresBeforeDelay/],
      [{ accountMaxDelay: "0" }, /^accountMaxDelay/],
      [{ accountMaxDelay: "2d" }, /^accountMaxDelay/],
      [{ shutdownTimeout: "soon" }, /^shutdownTimeout/],
      [{ shutdownTimeout: "11m" }, /^shutdownTimeout/],
      [{ registration: "invite-only" }, /^registration/],
      [{ passwordHashConcurrency: 0 }, /^passwordHashConcurrency/],
      [{ passwordHashQueue: -1 }, /^passwordHashQueue/],
      [{ auditRetention: "12h" }, /^auditRetention must be at least 1 d/],
      [{ auditRetention: "3651d" }, /^auditRetention/],
      [{ auditRetention: "forever" }, /^auditRetention/],
      [{ metricsAddress: "9464" }, /^metricsAddress/],
      [{ metricsAddress: "127.0.0.1:99999" }, /^metricsAddress/],
      [{ docs: "off" }, /^docs/],
      [{ defaultRoles: ["bad role"] }, /^defaultRoles/],
      [{ smtpUrl: "http://mail.example.test", mailFrom: "a@example.test" }, /^smtpUrl/],
      [{ smtpUrl: "not a url", mailFrom: "a@example.test" }, /^smtpUrl/],
      [{ smtpUrl: "smtp://mail.example.test" }, /^mailFrom/],
      [{ mailFrom: "a@example.test\r\nBcc: b@example.test" }, /^mailFrom/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => resolveConfig(options),
        (error: unknown) => error instanceof TypeError && message.test(error.message),
        JSON.stringify(options),
      );
    }
  });
});
