// A Fastify API accepting Tessera access tokens.
// Run from the repository root: npm run build && node examples/fastify-api/server.mjs
import Fastify from "fastify";
import { createVerifier } from "tessera/verify";
import { requireRoles, tesseraAuth } from "tessera/verify/fastify";

const issuer = process.env.TESSERA_ISSUER ?? "http://127.0.0.1:3000";
const verifier = createVerifier({
  issuer,
  audience: process.env.TESSERA_AUDIENCE ?? "tessera",
  algorithms: [process.env.TESSERA_SIGNING_ALG ?? "ES256"],
  jwksUri: process.env.TESSERA_JWKS_URL ?? `${issuer}/.well-known/jwks.json`,
  revocation: {
    url: process.env.TESSERA_REVOCATIONS_URL ?? `${issuer}/auth/revocations`,
    intervalSeconds: 5,
    ...(process.env.TESSERA_REDIS_URL ? { redisUrl: process.env.TESSERA_REDIS_URL } : {}),
  },
});

const app = Fastify({ logger: true });
app.addHook("onClose", () => verifier.close());

app.get("/", () => ({ routes: ["/hello", "/admin"] }));

// Every route registered in this scope needs a valid token; routes outside it stay public.
await app.register(async (api) => {
  await api.register(tesseraAuth, { verifier, realm: "fastify-api" });
  api.get("/hello", (request) => ({ message: `hello ${request.auth.sub}`, claims: request.auth }));
  api.get("/admin", { preHandler: requireRoles("admin") }, (request) => ({
    message: "welcome, admin",
    claims: request.auth,
  }));
});

await app.listen({ host: "127.0.0.1", port: Number(process.env.PORT ?? 4002) });
process.once("SIGINT", () => void app.close());
