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
    const spec = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.match(spec.openapi, /^3\./);
    const expected: Array<[string, string]> = [
      ["/auth/register", "post"],
      ["/auth/login", "post"],
      ["/auth/refresh", "post"],
      ["/auth/logout", "post"],
      ["/auth/logout-all", "post"],
      ["/auth/sessions", "get"],
      ["/auth/sessions/{id}", "delete"],
      ["/auth/me", "get"],
      ["/oauth/token", "post"],
      ["/oauth/revoke", "post"],
      ["/.well-known/jwks.json", "get"],
      ["/.well-known/oauth-authorization-server", "get"],
      ["/healthz", "get"],
      ["/readyz", "get"],
    ];
    for (const [path, method] of expected) assert.ok(spec.paths[path]?.[method], `${method.toUpperCase()} ${path}`);
  });

  it("/docs serves the API documentation page", async () => {
    const response = await fetch(`${server.url}/docs`, { redirect: "follow" });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /swagger/i);
  });

  it("/metrics counts requests by route and refusals by error code, in Prometheus text format", async () => {
    const tokens = await registerAndLogin(server.url, "metered");
    await fetch(`${server.url}/auth/refresh`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: "junk" }) });
    await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: tokens.refresh_token }) });
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
