import { isLoopbackHost } from "../core/http-url.js";
import {
  integerIn,
  resolveServiceConfig,
  SERVICE_OPTION_NAMES,
  SERVICE_SETTINGS,
  type ServiceConfig,
  type ServiceOptions,
  type SettingSpec,
} from "../service/config.js";

/** What only the HTTP server needs; every field has a default. */
export interface ServerSettingsOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on, 0 to 65535 (0: any free port). Default `3000`. */
  readonly port?: number;
  /**
   * Login attempts per minute per client IP and username; register, refresh and `/oauth/token`
   * allow ten times that per client IP. Default 30; 0 turns limits off.
   */
  readonly rateLimitPerMinute?: number;
  /** Honour `X-Forwarded-For` from a proxy in front. Default false. */
  readonly trustProxy?: boolean;
  /** pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Default `info`. */
  readonly logLevel?: string;
}

/** The settings of {@link ServerSettingsOptions} read from the environment. */
export const SERVER_SETTINGS = {
  host: { variable: "TESSERA_HOST", flag: "--host", type: "string", default: "127.0.0.1" },
  port: { variable: "TESSERA_PORT", flag: "--port", type: "integer", default: "3000" },
  rateLimitPerMinute: { variable: "TESSERA_RATE_LIMIT", type: "integer", default: "30" },
  trustProxy: { variable: "TESSERA_TRUST_PROXY", type: "boolean", default: "false" },
  logLevel: { variable: "TESSERA_LOG_LEVEL", type: "string", default: "info" },
} as const satisfies Record<keyof ServerSettingsOptions, SettingSpec>;

/** Every setting of Tessera, service and server, by option name: the one list the CLI and README follow. */
export const SETTINGS: Readonly<Record<string, SettingSpec>> = Object.freeze({
  ...SERVER_SETTINGS,
  ...SERVICE_SETTINGS,
});

/** Everything a Tessera server may be configured with. */
export interface TesseraOptions extends ServiceOptions, ServerSettingsOptions {}

/** The resolved configuration of the HTTP server. */
export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly rateLimitPerMinute: number;
  readonly trustProxy: boolean;
  readonly logLevel: string;
}

/** The resolved, frozen configuration of a whole server: the service's and the HTTP server's. */
export interface TesseraConfig extends ServiceConfig, ServerConfig {}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

const SERVER_OPTION_NAMES: readonly string[] = Object.keys(SERVER_SETTINGS);
const OPTION_NAMES = new Set<string>([...SERVER_OPTION_NAMES, ...SERVICE_OPTION_NAMES]);

/** Throws `TypeError` for an option name outside `known`; a misspelling must not pass for a default. */
export function refuseUnknownOptions(options: object, known: ReadonlySet<string>, what = "option"): void {
  for (const name of Object.keys(options)) {
    if (!known.has(name)) throw new TypeError(`unknown ${what} "${name}"`);
  }
}

/** True when `options` sets any service option (anything but the server's own). */
export function setsServiceOptions(options: object): boolean {
  return Object.keys(options).some((name) => (SERVICE_OPTION_NAMES as readonly string[]).includes(name));
}

/** Applies defaults to the server's own options and checks each; throws `TypeError` naming the option. */
export function resolveServerConfig(options: ServerSettingsOptions): Readonly<ServerConfig> {
  const logLevel = options.logLevel ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new TypeError(`logLevel must be one of ${LOG_LEVELS.join(", ")}`);
  const trustProxy = options.trustProxy ?? false;
  if (typeof trustProxy !== "boolean") throw new TypeError("trustProxy must be true or false");
  return Object.freeze({
    host: options.host ?? "127.0.0.1",
    port: integerIn(options.port ?? 3000, 0, 65535, "port"),
    rateLimitPerMinute: integerIn(options.rateLimitPerMinute ?? 30, 0, 1_000_000, "rateLimitPerMinute"),
    trustProxy,
    logLevel,
  });
}

/**
 * Applies defaults to `options` and checks every value once. Never mutates `options`; throws
 * `TypeError` naming the option for an unknown name or any bad value instead of falling back,
 * and for a host other than loopback without a secret (development mode).
 */
export function resolveConfig(options: TesseraOptions = {}): Readonly<TesseraConfig> {
  refuseUnknownOptions(options, OPTION_NAMES);
  const server = resolveServerConfig(options);
  const host = server.host.includes(":") ? `[${server.host}]` : server.host;
  const service = resolveServiceConfig(options, `http://${host}:${server.port}`);
  // Development mode keeps the secret sealing the keys in the database: serve it to this machine only.
  if (service.developmentMode && !isLoopbackHost(server.host)) {
    throw new TypeError(
      `secret is required to listen on ${server.host}, which is not loopback; ` +
        "generate one with: openssl rand -base64 32",
    );
  }
  return Object.freeze({ ...service, ...server });
}
