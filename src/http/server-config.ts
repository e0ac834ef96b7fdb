import { isIP } from "node:net";
import { parseDurationSeconds } from "../core/duration.js";
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
   * allow ten times that per client IP. Default 30; 0 turns every rate limit off.
   */
  readonly rateLimitPerMinute?: number;
  /**
   * Failed logins per client IP per hour, whatever the usernames, so one address cannot try one
   * password on many accounts (spraying); refused logins stop once it is reached. Default 30; 0: no cap.
   */
  readonly ipLoginFailuresPerHour?: number;
  /**
   * Failed logins of one account in a row, from any IPs, before its logins are slowed down: then
   * one attempt per second, the wait doubling with each further failure up to `accountMaxDelay`.
   * A success resets it; so do 24 hours without a failure. Never a lockout. Default 5; 0: never slowed.
   */
  readonly accountFailuresBeforeDelay?: number;
  /** The longest wait between attempts on a slowed-down account, `"15m"` or seconds, 1 s to 1 day. Default `15m`. */
  readonly accountMaxDelay?: string | number;
  /**
   * Which `X-Forwarded-For` entries to believe: a hop count (`1`: the entry added by the one proxy
   * in front) or the addresses and CIDRs of the proxies (`"10.0.0.0/8,127.0.0.1"`, `loopback`).
   * `true` is refused: it would let any client pick its own IP. A hop count also trusts whoever
   * connects directly, so prefer addresses unless only the proxies can reach this port.
   * Default `false`: the socket's address is the client's.
   */
  readonly trustProxy?: false | number | string | readonly string[];
  /** pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Default `info`. */
  readonly logLevel?: string;
  /**
   * Where `/metrics` is served: unset on the API port; `host:port` (`"127.0.0.1:9464"`,
   * `"[::1]:9464"`) on a listener of its own, started and stopped with the server; `off` nowhere.
   */
  readonly metricsAddress?: string;
  /** Serve the API documentation, `/docs` and `/openapi.json`. Default true (`on`). */
  readonly docs?: boolean;
  /**
   * How long `tessera serve` lets requests in flight finish after SIGTERM or SIGINT, `"10s"` or
   * seconds, 0 to 10 minutes; then it closes the connections still open and exits. Default `10s`.
   */
  readonly shutdownTimeout?: string | number;
  /**
   * Cookie mode for browser apps: login and refresh put the refresh token in an `HttpOnly`,
   * `Secure`, `SameSite=Strict` cookie instead of the JSON body, and `/auth/refresh` and
   * `/auth/logout` read it from there. Default false (`off`).
   */
  readonly cookieMode?: boolean;
  /**
   * With `cookieMode`: the origins (`https://app.example.com`) whose pages may send state-changing
   * `/auth/*` requests with the cookie, as a list or comma-separated; origins other than the
   * issuer's also get CORS answers with credentials. Default: the issuer's origin alone.
   */
  readonly cookieOrigins?: string | readonly string[];
}

/** The settings of {@link ServerSettingsOptions} read from the environment. */
export const SERVER_SETTINGS = {
  host: { variable: "TESSERA_HOST", flag: "--host", type: "string", default: "127.0.0.1" },
  port: { variable: "TESSERA_PORT", flag: "--port", type: "integer", default: "3000" },
  rateLimitPerMinute: { variable: "TESSERA_RATE_LIMIT", type: "integer", default: "30" },
  ipLoginFailuresPerHour: { variable: "TESSERA_IP_LOGIN_FAILURES_PER_HOUR", type: "integer", default: "30" },
  accountFailuresBeforeDelay: { variable: "TESSERA_ACCOUNT_FAILURES_BEFORE_DELAY", type: "integer", default: "5" },
  accountMaxDelay: { variable: "TESSERA_ACCOUNT_MAX_DELAY", type: "string", default: "15m" },
  trustProxy: { variable: "TESSERA_TRUST_PROXY", type: "string", default: "false" },
  logLevel: { variable: "TESSERA_LOG_LEVEL", type: "string", default: "info" },
  metricsAddress: { variable: "TESSERA_METRICS_ADDRESS", type: "string", default: "the API port" },
  docs: { variable: "TESSERA_DOCS", type: "boolean", default: "on" },
  shutdownTimeout: { variable: "TESSERA_SHUTDOWN_TIMEOUT", type: "string", default: "10s" },
  cookieMode: { variable: "TESSERA_COOKIE_MODE", type: "boolean", default: "off" },
  cookieOrigins: { variable: "TESSERA_COOKIE_ORIGINS", type: "string", default: "the issuer's origin" },
} as const satisfies Record<keyof ServerSettingsOptions, SettingSpec>;

/** The options of {@link ServerSettingsOptions} that set rate limits; the Fastify plugin takes them too. */
export const RATE_LIMIT_OPTION_NAMES = [
  "rateLimitPerMinute",
  "ipLoginFailuresPerHour",
  "accountFailuresBeforeDelay",
  "accountMaxDelay",
] as const satisfies readonly (keyof ServerSettingsOptions)[];

/** The rate-limit options of {@link ServerSettingsOptions}. */
export type RateLimitOptions = Pick<ServerSettingsOptions, (typeof RATE_LIMIT_OPTION_NAMES)[number]>;

/** The options of {@link ServerSettingsOptions} that set cookie mode; the Fastify plugin takes them too. */
export const COOKIE_OPTION_NAMES = [
  "cookieMode",
  "cookieOrigins",
] as const satisfies readonly (keyof ServerSettingsOptions)[];

/** The cookie-mode options of {@link ServerSettingsOptions}. */
export type CookieModeOptions = Pick<ServerSettingsOptions, (typeof COOKIE_OPTION_NAMES)[number]>;

/** The resolved cookie mode: off, or on with the origins allowed to use the cookie. */
export interface CookieModeConfig {
  readonly cookieMode: boolean;
  /** Exact origins (`https://app.example.com`); `null`: the issuer's (or the plugin's `baseUrl`'s) origin alone. */
  readonly cookieOrigins: readonly string[] | null;
}

/** Every setting of Tessera, service and server, by option name: the one list the CLI and README follow. */
export const SETTINGS: Readonly<Record<string, SettingSpec>> = Object.freeze({
  ...SERVER_SETTINGS,
  ...SERVICE_SETTINGS,
});

/** Everything a Tessera server may be configured with. */
export interface TesseraOptions extends ServiceOptions, ServerSettingsOptions {}

/** Whose `X-Forwarded-For` entries are believed: nobody's, the nearest `n` hops', or these addresses'. */
export type TrustedProxies = false | number | readonly string[];

/** Where `/metrics` is served: on the API port, on a listener of its own, or nowhere. */
export type MetricsAddress = "api" | "off" | { readonly host: string; readonly port: number };

/** The resolved rate limits; 0 turns one off, and `rateLimitPerMinute` 0 all of them. */
export interface RateLimitConfig {
  readonly rateLimitPerMinute: number;
  readonly ipLoginFailuresPerHour: number;
  readonly accountFailuresBeforeDelay: number;
  readonly accountMaxDelaySeconds: number;
}

/** The resolved configuration of the HTTP server. */
export interface ServerConfig extends RateLimitConfig, CookieModeConfig {
  readonly host: string;
  readonly port: number;
  readonly trustProxy: TrustedProxies;
  readonly logLevel: string;
  readonly metricsAddress: MetricsAddress;
  readonly docs: boolean;
  /** How long requests in flight may take to finish on shutdown, in seconds. */
  readonly shutdownTimeoutSeconds: number;
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

const TRUST_PROXY_HELP =
  'write how many proxies are in front (e.g. 1) or their addresses and CIDRs (e.g. "10.0.0.0/8,127.0.0.1")';

// The names @fastify/proxy-addr knows besides addresses and CIDRs.
const PROXY_RANGE_NAMES = ["loopback", "linklocal", "uniquelocal"];

function isProxyAddress(text: string): boolean {
  if (PROXY_RANGE_NAMES.includes(text)) return true;
  const [address = "", prefix, ...rest] = text.split("/");
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128));
}

function trustedProxiesOf(value: ServerSettingsOptions["trustProxy"] | true): TrustedProxies {
  if (value === undefined || value === false || value === "false") return false;
  if (value === true || value === "true") {
    throw new TypeError(
      "trustProxy must not be true, which believes every X-Forwarded-For entry, so any client could pick its IP; " +
        TRUST_PROXY_HELP,
    );
  }
  if (typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value.trim()))) {
    const hops = integerIn(Number(value), 0, 100, "trustProxy (a hop count)");
    return hops === 0 ? false : hops;
  }
  const list = typeof value === "string" ? value.split(",").map((entry) => entry.trim()) : [...value];
  if (list.length === 0 || !list.every((entry) => typeof entry === "string" && isProxyAddress(entry))) {
    throw new TypeError(`trustProxy must be false, a hop count or proxy addresses: ${TRUST_PROXY_HELP}`);
  }
  return Object.freeze(list);
}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/;

function metricsAddressOf(value: string | undefined): MetricsAddress {
  if (value === undefined) return "api";
  if (value === "off") return "off";
  const match = HOST_PORT.exec(value);
  if (!match) throw new TypeError('metricsAddress must be host:port (e.g. "127.0.0.1:9464", "[::1]:9464") or off');
  const port = integerIn(Number(match[3]), 0, 65535, "metricsAddress (its port)");
  return Object.freeze({ host: match[1] ?? match[2] ?? "", port });
}

/** Applies defaults to the rate-limit options and checks each; throws `TypeError` naming the option. */
export function resolveRateLimitConfig(options: RateLimitOptions): Readonly<RateLimitConfig> {
  const accountMaxDelaySeconds = parseDurationSeconds(options.accountMaxDelay ?? "15m", "accountMaxDelay");
  if (accountMaxDelaySeconds < 1 || accountMaxDelaySeconds > 86400) {
    throw new TypeError("accountMaxDelay must be from 1 s to 1 d");
  }
  return Object.freeze({
    rateLimitPerMinute: integerIn(options.rateLimitPerMinute ?? 30, 0, 1_000_000, "rateLimitPerMinute"),
    ipLoginFailuresPerHour: integerIn(options.ipLoginFailuresPerHour ?? 30, 0, 1_000_000, "ipLoginFailuresPerHour"),
    accountFailuresBeforeDelay: integerIn(
      options.accountFailuresBeforeDelay ?? 5,
      0,
      1000,
      "accountFailuresBeforeDelay",
    ),
    accountMaxDelaySeconds,
  });
}

const COOKIE_ORIGINS_HELP = 'write exact origins such as "https://app.example.com", comma-separated';

/**
 * Applies defaults to the cookie-mode options and checks each; throws `TypeError` naming the
 * option. Origins must be exact http(s) origins (no path, no wildcard): they are echoed in
 * `Access-Control-Allow-Origin` with credentials, where `*` is never acceptable.
 */
export function resolveCookieModeConfig(options: CookieModeOptions): Readonly<CookieModeConfig> {
  const cookieMode = options.cookieMode ?? false;
  if (typeof cookieMode !== "boolean") throw new TypeError("cookieMode must be true or false (on or off)");
  if (options.cookieOrigins === undefined) return Object.freeze({ cookieMode, cookieOrigins: null });
  if (!cookieMode)
    throw new TypeError("cookieOrigins is only read with cookieMode on; turn it on or drop cookieOrigins");
  const given = options.cookieOrigins;
  const list = typeof given === "string" ? given.split(",").map((entry) => entry.trim()) : [...given];
  if (list.length === 0) throw new TypeError(`cookieOrigins must list at least one origin: ${COOKIE_ORIGINS_HELP}`);
  const origins = list.map((entry) => {
    let url: URL | null = null;
    try {
      url = typeof entry === "string" ? new URL(entry) : null;
    } catch {
      url = null;
    }
    const exact =
      url !== null &&
      !entry.includes("*") &&
      (url.protocol === "https:" || url.protocol === "http:") &&
      url.origin === entry.replace(/\/$/, "");
    if (!exact) throw new TypeError(`cookieOrigins: "${String(entry)}" is not an origin; ${COOKIE_ORIGINS_HELP}`);
    return url!.origin;
  });
  return Object.freeze({ cookieMode, cookieOrigins: Object.freeze([...new Set(origins)]) });
}

/** Applies defaults to the server's own options and checks each; throws `TypeError` naming the option. */
export function resolveServerConfig(options: ServerSettingsOptions): Readonly<ServerConfig> {
  const logLevel = options.logLevel ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new TypeError(`logLevel must be one of ${LOG_LEVELS.join(", ")}`);
  const docs = options.docs ?? true;
  if (typeof docs !== "boolean") throw new TypeError("docs must be true or false");
  const shutdownTimeoutSeconds = parseDurationSeconds(options.shutdownTimeout ?? "10s", "shutdownTimeout");
  if (shutdownTimeoutSeconds > 600) throw new TypeError("shutdownTimeout must be from 0 s to 10 m");
  return Object.freeze({
    host: options.host ?? "127.0.0.1",
    port: integerIn(options.port ?? 3000, 0, 65535, "port"),
    ...resolveRateLimitConfig(options),
    ...resolveCookieModeConfig(options),
    trustProxy: trustedProxiesOf(options.trustProxy),
    logLevel,
    metricsAddress: metricsAddressOf(options.metricsAddress),
    docs,
    shutdownTimeoutSeconds,
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
