import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { resolveConfig } from "../../src/http/server-config.js";
import { openServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { temporaryDirectory } from "../support/server.js";
import { silentLogger } from "../support/service.js";

const CLI = resolve("dist/cli/main.js");
const SECRET = "cli-audit-test-secret-0123456789-abcdefgh";
const PASSWORD = "correct horse battery staple";
const context = { ip: "203.0.113.10", userAgent: "audit-cli-test" };

interface JsonPage {
  events: Array<{ id: string; type: string; userId: string | null; details: Record<string, unknown> | null }>;
  nextCursor: string | null;
}

/** `tessera audit list` as a real process, against a database a running service writes to. */
describe("tessera audit list", () => {
  let dir: ReturnType<typeof temporaryDirectory>;
  let database: string;
  let services: TesseraServices;
  let aliceId: string;
  let refreshToken: string;

  before(async () => {
    dir = temporaryDirectory();
    database = `sqlite:${dir.path}/audit.db`;
    services = await openServices(
      resolveConfig({ databaseUrl: database, secret: SECRET, issuer: "https://issuer.test" }),
      silentLogger,
    );
    aliceId = (await services.auth.register("alice", PASSWORD, context)).id;
    await assert.rejects(services.auth.login("alice", "wrong password!", context), { code: "invalid_credentials" });
    await assert.rejects(services.auth.login("nobody", PASSWORD, context), { code: "invalid_credentials" });
    refreshToken = (await services.auth.login("alice", PASSWORD, context)).refreshToken;
    await services.auth.refresh(refreshToken, context);
    await services.audit.flush();
  });
  after(async () => {
    await services.close();
    dir.remove();
  });

  async function run(args: string[]) {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args, "--database", database], {
        env: { PATH: process.env.PATH, TESSERA_SECRET: SECRET },
        timeout: 30_000,
      });
      return { status: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { status: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it("prints a user's failed logins, one line each, with the reason the client never sees", async () => {
    const result = await run(["audit", "list", "--user", "alice", "--type", "login_failed", "--since", "2026-01-01"]);
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.length, 1, result.stdout);
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}login_failed +user=[0-9a-f-]{36} {2}session=- {2}ip=203\.0\.113\.10/,
    );
    assert.ok(lines[0]!.includes(aliceId) && lines[0]!.includes('{"reason":"wrong_password"}'), lines[0]);
  });

  it("prints JSON with --json and walks every page with --cursor; user by id as well as name", async () => {
    const ids: string[] = [];
    let cursor: string[] = [];
    for (let page = 0; page < 10; page += 1) {
      const result = await run(["audit", "list", "--user", aliceId, "--limit", "2", "--json", ...cursor]);
      assert.equal(result.status, 0, result.stderr);
      const body = JSON.parse(result.stdout) as JsonPage;
      ids.push(...body.events.map((event) => event.id));
      if (body.nextCursor === null) break;
      cursor = ["--cursor", body.nextCursor];
    }
    assert.equal(ids.length, 4, "registered, failed, logged in, refreshed");
    assert.equal(new Set(ids).size, 4);
    const everything = await run(["audit", "list", "--json"]);
    const all = JSON.parse(everything.stdout) as JsonPage;
    assert.deepEqual(all.events.map((event) => event.type).sort(), [
      "key_created",
      "login_failed",
      "login_failed",
      "login_succeeded",
      "token_refreshed",
      "user_registered",
    ]);
    assert.ok(!everything.stdout.includes(refreshToken) && !everything.stdout.includes(PASSWORD));
  });

  it("says where the next page starts when there is one", async () => {
    const result = await run(["audit", "list", "--limit", "1"]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /\nnext page: --cursor [A-Za-z0-9_-]+\n$/);
  });

  it("exits 2 naming the problem for a bad filter or an unknown user", async () => {
    const badType = await run(["audit", "list", "--type", "login_failed,bogus"]);
    assert.equal(badType.status, 2);
    assert.match(badType.stderr, /type must be/);
    const badDate = await run(["audit", "list", "--since", "last tuesday"]);
    assert.equal(badDate.status, 2);
    assert.match(badDate.stderr, /since must be/);
    const unknown = await run(["audit", "list", "--user", "mallory"]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no such user/);
  });
});
