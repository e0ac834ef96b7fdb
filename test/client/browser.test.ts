import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startExampleServer, type ExampleServer } from "../../examples/browser/serve.js";
import { registerAndLogin, startServer, temporaryDirectory, type RunningServer } from "../support/server.js";
import { CHROMIUM, CHROMIUM_ARGS, skipWithoutChromium } from "./chromium.js";
import { sleep } from "./recording-fetch.js";

const PASSWORD = "correct horse battery staple";
const skip = skipWithoutChromium;

/** What app.js exposes on `window` for this test. */
interface ExampleWindow {
  tesseraExample: {
    client: {
      login(username: string, password: string): Promise<void>;
      getAccessToken(): Promise<string | null>;
      fetch(input: string): Promise<Response>;
    };
    me(): Promise<{ status?: number; body?: { username: string }; error?: string }>;
    events: string[];
  };
}

describe("tessera/client in Chromium, two tabs of the example page", { skip }, () => {
  let server: RunningServer;
  let example: ExampleServer;
  let context: BrowserContext;
  let thirdParty: Server;
  const thirdPartyReceived: { method: string; headers: IncomingHttpHeaders }[] = [];
  const profile = temporaryDirectory("tessera-chromium-");
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `CI=true but Chromium is missing at ${CHROMIUM}: run scripts/install-browser.sh before the tests`,
    );
    server = await startServer({ accessTokenTtl: 2 });
    await registerAndLogin(server.url, "wendy");
    example = await startExampleServer({ port: 0, upstream: server.url });
    // Another origin that would take anything: CORS open to every header, so a token sent is a token received.
    thirdParty = createServer((request, response) => {
      thirdPartyReceived.push({ method: request.method ?? "", headers: request.headers });
      response
        .writeHead(request.method === "OPTIONS" ? 204 : 200, {
          "access-control-allow-origin": "*",
          "access-control-allow-headers": "authorization, content-type",
          "content-type": "application/json",
        })
        .end(request.method === "OPTIONS" ? undefined : "{}");
    });
    await new Promise<void>((resolve) => thirdParty.listen(0, "127.0.0.1", resolve));
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
    });
  });

  after(async () => {
    await context?.close();
    thirdParty?.closeAllConnections();
    await new Promise((resolve) => (thirdParty ? thirdParty.close(resolve) : resolve(undefined)));
    await example?.close();
    await server?.close();
    profile.remove();
  });

  async function openTab(): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(example.url);
    await page.waitForFunction(() => "tesseraExample" in window);
    return page;
  }

  const accessTokenIn = (page: Page) =>
    page.evaluate(() => (window as unknown as ExampleWindow).tesseraExample.client.getAccessToken());
  const storedIn = (page: Page) =>
    page.evaluate(
      () =>
        JSON.parse(localStorage.getItem("tessera-example.tokens") ?? "null") as {
          accessToken: string;
          accessTokenExpiresAt: number;
        } | null,
    );
  const refreshes = () =>
    example.forwarded.filter((request) => request.method === "POST" && request.path === "/auth/refresh").length;

  it("logs in in one tab, the other follows, and both share exactly one refresh across an expiry", async () => {
    const [first, second] = [await openTab(), await openTab()];

    const followed = second.waitForFunction(() =>
      (window as unknown as ExampleWindow).tesseraExample.events.includes("logged_in:remote"),
    );
    await first.evaluate(
      (password) => (window as unknown as ExampleWindow).tesseraExample.client.login("wendy", password),
      PASSWORD,
    );
    await followed;
    const original = await storedIn(first);
    assert.ok(original, "the first tab stored a session");
    assert.equal(await accessTokenIn(second), original.accessToken);

    // Let the 2 s access token expire, then call /auth/me ten times in each tab at once.
    await sleep(Math.max(0, original.accessTokenExpiresAt - Date.now() + 100));
    const burst = (page: Page) =>
      page.evaluate(() =>
        Promise.all(Array.from({ length: 10 }, () => (window as unknown as ExampleWindow).tesseraExample.me())),
      );
    const [fromFirst, fromSecond] = await Promise.all([burst(first), burst(second)]);

    for (const result of [...fromFirst, ...fromSecond]) {
      assert.equal(result.status, 200, JSON.stringify(result));
      assert.equal(result.body?.username, "wendy");
    }
    assert.equal(refreshes(), 1, "one refresh reached the server for both tabs");
    const [tokenInFirst, tokenInSecond] = [await accessTokenIn(first), await accessTokenIn(second)];
    assert.ok(tokenInFirst !== null && tokenInFirst !== original.accessToken, "the first tab holds a new access token");
    assert.equal(tokenInSecond, tokenInFirst);
    assert.equal(refreshes(), 1);
    assert.deepEqual(pageErrors, []);
  });

  it("sends the token to the page's origin but not to another origin", async () => {
    const [first] = context.pages().slice(-2) as [Page, Page];
    const elsewhere = `http://127.0.0.1:${(thirdParty.address() as AddressInfo).port}/collect`;
    const statuses = await first.evaluate(async (url) => {
      const { client } = (window as unknown as ExampleWindow).tesseraExample;
      return [(await client.fetch("/auth/me")).status, (await client.fetch(url)).status];
    }, elsewhere);
    assert.deepEqual(statuses, [200, 200]);
    assert.deepEqual(
      thirdPartyReceived.map((request) => [
        request.method,
        request.headers.authorization,
        request.headers["access-control-request-headers"],
      ]),
      [["GET", undefined, undefined]],
      "one plain GET, no token and no preflight asking to send one",
    );
    assert.deepEqual(pageErrors, []);
  });

  it("logs out every tab when one logs out", async () => {
    const [first, second] = context.pages().slice(-2) as [Page, Page];
    const loggedOut = second.waitForFunction(() =>
      (window as unknown as ExampleWindow).tesseraExample.events.includes("logged_out:remote"),
    );
    await first.click("#logout");
    await loggedOut;
    assert.equal(await storedIn(second), null);
    assert.equal(await accessTokenIn(second), null);
    assert.deepEqual(
      example.forwarded.filter((request) => request.path === "/auth/logout").map((request) => request.status),
      [204],
    );
  });
});
