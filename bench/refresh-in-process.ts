// CPU per refresh without HTTP: AuthService.refresh() over one store, 32 chains at once, as the
// refresh group's wrk clients drive them; the process's CPU time divided by the refreshes.
// Password hashing is replaced by a cheap stand-in: only the logins that open the chains use it.
//
//   node --import tsx bench/refresh-in-process.ts [database url] [refreshes]
// Default (or an empty URL): a fresh SQLite file; 3000 refreshes. Prints one JSON line.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../src/http/server-config.js";
import type { PasswordHasher } from "../src/service/password-hasher.js";
import { createServices } from "../src/service/tessera-services.js";
import { openStore } from "../src/store/open-store.js";

const CHAINS = 32;
const PASSWORD = "correct horse battery staple";
const context = { ip: "127.0.0.1", userAgent: "bench" };
const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain:${password}`),
  verify: (hash, password) => Promise.resolve(hash === `plain:${password}`),
  unknownUserHash: "plain:\u0000",
};

const dir = mkdtempSync(join(tmpdir(), "tessera-refresh-in-process-"));
const databaseUrl = process.argv[2] || `sqlite:${join(dir, "tessera.db")}`;
const refreshes = Number(process.argv[3] ?? 3000);
const store = openStore({ url: databaseUrl });
await store.migrate();
const services = await createServices({
  store,
  config: resolveConfig({
    databaseUrl,
    secret: "bench-in-process-secret-0123456789-abcdef",
    issuer: "https://bench.test",
  }),
  hasher: plainHasher,
  logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
});
try {
  const username = `bench${Date.now().toString(36)}`;
  await services.auth.register(username, PASSWORD, context);
  const held: string[] = [];
  for (let i = 0; i < CHAINS; i += 1) held.push((await services.auth.login(username, PASSWORD, context)).refreshToken);
  let started = 0;
  const wall = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    held.map(async (_, chain) => {
      while (started < refreshes) {
        started += 1;
        held[chain] = (await services.auth.refresh(held[chain]!, context)).refreshToken;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  console.log(
    JSON.stringify({
      store: store.kind,
      refreshes: started,
      wallMsPerRefresh: Number(((performance.now() - wall) / started).toFixed(3)),
      cpuUsPerRefresh: Math.round((used.user + used.system) / started),
    }),
  );
} finally {
  await services.close();
  rmSync(dir, { recursive: true, force: true });
}
