import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ERROR_CODES, TesseraError } from "../../src/core/errors.js";
import { challengeOf, HTTP_ERRORS, INSUFFICIENT_SCOPE, INTERNAL_ERROR } from "../../src/core/http-errors.js";
import { answerForError, insufficientScopeAnswer, resolveRequirements } from "../../src/verify/http-answer.js";

const documented = readFileSync("docs/errors.md", "utf8");

/** The docs/errors.md row of `code`, or "" when there is none. */
function rowOf(code: string): string {
  return new RegExp(`^\\| \`${code}\` \\|.*$`, "m").exec(documented)?.[0] ?? "";
}

describe("HTTP_ERRORS", () => {
  it("maps exactly the codes of ERROR_CODES", () => {
    assert.deepEqual(Object.keys(HTTP_ERRORS).sort(), [...ERROR_CODES].sort());
  });

  it("is documented row by row in docs/errors.md with the same status and error", () => {
    for (const code of ERROR_CODES) {
      const { status, error } = HTTP_ERRORS[code];
      const row = new RegExp(`^\\| \`${code}\` \\| ${status} \\| \`${error}\` \\|`, "m");
      assert.match(documented, row, `docs/errors.md row for ${code}`);
    }
  });

  it("uses OAuth error values for every 400 and 401", () => {
    const oauth = new Set([
      "invalid_request",
      "invalid_grant",
      "invalid_token",
      "unsupported_grant_type",
      "invalid_scope",
      "invalid_client",
      // A wrong authenticator code on the bearer TOTP routes: no OAuth grant is involved.
      "invalid_mfa_code",
    ]);
    for (const code of ERROR_CODES) {
      const { status, error } = HTTP_ERRORS[code];
      if (status === 400 || status === 401) assert.ok(oauth.has(error), `${code} → ${error}`);
    }
  });

  it("challenges with Bearer for every invalid_token and with Basic for invalid_client", () => {
    for (const code of ERROR_CODES) {
      const { error, challenge } = HTTP_ERRORS[code];
      if (error === "invalid_token") assert.ok(challenge === "bearer" || challenge === "invalid_token", code);
      else if (error === "invalid_client") assert.equal(challenge, "basic", code);
      else assert.equal(challenge, undefined, code);
    }
  });

  it("has descriptions that fit a challenge's error_description unchanged (RFC 6750 §3)", () => {
    for (const shape of [...Object.values(HTTP_ERRORS), INSUFFICIENT_SCOPE, INTERNAL_ERROR]) {
      assert.match(shape.description, /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/, shape.description);
      if (shape.challenge === "invalid_token") {
        assert.ok(challengeOf(shape)?.endsWith(`error_description="${shape.description}"`), shape.description);
      }
    }
  });
});

describe("the tessera/verify adapters' answers", () => {
  const realm = "tessera";

  it("are the table's answers for every code, with the headers docs/errors.md names", () => {
    for (const code of ERROR_CODES) {
      const answer = answerForError(new TesseraError(code, "a message clients never see"), realm);
      const row = rowOf(code);
      assert.match(row, new RegExp(`^\\| \`${code}\` \\| ${answer.status} \\| \`${answer.body.error}\` \\|`), code);
      assert.equal(answer.body.error_description, HTTP_ERRORS[code].description, code);
      assert.equal(answer.headers["cache-control"], "no-store", code);
      const challenge = /`WWW-Authenticate: ([^`]+)`/.exec(row)?.[1];
      if (challenge !== undefined) assert.equal(answer.headers["www-authenticate"], challenge, code);
      assert.equal(answer.headers["retry-after"], /`Retry-After: (\d+)`/.exec(row)?.[1], code);
    }
  });

  it("answer a missing role or scope with 403 insufficient_scope and anything else with 500, as documented", () => {
    const forbidden = insufficientScopeAnswer(realm, resolveRequirements([], ["reports:read"]));
    const challenge = `Bearer realm="${realm}", error="insufficient_scope", scope="reports:read"`;
    assert.equal(forbidden.headers["www-authenticate"], challenge);
    const internal = answerForError(new Error("a bug"), realm);
    for (const answer of [forbidden, internal]) {
      const row = new RegExp(`^\\| ${answer.status} \\| \`${answer.body.error}\` \\|`, "m");
      assert.match(documented, row, answer.body.error);
      assert.equal(answer.headers["cache-control"], "no-store");
    }
  });
});
