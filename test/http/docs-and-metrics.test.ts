import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createServer } from "../../src/http/server.js";
import { registerAndLogin, type RunningServer, startServer, temporaryDirectory } from "../support/server.js";

describe("/openapi.json, /docs and /metrics", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it("/openapi.json describes every route of the HTTP contract", async () => {
    const response = await fetch(`${server.url}/openapi.json`);
    assert.equal(response.status, 200);
    const spec = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
    };
    assert.match(spec.openapi, /^3\./);
    const expected: Array<[string, string, string]> = [
      ["/auth/register", "post", "201"],
      ["/auth/login", "post", "200"],
      ["/auth/refresh", "post", "200"],
      ["/auth/logout", "post", "204"],
      ["/auth/logout-all", "post", "204"],
      ["/auth/logout-others", "post", "200"],
      ["/auth/sessions", "get", "200"],
      ["/auth/sessions/{id}", "delete", "204"],
      ["/auth/me", "get", "200"],
      ["/oauth/token", "post", "200"],
      ["/oauth/revoke", "post", "200"],
      ["/auth/revocations", "get", "200"],
      ["/.well-known/jwks.json", "get", "200"],
      ["/.well-known/oauth-authorization-server", "get", "200"],
      ["/healthz", "get", "200"],
      ["/readyz", "get", "200"],
    ];
    for (const [path, method, success] of expected) {
      const operation = spec.paths[path]?.[method];
      assert.ok(operation, `${method.toUpperCase()} ${path}`);
      assert.ok(operation.responses?.[success], `${method.toUpperCase()} ${path} documents its ${success}`);
    }
  });

  it("/docs serves the API documentation page", async () => {
    const response = await fetch(`${server.url}/docs`, { redirect: "follow" });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /swagger/i);
  });

  it("/metrics counts requests by route and refusals by error code, in Prometheus text format", async () => {
    const tokens = await registerAndLogin(server.url, "metered");
    await fetch(`${server.url}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: "junk" }),
    });
    await fetch(`${server.url}/auth/logout`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: tokens.refresh_token }),
    });
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await response.text();
    assert.match(text, /tessera_http_requests_total\{method="POST",route="\/auth\/login",status="200"\} 1/);
    assert.match(text, /tessera_errors_total\{code="refresh_token_malformed"\} 1/);
    assert.match(text, /tessera_sessions_revoked_total 1/);
    assert.doesNotMatch(text, /tsr_|eyJ/);
  });
});

describe("TESSERA_METRICS_ADDRESS and TESSERA_DOCS", () => {
  it("serves /metrics on a listener of its own, not on the API port, and closes it with the server", async () => {
    const server = await startServer({ metricsAddress: "127.0.0.1:0" });
    let closed = false;
    try {
      const address = server.app.metricsServer?.address();
      assert.ok(address && typeof address === "object", "the metrics listener is up once the server is");
      const metricsUrl = `http://127.0.0.1:${address.port}`;
      assert.notEqual(metricsUrl, server.url);
      await registerAndLogin(server.url, "scraped");
      const onApi = await fetch(`${server.url}/metrics`);
      assert.equal(onApi.status, 404);
      const response = await fetch(`${metricsUrl}/metrics`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("cache-control"), "no-store");
      const text = await response.text();
      assert.match(text, /tessera_http_requests_total\{method="POST",route="\/auth\/login",status="200"\} 1/);
      assert.match(text, /tessera_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
      assert.equal((await fetch(`${metricsUrl}/auth/me`)).status, 404, "the listener serves /metrics alone");
      await server.close();
      closed = true;
      await assert.rejects(fetch(`${metricsUrl}/metrics`), "closed with the server");
    } finally {
      if (!closed) await server.close();
    }
  });

  it("serves /metrics nowhere when off", async () => {
    const server = await startServer({ metricsAddress: "off" });
    try {
      assert.equal(server.app.metricsServer, null);
      assert.equal((await fetch(`${server.url}/metrics`)).status, 404);
    } finally {
      await server.close();
    }
  });

  it("refuses to start when the metrics address is taken", async () => {
    const first = await startServer({ metricsAddress: "127.0.0.1:0" });
    try {
      const taken = first.app.metricsServer?.address();
      assert.ok(taken && typeof taken === "object");
      const dir = temporaryDirectory();
      const second = await createServer({
        databaseUrl: `sqlite:${dir.path}/second.db`,
        secret: "test-secret-test-secret-test-secret-0123456789",
        metricsAddress: `127.0.0.1:${taken.port}`,
        logger: false,
      });
      await assert.rejects(second.listen({ host: "127.0.0.1", port: 0 }), /EADDRINUSE/);
      await second.close();
      dir.remove();
    } finally {
      await first.close();
    }
  });

  it("serves neither /docs nor /openapi.json when docs are off", async () => {
    const server = await startServer({ docs: false });
    try {
      assert.equal((await fetch(`${server.url}/docs`)).status, 404);
      assert.equal((await fetch(`${server.url}/openapi.json`)).status, 404);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    } finally {
      await server.close();
    }
  });
});
