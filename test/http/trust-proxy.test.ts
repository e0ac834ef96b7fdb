import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { resolveConfig } from "../../src/http/server-config.js";
import { type RunningServer, startServer } from "../support/server.js";

const PASSWORD = "correct horse battery staple";

/** Registers `username`, logs in with `forwardedFor`, and returns the IP its session list shows. */
async function sessionIpSeen(server: RunningServer, username: string, forwardedFor: string): Promise<string> {
  const headers = { "content-type": "application/json", "x-forwarded-for": forwardedFor };
  const body = JSON.stringify({ username, password: PASSWORD });
  assert.equal((await fetch(`${server.url}/auth/register`, { method: "POST", headers, body })).status, 201);
  const login = await fetch(`${server.url}/auth/login`, { method: "POST", headers, body });
  assert.equal(login.status, 200);
  const { access_token: accessToken } = (await login.json()) as { access_token: string };
  const listed = await fetch(`${server.url}/auth/sessions`, { headers: { authorization: `Bearer ${accessToken}` } });
  const { sessions } = (await listed.json()) as { sessions: { ip: string }[] };
  assert.equal(sessions.length, 1);
  return sessions[0]!.ip;
}

describe("TESSERA_TRUST_PROXY", () => {
  it("refuses a bare true, saying what to write instead", () => {
    for (const trustProxy of [true, "true", "yes", "on", "10.0.0.0/33", "", "proxy.example"]) {
      assert.throws(
        () => resolveConfig({ trustProxy } as never),
        (error: unknown) =>
          error instanceof TypeError &&
          /^trustProxy/.test(error.message) &&
          error.message.includes("10.0.0.0/8,127.0.0.1"),
        String(trustProxy),
      );
    }
  });

  it("takes a hop count or a list of addresses and CIDRs", () => {
    assert.equal(resolveConfig({ trustProxy: "1" }).trustProxy, 1);
    assert.equal(resolveConfig({ trustProxy: 2 }).trustProxy, 2);
    assert.equal(resolveConfig({ trustProxy: "false" }).trustProxy, false);
    assert.equal(resolveConfig({}).trustProxy, false);
    assert.deepEqual(resolveConfig({ trustProxy: "10.0.0.0/8, 127.0.0.1,::1,fd00::/8,loopback" }).trustProxy, [
      "10.0.0.0/8",
      "127.0.0.1",
      "::1",
      "fd00::/8",
      "loopback",
    ]);
  });

  // Every request below comes from 127.0.0.1, playing the proxy; the client's own
  // X-Forwarded-For entry (left-most) is forged, the proxy appends the address it saw.
  const forged = "6.6.6.6, 203.0.113.7";
  const servers: RunningServer[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });
  async function serverTrusting(trustProxy: string | number): Promise<RunningServer> {
    const server = await startServer({ trustProxy });
    servers.push(server);
    return server;
  }

  describe("over real sockets", () => {
    let hop: RunningServer;
    before(async () => {
      hop = await serverTrusting(1);
    });

    it("with one hop, takes the entry the proxy added, never the client's forged one", async () => {
      assert.equal(await sessionIpSeen(hop, "one-hop", forged), "203.0.113.7");
    });

    it("with two hops, takes the entry the farther proxy added", async () => {
      const twoHops = await serverTrusting(2);
      assert.equal(await sessionIpSeen(twoHops, "two-hops", `${forged}, 198.51.100.4`), "203.0.113.7");
    });

    it("with the proxy's address listed, takes the entry it added", async () => {
      const listed = await serverTrusting("10.0.0.0/8,127.0.0.1");
      assert.equal(await sessionIpSeen(listed, "listed-proxy", forged), "203.0.113.7");
    });

    it("ignores X-Forwarded-For from a peer that is not a listed proxy", async () => {
      const elsewhere = await serverTrusting("10.0.0.0/8");
      assert.equal(await sessionIpSeen(elsewhere, "direct-client", forged), "127.0.0.1");
    });
  });
});
