import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isLoopbackHost } from "../../src/core/http-url.js";

describe("isLoopbackHost()", () => {
  it("accepts localhost, 127.0.0.0/8 and ::1 in every spelling", () => {
    for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "0:0:0:0:0:0:0:1"]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    assert.equal(isLoopbackHost("::ffff:127.0.0.1"), true);
  });

  it("refuses every other address and name, the wildcard addresses first", () => {
    for (const host of ["0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.1", "::ffff:10.0.0.1", "example.com", ""]) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });
});
