// A Hono API (on Node) accepting Tessera access tokens.
// Run from the repository root: npm run build && node examples/hono-api/server.mjs
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createVerifier } from "tessera/verify";
import { requireRoles, tesseraAuth } from "tessera/verify/hono";

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

const app = new Hono();
const auth = tesseraAuth({ verifier, realm: "hono-api" });

app.get("/hello", auth, (c) => c.json({ message: `hello ${c.get("auth").sub}`, claims: c.get("auth") }));
app.get("/admin", auth, requireRoles("admin"), (c) => c.json({ message: "welcome, admin", claims: c.get("auth") }));

const port = Number(process.env.PORT ?? 4003);
const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, () =>
  console.log(`hono-api on http://127.0.0.1:${port} (issuer ${issuer})`),
);
process.once("SIGINT", () => server.close(() => void verifier.close()));
