import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, it } from "node:test";

const CLI = resolve("dist/cli/main.js");
const SECRET = "config-check-secret-0123456789-abcdefghij";

function check(env: Record<string, string> = {}, args: string[] = []) {
  const result = spawnSync(process.execPath, [CLI, "config", "check", ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, ...env },
    timeout: 30_000,
  });
  const report = JSON.parse(result.stdout) as {
    config: Record<string, unknown> | null;
    problems: Array<{ setting: string | null; variable: string | null; message: string }>;
  };
  return { status: result.status, report, stdout: result.stdout };
}

describe("tessera config check", () => {
  it("prints the effective configuration with every secret and URL password masked, and exits 0", () => {
    const { status, report, stdout } = check({
      TESSERA_SECRET: SECRET,
      TESSERA_SIGNING_ALG: "HS256",
      TESSERA_HS256_SECRET: "hs256-secret-0123456789-abcdefghijklmnop",
      TESSERA_INTROSPECTION_SECRET: "introspection-0123456789-abcdefghijklmn",
      TESSERA_DATABASE_URL: "postgres://tessera:db-pass-word@db.internal:5432/tessera",
      TESSERA_REDIS_URL: "redis://:redis-pass-word@cache.internal:6379",
      TESSERA_PORT: "8080",
    });
    assert.equal(status, 0, stdout);
    assert.deepEqual(report.problems, []);
    const config = report.config!;
    assert.equal(config.port, 8080);
    assert.equal(config.accessTokenTtlSeconds, 900);
    assert.equal(config.databaseUrl, "postgres://tessera:********@db.internal:5432/tessera");
    assert.equal(config.redisUrl, "redis://:********@cache.internal:6379");
    for (const field of ["secret", "hs256Secret", "introspectionSecret"]) assert.equal(config[field], "********");
    for (const secret of [SECRET, "hs256-secret", "introspection-0123", "db-pass-word", "redis-pass-word"]) {
      assert.ok(!stdout.includes(secret), `${secret} is masked`);
    }
  });

  it("shows an unset secret as null: development mode", () => {
    const { status, report } = check();
    assert.equal(status, 0);
    assert.equal(report.config!.secret, null);
    assert.equal(report.config!.developmentMode, true);
  });

  it("lists every problem, not just the first, and exits 1", () => {
    const { status, report } = check(
      {
        TESSERA_SECRET: "short",
        TESSERA_ACCESS_TOKEN_TTL: "15 minutes",
        TESSERA_RATE_LIMIT: "many",
        TESSERA_DATABASE_URL: "oracle://x",
        TESSERA_INTROSPECTION_SECRET: "too-short",
        TESSERA_LOG_LEVEL: "loud",
      },
      ["--port", "70000"],
    );
    assert.equal(status, 1);
    const blamed = report.problems.map((problem) => problem.setting).sort();
    assert.deepEqual(blamed, [
      "accessTokenTtl",
      "databaseUrl",
      "introspectionSecret",
      "logLevel",
      "port",
      "rateLimitPerMinute",
      "secret",
    ]);
    const secretProblem = report.problems.find((problem) => problem.setting === "secret");
    assert.equal(secretProblem?.variable, "TESSERA_SECRET");
    assert.ok(report.config !== null, "the rest still resolves");
  });

  it("blames the setting behind a requirement: production without a secret, HS256 without its key", () => {
    const { status, report } = check({ NODE_ENV: "production", TESSERA_SIGNING_ALG: "HS256" });
    assert.equal(status, 1);
    const messages = report.problems.map((problem) => problem.message).join("\n");
    assert.match(messages, /secret is required in production/);
    assert.match(messages, /hs256Secret is required/);
    assert.ok(report.problems.some((problem) => problem.setting === "signingAlgorithm"));
  });
});
