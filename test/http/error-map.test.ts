import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ERROR_CODES } from "../../src/core/errors.js";
import { HTTP_ERRORS } from "../../src/http/error-map.js";

describe("HTTP_ERRORS", () => {
  const documented = readFileSync("docs/errors.md", "utf8");

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
    const oauth = new Set(["invalid_request", "invalid_grant", "invalid_token", "unsupported_grant_type", "invalid_scope", "invalid_client"]);
    for (const code of ERROR_CODES) {
      const { status, error } = HTTP_ERRORS[code];
      if (status === 400 || status === 401) assert.ok(oauth.has(error), `${code} → ${error}`);
    }
  });
});
