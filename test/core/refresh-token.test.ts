import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  REFRESH_TOKEN_LENGTH,
  deriveSuccessorToken,
  generateRefreshToken,
  hashRefreshToken,
  isWellFormedRefreshToken,
} from "../../src/core/refresh-token.js";

describe("generateRefreshToken()", () => {
  it("makes tsr_ + 32 random bytes + a checksum, different every time", () => {
    const token = generateRefreshToken();
    assert.match(token, /^tsr_[A-Za-z0-9_-]{49}$/);
    assert.equal(token.length, REFRESH_TOKEN_LENGTH);
    assert.notEqual(generateRefreshToken(), token);
  });

  it("uses the injected random source", () => {
    const fixed = () => Buffer.alloc(32, 0xab);
    assert.equal(generateRefreshToken(fixed), generateRefreshToken(fixed));
  });
});

describe("isWellFormedRefreshToken()", () => {
  it("accepts generated tokens", () => {
    for (let i = 0; i < 50; i += 1) assert.equal(isWellFormedRefreshToken(generateRefreshToken()), true);
  });

  it("rejects a token with any single character changed (the checksum catches it)", () => {
    const token = generateRefreshToken();
    for (let i = 4; i < token.length; i += 1) {
      const swapped = token[i] === "A" ? "B" : "A";
      assert.equal(isWellFormedRefreshToken(token.slice(0, i) + swapped + token.slice(i + 1)), false, `position ${i}`);
    }
  });

  it("rejects other prefixes, lengths and alphabets", () => {
    const token = generateRefreshToken();
    for (const junk of [
      "",
      "tsr_",
      `xyz_${token.slice(4)}`,
      token.slice(0, -1),
      `${token}A`,
      token.replace(/.$/, "="),
      "tsr_" + "+".repeat(49),
    ]) {
      assert.equal(isWellFormedRefreshToken(junk), false, junk);
    }
  });
});

describe("hashRefreshToken()", () => {
  it("is the hex SHA-256, never the token itself", () => {
    const token = generateRefreshToken();
    const hash = hashRefreshToken(token);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(hashRefreshToken(token), hash);
    assert.notEqual(hashRefreshToken(generateRefreshToken()), hash);
  });
});

describe("deriveSuccessorToken()", () => {
  const key = Buffer.alloc(32, 1);

  it("is deterministic for one key and token, and well formed", () => {
    const presented = generateRefreshToken();
    const successor = deriveSuccessorToken(key, presented);
    assert.equal(deriveSuccessorToken(key, presented), successor);
    assert.equal(isWellFormedRefreshToken(successor), true);
    assert.notEqual(successor, presented);
  });

  it("differs for another rotation key or another token", () => {
    const presented = generateRefreshToken();
    assert.notEqual(deriveSuccessorToken(Buffer.alloc(32, 2), presented), deriveSuccessorToken(key, presented));
    assert.notEqual(deriveSuccessorToken(key, generateRefreshToken()), deriveSuccessorToken(key, presented));
  });
});
