// A standalone Tessera server for tests that need several real processes: configured from
// TESSERA_* variables, listening on 127.0.0.1 on a free port, which it prints as one JSON line.
import { optionsFromEnvironment } from "../../src/cli/env-options.js";
import { createServer } from "../../src/http/server.js";

const app = await createServer({ ...optionsFromEnvironment(process.env), logger: false });
await app.listen({ host: "127.0.0.1", port: 0 });
const address = app.server.address();
if (address === null || typeof address === "string") throw new Error("server has no TCP address");
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
const shutdown = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
