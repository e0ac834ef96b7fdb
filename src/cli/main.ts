#!/usr/bin/env node
import { parseArgs } from "node:util";
import { createServer } from "../http/server.js";
import { resolveConfig, type TesseraOptions } from "../service/config.js";
import { openStore } from "../store/open-store.js";
import { optionsFromEnvironment } from "./env-options.js";

const USAGE = `Usage: tessera <command> [options]

Commands:
  serve     Run the HTTP server (migrates the database first)
  migrate   Create or upgrade the database schema, then exit
  purge     Delete expired refresh tokens and ended sessions in batches

Options of serve:
  --host <host>        TESSERA_HOST          (default 127.0.0.1)
  --port <port>        TESSERA_PORT          (default 3000)
  --database <url>     TESSERA_DATABASE_URL  (default sqlite:./data/tessera.db)
  --issuer <url>       TESSERA_ISSUER        (default http://{host}:{port})
  --audience <name>    TESSERA_AUDIENCE      (default tessera)
migrate and purge take --database.
Other settings come from TESSERA_* variables; see README.md.
`;

type Flags = { host?: string; port?: string; database?: string; issuer?: string; audience?: string; help?: boolean; "batch-size"?: string };

function optionsFrom(flags: Flags): TesseraOptions {
  const options: Record<string, unknown> = { ...optionsFromEnvironment(process.env) };
  if (flags.host !== undefined) options.host = flags.host;
  if (flags.port !== undefined) {
    if (!/^\d+$/.test(flags.port)) throw new TypeError("--port must be a whole number");
    options.port = Number(flags.port);
  }
  if (flags.database !== undefined) options.databaseUrl = flags.database;
  if (flags.issuer !== undefined) options.issuer = flags.issuer;
  if (flags.audience !== undefined) options.audience = flags.audience;
  return options;
}

async function serve(options: TesseraOptions): Promise<void> {
  const app = await createServer(options);
  const config = resolveConfig(options);
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down");
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  await app.listen({ host: config.host, port: config.port });
}

async function migrate(options: TesseraOptions): Promise<void> {
  const config = resolveConfig(options);
  const store = openStore({ url: config.databaseUrl, poolSize: 1 });
  try {
    await store.migrate();
    process.stdout.write(`migrated ${store.kind} database\n`);
  } finally {
    await store.close();
  }
}

async function purge(options: TesseraOptions, batchSize: number): Promise<void> {
  const config = resolveConfig(options);
  const store = openStore({ url: config.databaseUrl, poolSize: 1 });
  // Revoked sessions stay listed until their access tokens have expired, for the revocation feed.
  const before = new Date(Date.now() - config.accessTokenTtlSeconds * 1000);
  let tokens = 0;
  let sessions = 0;
  try {
    await store.migrate();
    for (;;) {
      const batch = await store.deleteExpired(before, batchSize);
      tokens += batch.refreshTokens;
      sessions += batch.sessions;
      if (batch.refreshTokens === 0 && batch.sessions === 0) break;
    }
    process.stdout.write(`purged ${tokens} refresh tokens and ${sessions} sessions\n`);
  } finally {
    await store.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      database: { type: "string" },
      issuer: { type: "string" },
      audience: { type: "string" },
      "batch-size": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(USAGE);
    return;
  }
  const options = optionsFrom(values);
  switch (command) {
    case "serve":
      return serve(options);
    case "migrate":
      return migrate(options);
    case "purge": {
      const batch = values["batch-size"] ?? "1000";
      if (!/^\d+$/.test(batch) || Number(batch) < 1) throw new TypeError("--batch-size must be a positive whole number");
      return purge(options, Number(batch));
    }
    default:
      throw new TypeError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`tessera: ${message}\n`);
  process.exitCode = error instanceof TypeError ? 2 : 1;
});
