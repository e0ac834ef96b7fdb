import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseBearerHeader } from "../../src/core/bearer.js";
import { parseDurationSeconds } from "../../src/core/duration.js";

describe("parseBearerHeader()", () => {
  it("reads the token with any casing of the scheme", () => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      assert.deepEqual(parseBearerHeader(`${scheme} abc.def-_~+/=`), { kind: "token", token: "abc.def-_~+/=" });
    }
  });

  it("says none for a missing header or another scheme (no error code per RFC 6750 §3)", () => {
    assert.deepEqual(parseBearerHeader(undefined), { kind: "none" });
    assert.deepEqual(parseBearerHeader(""), { kind: "none" });
    assert.deepEqual(parseBearerHeader("Basic dXNlcjpwYXNz"), { kind: "none" });
    assert.deepEqual(parseBearerHeader("Bearerabc"), { kind: "none" });
  });

  it("says malformed for a Bearer header without a valid b64token", () => {
    for (const header of [
      "Bearer",
      "Bearer ",
      "Bearer a b",
      "Bearer a,b",
      "Bearer =abc",
      "Bearer abc\u00e9",
      "Bearer\tabc",
      "bearer\t",
    ]) {
      assert.deepEqual(parseBearerHeader(header), { kind: "malformed" }, header);
    }
    assert.deepEqual(parseBearerHeader(["Bearer a", "Bearer b"]), { kind: "malformed" });
  });
});

describe("parseDurationSeconds()", () => {
  it("reads seconds, minutes, hours and days", () => {
    assert.equal(parseDurationSeconds("15m", "x"), 900);
    assert.equal(parseDurationSeconds("3d", "x"), 259200);
    assert.equal(parseDurationSeconds("10s", "x"), 10);
    assert.equal(parseDurationSeconds("2h", "x"), 7200);
    assert.equal(parseDurationSeconds("900", "x"), 900);
    assert.equal(parseDurationSeconds(42, "x"), 42);
  });

  it("throws a TypeError naming the option for anything else", () => {
    for (const bad of ["15 minutes", "-1", "1.5h", "", "m", "1w"]) {
      assert.throws(() => parseDurationSeconds(bad, "accessTokenTtl"), /accessTokenTtl/);
    }
    assert.throws(() => parseDurationSeconds(-5, "refreshGrace"), /refreshGrace/);
  });
});
