import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startExampleServer, type ExampleServer } from "../../examples/browser/serve.js";
import { freePort, registerAndLogin, startServer, temporaryDirectory, type RunningServer } from "../support/server.js";
import { assertChromium, CHROMIUM, CHROMIUM_ARGS, skipWithoutChromium } from "./chromium.js";
import { sleep } from "./recording-fetch.js";

const PASSWORD = "correct horse battery staple";

/** What app.js exposes on `window`. */
interface ExampleWindow {
  tesseraExample: {
    client: { login(username: string, password: string): Promise<void>; getAccessToken(): Promise<string | null> };
    me(): Promise<{ status?: number; body?: { username: string }; error?: string }>;
    events: string[];
  };
}

describe("cookie mode in Chromium: the example page behind one site, and a page on another origin", {
  skip: skipWithoutChromium,
}, () => {
  let server: RunningServer;
  let example: ExampleServer;
  let attacker: Server;
  let attackerUrl: string;
  let context: BrowserContext;
  const profile = temporaryDirectory("tessera-chromium-cookie-");
  const pageErrors: string[] = [];
  const tabs: Page[] = [];

  before(async () => {
    assertChromium();
    const port = await freePort();
    // The public URL is the example page's: it forwards /auth/* to Tessera, so the issuer is its origin.
    server = await startServer({ accessTokenTtl: 2, cookieMode: true, issuer: `http://127.0.0.1:${port}` });
    await registerAndLogin(server.url, "quinn");
    example = await startExampleServer({ port, upstream: server.url });
    // Another origin of the same site (another port on 127.0.0.1): SameSite=Strict still sends the cookie.
    attacker = createHttpServer((_request, response) => {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html>
<form id="forged" method="POST" action="${example.url}/auth/refresh" enctype="text/plain">
  <input name='{"a":"' value='"}' />
</form>`);
    });
    await new Promise<void>((resolve) => attacker.listen(0, "127.0.0.1", resolve));
    attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}`;
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
    });
  });

  after(async () => {
    await context?.close();
    attacker?.closeAllConnections();
    await new Promise((resolve) => (attacker ? attacker.close(resolve) : resolve(undefined)));
    await example?.close();
    await server?.close();
    profile.remove();
  });

  async function openTab(): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${example.url}/cookie.html`);
    await page.waitForFunction(() => "tesseraExample" in window);
    return page;
  }

  const accessTokenIn = (page: Page) =>
    page.evaluate(() => (window as unknown as ExampleWindow).tesseraExample.client.getAccessToken());
  const refreshes = () =>
    example.forwarded.filter((request) => request.method === "POST" && request.path === "/auth/refresh");

  it("logs in, keeps the refresh token out of scripts' reach, and gets the session back after a reload", async () => {
    const page = await openTab();
    await page.evaluate(
      (password) => (window as unknown as ExampleWindow).tesseraExample.client.login("quinn", password),
      PASSWORD,
    );
    const [cookie, ...others] = await context.cookies(example.url + "/auth/refresh");
    assert.equal(others.length, 0);
    assert.equal(cookie?.name, "tessera_refresh", "Chromium kept the Secure cookie set over http://127.0.0.1");
    assert.ok(cookie.httpOnly && cookie.secure);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.path, "/auth");
    assert.equal(await page.evaluate(() => document.cookie), "", "document.cookie has no refresh token");
    const inStorage = await page.evaluate(
      () => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
    );
    assert.ok(!inStorage.includes("tsr_") && !inStorage.includes("eyJ"), "nothing in Web Storage");
    assert.equal((await page.evaluate(() => (window as unknown as ExampleWindow).tesseraExample.me())).status, 200);

    const before = refreshes().length;
    await page.reload();
    await page.waitForFunction(() => "tesseraExample" in window);
    const me = await page.evaluate(() => (window as unknown as ExampleWindow).tesseraExample.me());
    assert.equal(me.status, 200, JSON.stringify(me));
    assert.equal(me.body?.username, "quinn");
    const resumed = refreshes().slice(before);
    assert.equal(resumed.length, 1, "one refresh by the cookie after the reload");
    assert.equal(resumed[0]?.status, 200);
    assert.ok(resumed[0]?.withCookie);
    assert.equal(resumed[0]?.origin, example.url);
    const rotated = (await context.cookies(example.url + "/auth/refresh"))[0];
    assert.notEqual(rotated?.value, cookie.value, "the cookie was rotated");
    await page.close();
  });

  it("keeps one refresh across two tabs when the access token expires", async () => {
    const [first, second] = [await openTab(), await openTab()];
    tabs.push(first, second);
    // Each tab has resumed the session from the cookie (in turn, under the cross-tab lock).
    const [a, b] = [await accessTokenIn(first), await accessTokenIn(second)];
    assert.ok(a !== null && b !== null);
    await sleep(2200);
    const before = refreshes().length;
    const burst = (page: Page) =>
      page.evaluate(() =>
        Promise.all(Array.from({ length: 10 }, () => (window as unknown as ExampleWindow).tesseraExample.me())),
      );
    const results = (await Promise.all([burst(first), burst(second)])).flat();
    for (const result of results) assert.equal(result.status, 200, JSON.stringify(result));
    assert.equal(refreshes().length - before, 1, "one refresh reached the server for both tabs");
    assert.equal(await accessTokenIn(first), await accessTokenIn(second));
    assert.deepEqual(pageErrors, []);
  });

  it("refuses a page on another origin: credentialed fetch, a simple POST and a form post", async () => {
    const cookieBefore = (await context.cookies(example.url + "/auth/refresh"))[0]?.value;
    assert.ok(cookieBefore);
    const page = await context.newPage();
    await page.goto(attackerUrl);
    const outcomes = await page.evaluate(async (target) => {
      const inits: RequestInit[] = [
        { headers: { "content-type": "application/json", "x-tessera-csrf": "1" }, body: "{}" },
        { mode: "no-cors", headers: { "content-type": "text/plain" }, body: "{}" },
      ];
      const results: string[] = [];
      for (const init of inits) {
        try {
          const response = await fetch(`${target}/auth/refresh`, { method: "POST", credentials: "include", ...init });
          results.push(`answered ${response.status}: ${await response.text()}`);
        } catch {
          results.push("blocked");
        }
      }
      return results;
    }, example.url);
    assert.equal(outcomes[0], "blocked", "the preflight is refused, the POST never sent");
    // Sent (see below) but unreadable: opaque, or blocked outright by Cross-Origin-Resource-Policy.
    assert.ok(outcomes[1] === "answered 0: " || outcomes[1] === "blocked", outcomes[1]);
    await Promise.all([
      page.waitForNavigation(),
      page.evaluate(() => (document.querySelector("#forged") as HTMLFormElement).submit()),
    ]);
    assert.match(await page.content(), /csrf_check_failed/);
    await page.close();

    const fromAttacker = example.forwarded.filter((request) => request.origin === attackerUrl);
    assert.deepEqual(
      fromAttacker.map((request) => `${request.method} ${request.status}`),
      ["OPTIONS 405", "POST 403", "POST 403"],
    );
    assert.ok(
      fromAttacker.filter((request) => request.method === "POST").every((request) => request.withCookie),
      "the cookie went along (same site): the Origin check refused them",
    );
    const cookieAfter = (await context.cookies(example.url + "/auth/refresh"))[0]?.value;
    assert.equal(cookieAfter, cookieBefore, "nothing was rotated or cleared");
  });

  it("logs out: the server clears the cookie and a reload finds no session", async () => {
    const page = tabs.at(-1)!;
    await page.click("#logout");
    await page.waitForFunction(() =>
      (window as unknown as ExampleWindow).tesseraExample.events.includes("logged_out:local"),
    );
    assert.deepEqual(await context.cookies(example.url + "/auth/refresh"), []);
    await page.reload();
    await page.waitForFunction(() => "tesseraExample" in window);
    assert.equal(await accessTokenIn(page), null);
  });
});
