import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import * as client from "../../src/client/index.js";

const directory = new URL("../../src/client/", import.meta.url);
const sources = readdirSync(directory).filter((name) => name.endsWith(".ts"));

describe("tessera/client", () => {
  it("imports only its own modules: no node:*, no packages, no other layer", () => {
    for (const name of sources) {
      const text = readFileSync(new URL(name, directory), "utf8");
      const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/g)].map(
        (match) => match[1],
      );
      for (const specifier of specifiers)
        assert.match(specifier ?? "", /^\.\/[a-z-]+\.js$/, `${name} imports ${specifier}`);
      assert.doesNotMatch(
        text,
        /\bimport\s*\(|\brequire\s*\(|\bprocess\./,
        `${name} reaches outside the browser/Node common ground`,
      );
    }
  });

  it("never writes to the console, so tokens cannot end up in logs", () => {
    for (const name of sources)
      assert.doesNotMatch(readFileSync(new URL(name, directory), "utf8"), /\bconsole\./, name);
  });

  it("exports a fixed, hand-written surface", () => {
    assert.deepEqual(Object.keys(client).sort(), [
      "AUTH_CLIENT_ERROR_CODES",
      "AUTH_CLIENT_EVENTS",
      "AuthClientError",
      "CSRF_HEADER",
      "DEFAULT_REFRESH_MARGIN_SECONDS",
      "DEFAULT_STORAGE_KEY",
      "createAuthClient",
      "isAuthClientError",
      "localStorageStorage",
      "memoryStorage",
      "webStorage",
    ]);
  });
});
