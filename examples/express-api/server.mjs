// An Express API accepting Tessera access tokens.
// Run from the repository root: npm run build && node examples/express-api/server.mjs
import express from "express";
import { createVerifier } from "tessera/verify";
import { requireRoles, tesseraAuth } from "tessera/verify/express";

const issuer = process.env.TESSERA_ISSUER ?? "http://127.0.0.1:3000";
const verifier = createVerifier({
  issuer,
  audience: process.env.TESSERA_AUDIENCE ?? "tessera",
  algorithms: [process.env.TESSERA_SIGNING_ALG ?? "ES256"],
  jwksUri: process.env.TESSERA_JWKS_URL ?? `${issuer}/.well-known/jwks.json`,
  // Logged-out sessions stop working here within 5 s (or at once with TESSERA_REDIS_URL).
  revocation: {
    url: process.env.TESSERA_REVOCATIONS_URL ?? `${issuer}/auth/revocations`,
    intervalSeconds: 5,
    ...(process.env.TESSERA_REDIS_URL ? { redisUrl: process.env.TESSERA_REDIS_URL } : {}),
  },
});

const app = express();
const auth = tesseraAuth({ verifier, realm: "express-api" });

app.get("/hello", auth, (req, res) => {
  res.json({ message: `hello ${req.auth.sub}`, claims: req.auth });
});
app.get("/admin", auth, requireRoles("admin"), (req, res) => {
  res.json({ message: "welcome, admin", claims: req.auth });
});

const port = Number(process.env.PORT ?? 4001);
const server = app.listen(port, "127.0.0.1", () =>
  console.log(`express-api on http://127.0.0.1:${port} (issuer ${issuer})`),
);
process.once("SIGINT", () => server.close(() => void verifier.close()));
