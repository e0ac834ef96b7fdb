#!/usr/bin/env node
import { parseArgs } from "node:util";
import { isTesseraError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { closeGracefully, createServer } from "../http/server.js";
import { resolveConfig, SETTINGS, type TesseraOptions } from "../http/server-config.js";
import { AUDIT_QUERY_FIELDS, type AuditEventView, type AuditPage } from "../service/audit-trail.js";
import { publishRevocations } from "../service/revocation-publisher.js";
import { migrateDatabase, openServices, type TesseraServices } from "../service/tessera-services.js";
import { checkConfiguration } from "./config-check.js";
import { givenSettings, readConfigFile, readSetting, variableOfOption } from "./env-options.js";
import {
  sessionsCommand,
  USER_COMMANDS_USAGE,
  type UserCommandFlags,
  userCommand,
  type WithServices,
} from "./user-commands.js";

const COMMANDS = `Usage: tessera <command> [options]

Commands:
  serve                            Run the HTTP server (migrates the database first)
  migrate                          Create or upgrade the database schema, then exit
  purge [--batch-size N]           Delete, in batches, expired refresh tokens, ended sessions, used
                                   or expired one-time tokens (mailed links) and audit events older
                                   than TESSERA_AUDIT_RETENTION
  keys list                        List signing keys: state (next, current, retired), created, activates, retired
  keys rotate [--immediately]      Publish a new key that signs one JWKS cache lifetime later (at once: --immediately)
  audit list [--user U] [--session S] [--type T,T] [--since D] [--until D] [--limit N] [--cursor C] [--json]
                                   List audit events, newest first (U: username or id; D: 2026-01-31
                                   or a date-time with a zone); prints the cursor of the next page
${USER_COMMANDS_USAGE}
  config check                     Print the effective settings (secrets masked) and every problem; exit 1 if any
`;

/** The usage text: commands, then every setting with its variable, flag and default. */
function usage(): string {
  const specs = Object.values(SETTINGS);
  const width = Math.max(...specs.map((spec) => spec.variable.length));
  const rows = specs.map(
    (spec) => `  ${spec.variable.padEnd(width)}  ${(spec.flag ?? "").padEnd(12)} default ${spec.default}`,
  );
  return `${COMMANDS}
Settings (flags of serve win over variables, variables over --config FILE, a JSON object of these
variables that every command takes, as it takes --database):
${rows.join("\n")}
See README.md for what each setting does.
`;
}

type Flags = { help?: boolean; immediately?: boolean; config?: string; "batch-size"?: string } & UserCommandFlags &
  Record<string, string | boolean | undefined>;

// Each flag sets the option whose setting names it.
const FLAG_OPTIONS = Object.entries(SETTINGS).flatMap(([option, spec]) =>
  spec.flag ? [[spec.flag.slice(2), option, spec] as const] : [],
);

function optionsFrom(flags: Flags): TesseraOptions {
  const file = typeof flags.config === "string" ? readConfigFile(flags.config) : null;
  if (file !== null && file.problems.length > 0) {
    throw new TypeError(`${file.problems.map((problem) => problem.message).join("; ")} (see tessera config check)`);
  }
  const options: Record<string, unknown> = { production: process.env.NODE_ENV === "production" };
  for (const [option, given] of givenSettings(process.env, flags, file)) {
    const spec = SETTINGS[option];
    if (spec) options[option] = readSetting(spec, given.text, given.name);
  }
  return options;
}

async function serve(options: TesseraOptions): Promise<void> {
  const config = resolveConfig(options);
  const app = await createServer({ config });
  let closing = false;
  // Exit 0 also when the bound cut requests short: the stop was asked for and done; the warning
  // logged says which. Exit 1 when closing a pool fails or hangs past the bound.
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    const timeoutSeconds = config.shutdownTimeoutSeconds;
    app.log.info({ signal, timeoutSeconds }, "shutting down");
    setTimeout(
      () => {
        app.log.error("shutdown did not finish in time; exiting");
        process.exit(1);
      },
      (timeoutSeconds + 5) * 1000,
    ).unref();
    closeGracefully(app, timeoutSeconds).then(
      (outcome) => {
        app.log.info({ outcome }, "shut down");
        process.exit(0);
      },
      (error: unknown) => {
        app.log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
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

const cliLogger: Logger = {
  info: () => undefined,
  warn: (object, message) => process.stderr.write(`warning: ${message} ${JSON.stringify(object)}\n`),
  error: (object, message) => process.stderr.write(`error: ${message} ${JSON.stringify(object)}\n`),
};

async function migrate(options: TesseraOptions): Promise<void> {
  const kind = await migrateDatabase(resolveConfig(options), cliLogger);
  process.stdout.write(`migrated ${kind} database\n`);
}

// With TESSERA_REDIS_URL, revocations made here reach subscribed verifiers at once, as the
// server's do; without it (or with Redis down) verifiers see them at their next feed poll.
async function withServices(
  options: TesseraOptions,
  work: (services: TesseraServices) => Promise<unknown>,
): Promise<unknown> {
  // Only a serving instance elects the signing key: a command run with other settings must not
  // replace the key the servers sign with.
  const services = await openServices(resolveConfig(options), cliLogger, false);
  const { redisUrl } = services.config;
  const closePublisher = redisUrl
    ? publishRevocations(services.revocations, { redisUrl, logger: cliLogger, queueWhileConnecting: true })
    : undefined;
  try {
    return await work(services);
  } finally {
    await closePublisher?.();
    await services.close();
  }
}

/** {@link withServices} over `options`, for commands that take the work as an argument. */
function servicesFor(options: TesseraOptions): WithServices {
  return <T>(work: (services: TesseraServices) => Promise<T>) => withServices(options, work) as Promise<T>;
}

async function printJson(result: Promise<unknown>): Promise<void> {
  process.stdout.write(`${JSON.stringify(await result, null, 2)}\n`);
}

async function purge(options: TesseraOptions, batchSize: number): Promise<void> {
  const { refreshTokens, sessions, oneTimeTokens, auditEvents } = await servicesFor(options)((services) =>
    services.admin.purge(batchSize),
  );
  process.stdout.write(
    `purged ${refreshTokens} refresh tokens, ${sessions} sessions, ${oneTimeTokens} one-time tokens and ${auditEvents} audit events\n`,
  );
}

async function keys(options: TesseraOptions, action: string | undefined, immediately: boolean): Promise<void> {
  if (action === "rotate")
    return printJson(withServices(options, ({ admin }) => admin.rotateSigningKey({ immediately })));
  if (action !== "list" || immediately) throw new TypeError("usage: tessera keys list | keys rotate [--immediately]");
  return printJson(withServices(options, ({ admin }) => admin.listSigningKeys()));
}

function auditLine(event: AuditEventView): string {
  const details = event.details === null ? "" : `  ${JSON.stringify(event.details)}`;
  return (
    `${event.createdAt.toISOString()}  ${event.type.padEnd(20)}  user=${event.userId ?? "-"}  ` +
    `session=${event.sessionId ?? "-"}  ip=${event.ip ?? "-"}${details}`
  );
}

async function auditCommand(options: TesseraOptions, flags: Flags, action: string | undefined): Promise<void> {
  if (action !== "list") throw new TypeError("usage: tessera audit list [--user U] [--type T] … [--json]");
  const query: Record<string, string> = {};
  for (const flag of AUDIT_QUERY_FIELDS) {
    const value = flags[flag];
    if (typeof value === "string") query[flag] = value;
  }
  const page = (await withServices(options, ({ audit }) => audit.list(query))) as AuditPage;
  if (flags.json === true) return printJson(Promise.resolve(page));
  const lines = page.events.map(auditLine);
  if (lines.length === 0) lines.push("no audit events");
  if (page.nextCursor !== null) lines.push(`next page: --cursor ${page.nextCursor}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

// Prints the report even when settings are wrong: finding them all is the point.
function configCommand(flags: Flags, action: string | undefined): void {
  if (action !== "check") throw new TypeError("usage: tessera config check");
  const report = checkConfiguration(process.env, flags);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (report.problems.length > 0) process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...Object.fromEntries(FLAG_OPTIONS.map(([flag]) => [flag, { type: "string" as const }])),
      "batch-size": { type: "string" },
      ...Object.fromEntries(AUDIT_QUERY_FIELDS.map((flag) => [flag, { type: "string" as const }])),
      json: { type: "boolean" },
      immediately: { type: "boolean" },
      config: { type: "string" },
      help: { type: "boolean", short: "h" },
      yes: { type: "boolean" },
      force: { type: "boolean" },
      roles: { type: "string" },
      search: { type: "string" },
      role: { type: "string" },
      disabled: { type: "string" },
    },
  });
  const [command] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(usage());
    return;
  }
  if (command === "config") return configCommand(values, positionals[1]);
  const options = optionsFrom(values);
  switch (command) {
    case "serve":
      return serve(options);
    case "migrate":
      return migrate(options);
    case "purge": {
      const batch = values["batch-size"] ?? "1000";
      if (!/^\d+$/.test(batch) || Number(batch) < 1)
        throw new TypeError("--batch-size must be a positive whole number");
      return purge(options, Number(batch));
    }
    case "keys":
      return keys(options, positionals[1], values.immediately === true);
    case "audit":
      return auditCommand(options, values, positionals[1]);
    case "user":
      return userCommand(positionals.slice(1), values, servicesFor(options));
    case "sessions":
      return sessionsCommand(positionals.slice(1), values, servicesFor(options));
    default:
      throw new TypeError(`unknown command "${command}"`);
  }
}

/** Adds the environment variable to a message that names an option, e.g. `accessTokenTtl (TESSERA_ACCESS_TOKEN_TTL)`. */
function withVariableName(message: string): string {
  const option = /^(\w+)/.exec(message)?.[1];
  const variable = option === undefined ? undefined : variableOfOption(option);
  return variable ? message.replace(option!, `${option} (${variable})`) : message;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = withVariableName(error instanceof Error ? error.message : String(error));
  process.stderr.write(`tessera: ${message}\n`);
  // 2: the command line was wrong, including a user or session that does not exist.
  const usage = ["invalid_request", "user_not_found", "session_not_found"] as const;
  process.exitCode = error instanceof TypeError || usage.some((code) => isTesseraError(error, code)) ? 2 : 1;
});
