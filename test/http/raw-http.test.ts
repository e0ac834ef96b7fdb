import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { registerAndLogin, type RunningServer, startServer } from "../support/server.js";

/** Sends raw bytes and collects everything the server answers until it closes or `waitMs` passes. */
function rawExchange(port: number, chunks: string[], waitMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(answer);
    }, waitMs);
    socket.on("data", (data) => (answer += data.toString()));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.on("error", reject);
    socket.on("connect", () => {
      for (const chunk of chunks) socket.write(chunk);
    });
  });
}

function bodyOf(answer: string): { error: string; error_description: string } {
  return JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { error: string; error_description: string };
}

describe("HTTP edge cases over a raw socket", () => {
  let server: RunningServer;
  let port: number;

  before(async () => {
    server = await startServer({ requestTimeoutMs: 1000, idleTimeoutMs: 1500 });
    port = Number(new URL(server.url).port);
  });
  after(() => server.close());

  it("refuses a request with two Authorization headers, whatever their order", async () => {
    const { access_token: token } = await registerAndLogin(server.url, "doubled");
    for (const headers of [
      `Authorization: Bearer ${token}\r\nAuthorization: Bearer junk`,
      `Authorization: Basic eDp5\r\nAuthorization: Bearer ${token}`,
    ]) {
      const answer = await rawExchange(port, [
        `GET /auth/me HTTP/1.1\r\nHost: x\r\n${headers}\r\nConnection: close\r\n\r\n`,
      ]);
      assert.match(answer, /^HTTP\/1\.1 401 /);
      assert.equal(bodyOf(answer).error, "invalid_token");
    }
  });

  it("answers a malformed URL and an overlong path parameter in the contract's error shape", async () => {
    const badUrl = await rawExchange(port, ["GET /auth/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    assert.match(badUrl, /^HTTP\/1\.1 400 /);
    assert.equal(bodyOf(badUrl).error, "invalid_request");
    const long = await rawExchange(port, [
      `DELETE /auth/sessions/${"a".repeat(300)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ]);
    assert.match(long, /^HTTP\/1\.1 414 /);
    assert.equal(bodyOf(long).error, "invalid_request");
    assert.doesNotMatch(long, /aaaaaaaa/, "the path is not echoed");
  });

  it("closes a connection whose body never finishes arriving", async () => {
    const started = Date.now();
    await rawExchange(
      port,
      ['POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"'],
      6000,
    );
    assert.ok(Date.now() - started < 5000, "closed by the server, not by the test");
  });

  it("answers 408 when the headers never finish arriving", async () => {
    const started = Date.now();
    const answer = await rawExchange(port, ["GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n"], 6000);
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.equal(bodyOf(answer).error, "invalid_request");
    assert.ok(Date.now() - started < 5000, "closed by the server, not by the test");
  });

  it("answers oversized headers with 431 in the contract's error shape", async () => {
    const answer = await rawExchange(port, [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20000)}\r\n\r\n`]);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.equal(bodyOf(answer).error, "invalid_request");
  });
});
