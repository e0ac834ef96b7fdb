import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  createAuthClient,
  memoryStorage,
  type AuthClient,
  type AuthClientEventMap,
  type AuthClientEventType,
} from "../../src/client/index.js";
import { registerAndLogin, startServer, type RunningServer } from "../support/server.js";
import { recordingFetch, shiftedClock } from "./recording-fetch.js";

/** Resolves with the next `type` event of `client`. */
function nextEvent<K extends AuthClientEventType>(client: AuthClient, type: K): Promise<AuthClientEventMap[K]> {
  return new Promise((resolve) => {
    const unsubscribe = client.on(type, (event) => {
      unsubscribe();
      resolve(event);
    });
  });
}

// Two clients with separate storages on one BroadcastChannel stand in for two tabs: Node has
// BroadcastChannel but no Web Locks, so this checks the broadcast half; test/client/browser.test.ts
// checks both halves in Chromium.
describe("createAuthClient() with a channelName", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ accessTokenTtl: "60s" });
    await registerAndLogin(server.url, "uma");
  });
  after(() => server.close());

  function twoTabs() {
    const channelName = `tessera-test-${randomUUID()}`;
    const network = recordingFetch();
    const clock = shiftedClock();
    const make = () => {
      const storage = memoryStorage();
      return {
        storage,
        client: createAuthClient({ baseUrl: server.url, storage, fetch: network.fetch, now: clock.now, channelName }),
      };
    };
    return { network, clock, first: make(), second: make() };
  }

  it("hands a login, then each refresh, to the other tab, which adopts it instead of refreshing", async (t) => {
    const { network, clock, first, second } = twoTabs();
    t.after(() => {
      first.client.close();
      second.client.close();
    });
    const loggedIn = nextEvent(second.client, "logged_in");
    await first.client.login("uma", "correct horse battery staple");
    assert.equal((await loggedIn).origin, "remote");
    assert.deepEqual(await second.storage.get(), await first.storage.get());

    clock.advance(57_000);
    const refreshed = nextEvent(second.client, "tokens_refreshed");
    const firstToken = await first.client.getAccessToken();
    assert.equal((await refreshed).origin, "remote");
    assert.equal(await second.client.getAccessToken(), firstToken);
    assert.equal((await second.client.fetch(`${server.url}/auth/me`)).status, 200);
    assert.equal(network.count("POST", "/auth/refresh"), 1);
  });

  it("ends the session in the other tab on logout", async (t) => {
    const { first, second } = twoTabs();
    t.after(() => {
      first.client.close();
      second.client.close();
    });
    const loggedIn = nextEvent(second.client, "logged_in");
    await first.client.login("uma", "correct horse battery staple");
    await loggedIn;
    const loggedOut = nextEvent(second.client, "logged_out");
    await first.client.logout();
    assert.equal((await loggedOut).origin, "remote");
    assert.equal(await second.storage.get(), null);
  });

  it("ignores messages on the channel that are not the client's", async (t) => {
    const channelName = `tessera-test-${randomUUID()}`;
    const storage = memoryStorage();
    const client = createAuthClient({ baseUrl: server.url, storage, channelName });
    const intruder = new BroadcastChannel(channelName);
    t.after(() => {
      client.close();
      intruder.close();
    });
    intruder.postMessage({ type: "tokens", reason: "login", tokens: { accessToken: "forged" } });
    intruder.postMessage("hello");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await storage.get(), null);
  });
});
