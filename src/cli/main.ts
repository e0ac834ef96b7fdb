#!/usr/bin/env node
import { parseArgs } from "node:util";
import { isTesseraError } from "../core/errors.js";
import { publishRevocations } from "../http/revocation-publisher.js";
import { createServer } from "../http/server.js";
import { createAuthService } from "../service/create-auth-service.js";
import type { AuthService } from "../service/auth-service.js";
import type { ServiceLogger } from "../service/key-ring.js";
import { resolveConfig, type TesseraOptions } from "../service/config.js";
import { openStore } from "../store/open-store.js";
import { ENVIRONMENT_VARIABLES, optionsFromEnvironment } from "./env-options.js";

const USAGE = `Usage: tessera <command> [options]

Commands:
  serve                            Run the HTTP server (migrates the database first)
  migrate                          Create or upgrade the database schema, then exit
  purge [--batch-size N]           Delete expired refresh tokens and ended sessions in batches
  keys list                        List signing keys (kid, alg, created, retired)
  keys rotate                      Create a new signing key and retire the others
  user roles <username> <r1,r2>    Replace a user's roles
  sessions list <username>         List a user's open sessions
  sessions revoke <session-id>     Revoke one session
  sessions revoke-all <username>   Revoke every session of a user

Options of serve:
  --host <host>        TESSERA_HOST          (default 127.0.0.1)
  --port <port>        TESSERA_PORT          (default 3000)
  --database <url>     TESSERA_DATABASE_URL  (default sqlite:./data/tessera.db)
  --issuer <url>       TESSERA_ISSUER        (default http://{host}:{port})
  --audience <name>    TESSERA_AUDIENCE      (default tessera)
Every command takes --database.
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
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    // Close what start-up opened (database pool, Redis) so the process can exit.
    await app.close();
    throw error;
  }
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

const cliLogger: ServiceLogger = {
  info: () => undefined,
  warn: (object, message) => process.stderr.write(`warning: ${message} ${JSON.stringify(object)}\n`),
  error: (object, message) => process.stderr.write(`error: ${message} ${JSON.stringify(object)}\n`),
};

// With TESSERA_REDIS_URL, revocations made here reach subscribed verifiers at once, as the
// server's do; without it (or with Redis down) verifiers see them at their next feed poll.
async function withService(options: TesseraOptions, work: (service: AuthService) => Promise<unknown>): Promise<void> {
  const service = await createAuthService(options, cliLogger);
  const { redisUrl } = service.config;
  const closePublisher = redisUrl ? publishRevocations(service, { redisUrl, logger: cliLogger, queueWhileConnecting: true }) : undefined;
  try {
    const result = await work(service);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await closePublisher?.();
    await service.close();
  }
}

async function keys(options: TesseraOptions, action: string | undefined): Promise<void> {
  if (action === "rotate") return withService(options, async (service) => ({ kid: await service.rotateSigningKey() }));
  if (action !== "list") throw new TypeError("usage: tessera keys list|rotate");
  const config = resolveConfig(options);
  const store = openStore({ url: config.databaseUrl, poolSize: 1 });
  try {
    await store.migrate();
    const rows = (await store.listSigningKeys()).map(({ kid, alg, encryption, createdAt, retiredAt }) => ({ kid, alg, encryption, createdAt, retiredAt }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } finally {
    await store.close();
  }
}

function required(value: string | undefined, usage: string): string {
  if (value === undefined || value === "") throw new TypeError(`usage: ${usage}`);
  return value;
}

async function admin(command: string, options: TesseraOptions, args: string[]): Promise<void> {
  const [action, first, second] = args;
  if (command === "user" && action === "roles") {
    const username = required(first, "tessera user roles <username> <role,role>");
    const roles = required(second, "tessera user roles <username> <role,role>").split(",").map((role) => role.trim()).filter(Boolean);
    return withService(options, (service) => service.setUserRoles(username, roles));
  }
  if (command === "sessions" && action === "list") {
    const username = required(first, "tessera sessions list <username>");
    return withService(options, (service) => service.listUserSessions(username));
  }
  if (command === "sessions" && action === "revoke") {
    const sessionId = required(first, "tessera sessions revoke <session-id>");
    return withService(options, async (service) => ({ revoked: await service.revokeSessionsAsAdmin({ sessionId }) }));
  }
  if (command === "sessions" && action === "revoke-all") {
    const username = required(first, "tessera sessions revoke-all <username>");
    return withService(options, async (service) => ({ revoked: await service.revokeSessionsAsAdmin({ username }) }));
  }
  throw new TypeError(`unknown ${command} command; see tessera --help`);
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
    case "keys":
      return keys(options, positionals[1]);
    case "user":
    case "sessions":
      return admin(command, options, positionals.slice(1));
    default:
      throw new TypeError(`unknown command "${command}"`);
  }
}

/** Adds the environment variable to a message that names an option, e.g. `accessTokenTtl (TESSERA_ACCESS_TOKEN_TTL)`. */
function withVariableName(message: string): string {
  const option = /^(\w+)/.exec(message)?.[1];
  const variable = Object.entries(ENVIRONMENT_VARIABLES).find(([, name]) => name === option)?.[0];
  return variable ? message.replace(option!, `${option} (${variable})`) : message;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = withVariableName(error instanceof Error ? error.message : String(error));
  process.stderr.write(`tessera: ${message}\n`);
  process.exitCode = error instanceof TypeError || isTesseraError(error, "invalid_request") ? 2 : 1;
});
