import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { ACCOUNT_PAGE_CSP } from "../../src/http/account-page-routes.js";
import { createServer } from "../../src/http/server.js";
import { tessera } from "../../src/http/tessera-plugin.js";
import { temporaryDirectory } from "../support/server.js";

const BUILT = new URL("../../dist/account-page/manifest.json", import.meta.url);
const SECRET = "account-page-secret-0123456789-abcdefghij";

describe("GET /account", () => {
  const dir = temporaryDirectory();
  const apps: FastifyInstance[] = [];
  after(async () => {
    for (const app of apps) await app.close();
    dir.remove();
  });

  async function server(options: { cookieMode: boolean; registration?: "open" | "closed" }): Promise<FastifyInstance> {
    const app = await createServer({
      databaseUrl: `sqlite:${dir.path}/page-${apps.length}.db`,
      secret: SECRET,
      logger: false,
      ...options,
    });
    apps.push(app);
    return app;
  }

  it("serves the built page with its CSP, no-store, and its hashed assets for a year", async () => {
    assert.ok(existsSync(BUILT), "npm run build writes dist/account-page");
    const app = await server({ cookieMode: true, registration: "closed" });
    const page = await app.inject({ method: "GET", url: "/account" });
    assert.equal(page.statusCode, 200);
    assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(page.headers["content-security-policy"], ACCOUNT_PAGE_CSP);
    assert.equal(page.headers["cache-control"], "no-store");
    assert.equal(page.headers["x-frame-options"], "DENY", "helmet's headers stay");
    assert.match(page.body, /<meta name="tessera-registration" content="closed" \/>/);
    assert.doesNotMatch(page.body, /<style|style=|<script>|\son[a-z]+=/i, "no inline style or script");
    const assets = [...page.body.matchAll(/(?:src|href)="(\/account\/account-[A-Z0-9]+\.(?:js|css))"/g)].map(
      (match) => match[1]!,
    );
    assert.equal(assets.length, 2);
    for (const asset of assets) {
      const answer = await app.inject({ method: "GET", url: asset });
      assert.equal(answer.statusCode, 200, asset);
      assert.equal(answer.headers["cache-control"], "public, max-age=31536000, immutable");
      assert.match(String(answer.headers["content-type"]), asset.endsWith(".js") ? /^text\/javascript/ : /^text\/css/);
    }
    for (const url of ["/account/account-NOPE.js", "/account/a/b", `/account/x${assets[0]!}`, "/account/"]) {
      const missing = await app.inject({ method: "GET", url });
      assert.equal(missing.statusCode, 404, url);
      assert.deepEqual(missing.json(), { error: "not_found", error_description: "No such file." }, url);
      assert.equal(missing.headers["content-security-policy"], ACCOUNT_PAGE_CSP, url);
      assert.equal(missing.headers["cache-control"], "no-store", url);
    }
  });

  it("answers 404 saying it needs cookie mode when cookie mode is off", async () => {
    const app = await server({ cookieMode: false });
    for (const url of ["/account", "/account/account-ANY.js", "/account/a/b"]) {
      const answer = await app.inject({ method: "GET", url });
      assert.equal(answer.statusCode, 404);
      assert.equal(answer.headers["content-security-policy"], ACCOUNT_PAGE_CSP);
      assert.equal(answer.headers["cache-control"], "no-store");
      assert.deepEqual(answer.json(), {
        error: "not_found",
        error_description: "The account page needs cookie mode (TESSERA_COOKIE_MODE=on).",
      });
    }
  });

  it("mounts under the Fastify plugin's prefix with accountPage, and only with it", async () => {
    const host = Fastify();
    apps.push(host);
    await host.register(tessera, {
      prefix: "/id",
      databaseUrl: `sqlite:${dir.path}/plugin.db`,
      secret: SECRET,
      issuer: "https://app.example.test/id",
      cookieMode: true,
      accountPage: true,
    });
    const page = await host.inject({ method: "GET", url: "/id/account" });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /<meta name="tessera-base" content="\/id" \/>/);
    assert.match(page.body, /src="\/id\/account\/account-[A-Z0-9]+\.js"/);
    assert.equal(page.headers["content-security-policy"], ACCOUNT_PAGE_CSP);
    // Unknown paths under the page answer the page's 404, not the host app's.
    for (const url of ["/id/account/nope.js", "/id/account/a/b", "/id/account/a/b/c.js"]) {
      const missing = await host.inject({ method: "GET", url });
      assert.equal(missing.statusCode, 404, url);
      assert.equal(missing.json().error_description, "No such file.", url);
      assert.equal(missing.headers["content-security-policy"], ACCOUNT_PAGE_CSP, url);
      assert.equal(missing.headers["cache-control"], "no-store", url);
    }

    const without = Fastify();
    apps.push(without);
    await without.register(tessera, {
      databaseUrl: `sqlite:${dir.path}/plain.db`,
      secret: SECRET,
      cookieMode: true,
    });
    assert.equal((await without.inject({ method: "GET", url: "/account" })).statusCode, 404);
    await assert.rejects(
      async () => {
        const bad = Fastify();
        apps.push(bad);
        await bad.register(tessera, {
          databaseUrl: `sqlite:${dir.path}/bad.db`,
          secret: SECRET,
          accountPage: "yes" as unknown as boolean,
        });
        await bad.ready();
      },
      { name: "TypeError", message: /accountPage/ },
    );
  });
});
