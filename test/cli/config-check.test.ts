import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { SETTINGS } from "../../src/http/server-config.js";
import { temporaryDirectory } from "../support/server.js";

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
    sources: Record<string, { source: string; value: string }>;
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
      TESSERA_SMTP_URL: "smtp://mailer:smtp-pass-word@mail.internal:587",
      TESSERA_MAIL_FROM: "Tessera <no-reply@example.test>",
      TESSERA_PORT: "8080",
    });
    assert.equal(status, 0, stdout);
    assert.deepEqual(report.problems, []);
    const config = report.config!;
    assert.equal(config.port, 8080);
    assert.equal(config.accessTokenTtlSeconds, 900);
    assert.equal(config.databaseUrl, "postgres://tessera:********@db.internal:5432/tessera");
    assert.equal(config.redisUrl, "redis://:********@cache.internal:6379");
    assert.equal(config.smtpUrl, "smtp://mailer:********@mail.internal:587");
    for (const field of ["secret", "hs256Secret", "introspectionSecret"]) assert.equal(config[field], "********");
    for (const secret of [
      SECRET,
      "hs256-secret",
      "introspection-0123",
      "db-pass-word",
      "redis-pass-word",
      "smtp-pass-word",
    ]) {
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

describe("tessera --config FILE", () => {
  const dir = temporaryDirectory();
  after(() => dir.remove());
  const file = (name: string, content: unknown) => {
    const path = join(dir.path, name);
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content), { mode: 0o600 });
    return path;
  };

  it("reads settings by variable name; env overrides the file; config check says where each came from", () => {
    const path = file("tessera.json", {
      TESSERA_SECRET: SECRET,
      TESSERA_PORT: 8080,
      TESSERA_ACCESS_TOKEN_TTL: "10m",
      TESSERA_KEY_ROTATION: "7d",
      TESSERA_DATABASE_URL: "postgres://tessera:db-pass-word@db.internal:5432/tessera",
      TESSERA_DOCS: false,
    });
    const { status, report, stdout } = check({ TESSERA_PORT: "9090" }, ["--config", path, "--audience", "api"]);
    assert.equal(status, 0, stdout);
    assert.deepEqual(report.problems, []);
    const config = report.config!;
    assert.deepEqual(
      [config.port, config.accessTokenTtlSeconds, config.keyRotationSeconds, config.docs, config.audience],
      [9090, 600, 7 * 86400, false, "api"],
    );
    assert.deepEqual(report.sources, {
      ...report.sources,
      TESSERA_SECRET: { source: "file", value: "********" },
      TESSERA_PORT: { source: "env", value: "9090" },
      TESSERA_ACCESS_TOKEN_TTL: { source: "file", value: "10m" },
      TESSERA_DATABASE_URL: { source: "file", value: "postgres://tessera:********@db.internal:5432/tessera" },
      TESSERA_AUDIENCE: { source: "flag", value: "api" },
      TESSERA_HOST: { source: "default", value: "127.0.0.1" },
    });
    assert.equal(Object.keys(report.sources).length, Object.keys(SETTINGS).length);
    for (const secret of [SECRET, "db-pass-word"]) assert.equal(stdout.includes(secret), false, `${secret} is masked`);
  });

  it("lists unknown keys and values of the wrong type as problems, and exits 1", () => {
    const path = file("wrong.json", {
      TESSERA_PORT: "eighty",
      TESSERA_DOCS: "yes",
      TESSERA_PROT: 3000,
      TESSERA_ACCESS_TOKEN_TTL: "forever",
    });
    const { status, report } = check({}, ["--config", path]);
    assert.equal(status, 1);
    assert.deepEqual(report.problems.map((problem) => problem.variable).sort(), [
      "TESSERA_ACCESS_TOKEN_TTL",
      "TESSERA_DOCS",
      "TESSERA_PORT",
      "TESSERA_PROT",
    ]);
    assert.equal(check({}, ["--config", file("broken.json", "{ not json")]).status, 1);
    assert.equal(check({}, ["--config", file("array.json", [])]).status, 1);
  });

  it("configures the other commands too, and stops them on a bad file", () => {
    const database = join(dir.path, "from-file.db");
    const path = file("migrate.json", { TESSERA_DATABASE_URL: `sqlite:${database}` });
    const migrated = spawnSync(process.execPath, [CLI, "migrate", "--config", path], {
      encoding: "utf8",
      env: { PATH: process.env.PATH },
      timeout: 30_000,
    });
    assert.equal(migrated.status, 0, migrated.stderr);
    assert.equal(existsSync(database), true);
    const refused = spawnSync(process.execPath, [CLI, "serve", "--config", file("typo.json", { TESSERA_PROT: 1 })], {
      encoding: "utf8",
      env: { PATH: process.env.PATH },
      timeout: 30_000,
    });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /TESSERA_PROT in .*typo\.json is not a setting/);
  });
});
