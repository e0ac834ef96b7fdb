import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { KEY_PUBLICATION_LEAD_SECONDS } from "../../src/service/signing-keys.js";
import { temporaryDirectory } from "../support/server.js";

const CLI = resolve("dist/cli/main.js");

describe("tessera CLI", () => {
  let dir: ReturnType<typeof temporaryDirectory>;
  let database: string;

  before(() => {
    dir = temporaryDirectory();
    database = `sqlite:${dir.path}/cli.db`;
  });
  after(() => dir.remove());

  function run(args: string[], env: Record<string, string> = {}) {
    const result = spawnSync(process.execPath, [CLI, ...args], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, TESSERA_SECRET: "cli-test-secret-0123456789-abcdefghijklm", ...env },
      timeout: 30_000,
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it("prints usage for --help", () => {
    const result = run(["--help"]);
    assert.equal(result.status, 0);
    assert.match(result.stdout, /serve/);
    assert.match(result.stdout, /keys rotate/);
  });

  it("migrates, rotates and lists keys, as JSON: next, then current; --immediately at once", () => {
    assert.match(run(["migrate", "--database", database]).stdout, /migrated sqlite database/);
    type Started = { kid: string; activatesAt: string };
    type Listed = { kid: string; state: string; createdAt: string; activatesAt: string; retiredAt: string | null };
    const list = () => JSON.parse(run(["keys", "list", "--database", database]).stdout) as Listed[];
    // Nothing signs yet: the first key is current at once.
    const first = JSON.parse(run(["keys", "rotate", "--database", database]).stdout) as Started;
    assert.deepEqual(
      list().map(({ kid, state }) => ({ kid, state })),
      [{ kid: first.kid, state: "current" }],
    );
    const startedAt = Date.now();
    const next = JSON.parse(run(["keys", "rotate", "--database", database]).stdout) as Started;
    const lead = (Date.parse(next.activatesAt) - startedAt) / 1000;
    // The lead counts from when the command ran, after this process started it.
    assert.ok(lead >= KEY_PUBLICATION_LEAD_SECONDS && lead <= KEY_PUBLICATION_LEAD_SECONDS + 20, `lead ${lead}`);
    const again = JSON.parse(run(["keys", "rotate", "--database", database]).stdout) as Started;
    assert.deepEqual(again, next, "a pending next key is the rotation already under way");
    assert.deepEqual(
      list().map(({ kid, state, retiredAt }) => ({ kid, state, retiredAt })),
      [
        { kid: first.kid, state: "current", retiredAt: null },
        { kid: next.kid, state: "next", retiredAt: null },
      ],
    );
    const emergency = JSON.parse(run(["keys", "rotate", "--immediately", "--database", database]).stdout) as Started;
    const keys = list();
    assert.deepEqual(
      keys.map(({ kid, state }) => ({ kid, state })),
      [
        { kid: first.kid, state: "retired" },
        { kid: next.kid, state: "retired" },
        { kid: emergency.kid, state: "current" },
      ],
    );
    assert.equal(keys[2]!.activatesAt, emergency.activatesAt);
    assert.ok(keys.slice(0, 2).every((key) => key.retiredAt === emergency.activatesAt));
    assert.equal(run(["keys", "list", "--immediately", "--database", database]).status, 2);
  });

  it("purges and reports what it deleted", () => {
    assert.match(
      run(["purge", "--database", database]).stdout,
      /^purged \d+ refresh tokens, \d+ sessions, \d+ one-time tokens and \d+ audit events$/m,
    );
  });

  it("exits 2 with a message naming the problem for bad input", () => {
    const unknownUser = run(["user", "set-roles", "nobody", "admin", "--database", database]);
    assert.equal(unknownUser.status, 2);
    assert.match(unknownUser.stderr, /no such user/);
    assert.equal(run(["frobnicate"]).status, 2);
    const badPort = run(["serve", "--port", "http"]);
    assert.equal(badPort.status, 2);
    assert.match(badPort.stderr, /--port/);
    const badTtl = run(["serve", "--database", database], { TESSERA_ACCESS_TOKEN_TTL: "15 minutes" });
    assert.equal(badTtl.status, 2);
    assert.match(badTtl.stderr, /accessTokenTtl \(TESSERA_ACCESS_TOKEN_TTL\)/);
  });

  it("refuses to serve in production without a secret", () => {
    const result = run(["serve", "--database", database], { NODE_ENV: "production", TESSERA_SECRET: "" });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /secret \(TESSERA_SECRET\) is required/);
  });

  it("refuses to serve beyond loopback in development mode, saying how to make a secret", () => {
    for (const host of ["0.0.0.0", "::", "192.0.2.10"]) {
      const result = run(["serve", "--host", host, "--database", database], { TESSERA_SECRET: "" });
      assert.equal(result.status, 2, host);
      assert.match(result.stderr, /secret \(TESSERA_SECRET\) is required to listen on .*openssl rand -base64 32/);
    }
  });

  it("refuses a short secret and a short HS256 secret", () => {
    assert.match(run(["serve", "--database", database], { TESSERA_SECRET: "short" }).stderr, /at least 32/);
    const hs = run(["serve", "--database", database], {
      TESSERA_SIGNING_ALG: "HS256",
      TESSERA_HS256_SECRET: "x".repeat(31),
    });
    assert.equal(hs.status, 2);
    assert.match(hs.stderr, /hs256Secret \(TESSERA_HS256_SECRET\) must be at least 32 bytes/);
  });
});
