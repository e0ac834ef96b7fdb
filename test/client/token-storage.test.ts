import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  localStorageStorage,
  memoryStorage,
  webStorage,
  type TokenSet,
  type WebStorageLike,
} from "../../src/client/index.js";
import { refreshDeadline, tokenSetFromResponse } from "../../src/client/token-set.js";

const tokens: TokenSet = {
  accessToken: "a.b.c",
  refreshToken: "tsr_x",
  receivedAt: 1_000,
  accessTokenExpiresAt: 901_000,
  refreshTokenExpiresAt: 9_000_000,
};

function fakeArea(): WebStorageLike & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

describe("memoryStorage()", () => {
  it("returns what was set until it is removed", () => {
    const storage = memoryStorage();
    assert.equal(storage.get(), null);
    void storage.set(tokens);
    assert.deepEqual(storage.get(), tokens);
    void storage.remove();
    assert.equal(storage.get(), null);
  });
});

describe("webStorage()", () => {
  it("keeps the token set as JSON under the key", () => {
    const area = fakeArea();
    const storage = webStorage(area, "my-app.tokens");
    void storage.set(tokens);
    assert.deepEqual(JSON.parse(area.items.get("my-app.tokens") ?? "null"), tokens);
    assert.deepEqual(storage.get(), tokens);
    void storage.remove();
    assert.equal(area.items.size, 0);
  });

  it("reads garbage or a foreign shape under the key as no tokens", () => {
    const area = fakeArea();
    const storage = webStorage(area);
    area.items.set("tessera.tokens", "{not json");
    assert.equal(storage.get(), null);
    area.items.set("tessera.tokens", JSON.stringify({ accessToken: "x" }));
    assert.equal(storage.get(), null);
  });

  it("refuses an empty key", () => {
    assert.throws(() => webStorage(fakeArea(), ""), TypeError);
  });
});

describe("localStorageStorage()", () => {
  it("throws TypeError where there is no localStorage", {
    skip: "localStorage" in globalThis ? "this Node has localStorage" : false,
  }, () => {
    assert.throws(() => localStorageStorage(), { name: "TypeError", message: /localStorage/ });
  });
});

describe("tokenSetFromResponse()", () => {
  it("turns expires_in into absolute times from the moment of receipt", () => {
    const set = tokenSetFromResponse(
      {
        access_token: "a",
        token_type: "Bearer",
        expires_in: 900,
        refresh_token: "r",
        refresh_token_expires_in: 259_200,
      },
      5_000,
    );
    assert.deepEqual(set, {
      accessToken: "a",
      refreshToken: "r",
      receivedAt: 5_000,
      accessTokenExpiresAt: 905_000,
      refreshTokenExpiresAt: 259_205_000,
    });
  });

  it("rejects a response that is not a Bearer token response with a refresh token", () => {
    for (const body of [
      null,
      {},
      { access_token: "a", token_type: "mac", expires_in: 1, refresh_token: "r", refresh_token_expires_in: 1 },
      { access_token: "a", token_type: "Bearer", expires_in: 1 },
    ]) {
      assert.throws(() => tokenSetFromResponse(body, 0), { name: "AuthClientError", code: "unexpected_response" });
    }
  });
});

describe("refreshDeadline()", () => {
  const lifetime = (seconds: number): TokenSet => ({ ...tokens, receivedAt: 0, accessTokenExpiresAt: seconds * 1000 });

  it("refreshes 30 s early by default, but never more than 10 % of the lifetime early", () => {
    assert.equal(refreshDeadline(lifetime(900), undefined), 870_000);
    assert.equal(refreshDeadline(lifetime(60), undefined), 54_000);
    assert.equal(refreshDeadline(lifetime(2), undefined), 1_800);
  });

  it("uses an explicit margin, capped at half the lifetime", () => {
    assert.equal(refreshDeadline(lifetime(900), 120), 780_000);
    assert.equal(refreshDeadline(lifetime(60), 100), 30_000);
    assert.equal(refreshDeadline(lifetime(60), 0), 60_000);
  });
});
