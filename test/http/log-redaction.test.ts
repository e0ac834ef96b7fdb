import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import Fastify from "fastify";
import { REDACTED_LOG_PATHS } from "../../src/http/server.js";

/** A logger configured as the server's default one, and the JSON lines it wrote. */
function redactingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
      done();
    },
  });
  const app = Fastify({ logger: { level: "info", stream, redact: { paths: [...REDACTED_LOG_PATHS], remove: true } } });
  return { log: app.log, lines };
}

describe("REDACTED_LOG_PATHS", () => {
  it("removes the second factor's credentials and whole request bodies, at the top level and one object down", () => {
    const { log, lines } = redactingLogger();
    const body = { mfa_token: "tsm_secret-token", code: "123456", recovery_code: "abcd-efgh-jk" };
    log.info({ ...body, body, req: { method: "POST", body }, secret: "JBSWY3DPEHPK3PXP" }, "mfa login");
    log.info({ context: { mfaToken: "tsm_other", recoveryCodes: ["abcd-efgh-jk"], new_password: "pw" } }, "nested");
    const text = JSON.stringify(lines);
    for (const secret of ["tsm_secret-token", "123456", "abcd-efgh-jk", "JBSWY3DPEHPK3PXP", "tsm_other", '"pw"'])
      assert.ok(!text.includes(secret), `${secret} was logged: ${text}`);
    assert.deepEqual(lines[0]?.req, { method: "POST" });
  });

  it("keeps an error's code, which names what failed and is no secret", () => {
    const { log, lines } = redactingLogger();
    log.warn({ err: { type: "TesseraError", code: "mfa_login_invalid" } }, "refused");
    assert.deepEqual(lines[0]?.err, { type: "TesseraError", code: "mfa_login_invalid" });
  });
});
