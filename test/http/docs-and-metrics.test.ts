import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";

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
