import type { TesseraOptions } from "../service/config.js";

/** The `TESSERA_*` variables and the option each sets. The names are relied on by scripts. */
export const ENVIRONMENT_VARIABLES = {
  TESSERA_HOST: "host",
  TESSERA_PORT: "port",
  TESSERA_DATABASE_URL: "databaseUrl",
  TESSERA_DATABASE_POOL_SIZE: "databasePoolSize",
  TESSERA_SECRET: "secret",
  TESSERA_ISSUER: "issuer",
  TESSERA_AUDIENCE: "audience",
  TESSERA_SIGNING_ALG: "signingAlgorithm",
  TESSERA_HS256_SECRET: "hs256Secret",
  TESSERA_ACCESS_TOKEN_TTL: "accessTokenTtl",
  TESSERA_REFRESH_TOKEN_TTL: "refreshTokenTtl",
  TESSERA_SESSION_TTL: "sessionTtl",
  TESSERA_REFRESH_GRACE: "refreshGrace",
  TESSERA_CLOCK_SKEW: "clockSkew",
  TESSERA_REDIS_URL: "redisUrl",
  TESSERA_RATE_LIMIT: "rateLimitPerMinute",
  TESSERA_TRUST_PROXY: "trustProxy",
  TESSERA_LOG_LEVEL: "logLevel",
} as const satisfies Record<string, keyof TesseraOptions>;

function integer(value: string, name: string): number {
  if (!/^\d+$/.test(value)) throw new TypeError(`${name} must be a whole number`);
  return Number(value);
}

function boolean(value: string, name: string): boolean {
  if (/^(1|true|yes)$/i.test(value)) return true;
  if (/^(0|false|no)$/i.test(value)) return false;
  throw new TypeError(`${name} must be true or false`);
}

/** Reads {@link TesseraOptions} from `TESSERA_*` variables (and `NODE_ENV`). Empty variables count as unset. */
export function optionsFromEnvironment(env: NodeJS.ProcessEnv): TesseraOptions {
  const options: Record<string, unknown> = { production: env.NODE_ENV === "production" };
  for (const [variable, option] of Object.entries(ENVIRONMENT_VARIABLES)) {
    const value = env[variable];
    if (value === undefined || value === "") continue;
    switch (option) {
      case "port":
      case "databasePoolSize":
      case "rateLimitPerMinute":
        options[option] = integer(value, variable);
        break;
      case "trustProxy":
        options[option] = boolean(value, variable);
        break;
      default:
        options[option] = value;
    }
  }
  return options;
}
