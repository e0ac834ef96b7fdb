import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { createServer } from "../../src/http/server.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { openServices } from "../../src/service/tessera-services.js";
import { createVerifier, type Verifier, type VerifierOptions } from "../../src/verify/index.js";
import { redisSkipReason, TEST_REDIS_URL } from "../support/redis.js";
import { temporaryDirectory } from "../support/server.js";
import { silentLogger } from "../support/service.js";
import { eventually, rejectionCode } from "./support.js";

const PASSWORD = "correct horse battery staple";
const context = { ip: "127.0.0.1", userAgent: "test" };

/** A real server over its own SQLite file, an admin's token, and the services behind it. */
async function startAdminServer(redisUrl?: string) {
  const dir = temporaryDirectory();
  const services = await openServices(
    resolveConfig({
      databaseUrl: `sqlite:${join(dir.path, "tessera.db")}`,
      secret: "admin-revocation-secret-0123456789-abcdefgh",
      issuer: "https://issuer.test",
      ...(redisUrl === undefined ? {} : { redisUrl }),
    }),
    silentLogger,
  );
  const app: FastifyInstance = await createServer({ services, rateLimitPerMinute: 0, logger: false });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  await services.admin.createUser("boss", PASSWORD, ["admin"]);
  const adminToken = (await services.auth.login("boss", PASSWORD, context)).accessToken;
  return {
    services,
    url: `http://127.0.0.1:${address.port}`,
    adminToken,
    close: async () => {
      await app.close();
      await services.close();
      dir.remove();
    },
  };
}

type AdminServer = Awaited<ReturnType<typeof startAdminServer>>;

function verifierOf(server: AdminServer, revocation: NonNullable<VerifierOptions["revocation"]>): Verifier {
  return createVerifier({
    issuer: server.services.config.issuer,
    audience: server.services.config.audience,
    algorithms: ["ES256"],
    jwksUri: `${server.url}/.well-known/jwks.json`,
    logger: { warn: () => undefined },
    revocation,
  });
}

async function adminCall(server: AdminServer, method: string, path: string): Promise<number> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminToken}` },
  });
  return response.status;
}

const redisSkip = await redisSkipReason();

describe("tessera/verify and the admin API", () => {
  const closing: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closing.reverse()) await close();
  });

  it("refuses a disabled user's access token once the revocation feed says so", async () => {
    const server = await startAdminServer();
    closing.push(server.close);
    const verifier = verifierOf(server, { url: `${server.url}/auth/revocations`, intervalSeconds: 0.1 });
    closing.push(() => verifier.close());
    const victim = await server.services.admin.createUser("victim", PASSWORD);
    const bystander = await server.services.admin.createUser("bystander", PASSWORD);
    const tokens = await server.services.auth.login("victim", PASSWORD, context);
    const theirs = await server.services.auth.login("bystander", PASSWORD, context);
    assert.equal((await verifier.verify(tokens.accessToken)).sub, victim.id);

    assert.equal(await adminCall(server, "POST", `/admin/users/${victim.id}/disable`), 200);
    await eventually(
      async () => (await rejectionCode(verifier.verify(tokens.accessToken))) === "access_token_revoked",
      3000,
    );
    assert.equal((await verifier.verify(theirs.accessToken)).sub, bystander.id);
  });

  it("refuses a deleted user's access token, even for a verifier that starts after the deletion", async () => {
    const server = await startAdminServer();
    closing.push(server.close);
    const victim = await server.services.admin.createUser("leaving", PASSWORD);
    const tokens = await server.services.auth.login("leaving", PASSWORD, context);
    assert.equal(await adminCall(server, "DELETE", `/admin/users/${victim.id}`), 204);
    // The session rows are gone with the user's data; the feed still lists them as revoked.
    const verifier = verifierOf(server, { url: `${server.url}/auth/revocations`, intervalSeconds: 60 });
    closing.push(() => verifier.close());
    assert.equal(await rejectionCode(verifier.verify(tokens.accessToken)), "access_token_revoked");
  });

  it("refuses a disabled user's access token at once over Redis", { skip: redisSkip }, async () => {
    const server = await startAdminServer(TEST_REDIS_URL);
    closing.push(server.close);
    const revocation = { url: `${server.url}/auth/revocations`, intervalSeconds: 3600, redisUrl: TEST_REDIS_URL };
    const verifier = verifierOf(server, revocation);
    closing.push(() => verifier.close());
    const victim = await server.services.admin.createUser("pushed", PASSWORD);
    const tokens = await server.services.auth.login("pushed", PASSWORD, context);
    await verifier.verify(tokens.accessToken);
    await eventually(() => verifier.stats().revocationChannelSubscribed);
    const started = Date.now();
    assert.equal(await adminCall(server, "POST", `/admin/users/${victim.id}/disable`), 200);
    await eventually(
      async () => (await rejectionCode(verifier.verify(tokens.accessToken))) === "access_token_revoked",
      2000,
    );
    assert.ok(Date.now() - started < 2000, "long before the next poll, an hour away");
  });
});
