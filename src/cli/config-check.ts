import { resolveConfig, SETTINGS, type TesseraConfig } from "../http/server-config.js";
import {
  type ConfigFile,
  givenSettings,
  optionOfVariable,
  readConfigFile,
  readSetting,
  type SettingSource,
} from "./env-options.js";

/** One problem `tessera config check` found: the setting it is about (when known) and what is wrong. */
export interface ConfigProblem {
  /** The option name, e.g. `accessTokenTtl`; `null` when no single setting is to blame. */
  readonly setting: string | null;
  /** Its `TESSERA_*` variable, when it has one. */
  readonly variable: string | null;
  readonly message: string;
}

/** Where one setting's value came from and what it was, secrets and URL passwords masked. */
export interface SettingOrigin {
  readonly source: SettingSource;
  /** As given (text), or the documented default. */
  readonly value: string;
}

/** What `tessera config check` prints: the effective configuration, secrets masked, and every problem. */
export interface ConfigReport {
  /** The configuration the server would run with once the faulty settings are fixed; `null` if none resolves. */
  readonly config: Record<string, unknown> | null;
  /** Every setting by its `TESSERA_*` variable: default, config file, environment or flag. */
  readonly sources: Readonly<Record<string, SettingOrigin>>;
  readonly problems: readonly ConfigProblem[];
}

/** Shown instead of a secret or a URL's password. */
export const MASK = "********";

const SECRET_FIELDS = ["secret", "hs256Secret", "introspectionSecret"] as const;
const URL_FIELDS = ["databaseUrl", "redisUrl", "smtpUrl"] as const;

/**
 * Reads every setting from `env` and `flags` (flag names without `--`; flags win) and checks them
 * all: a value of the wrong type, then each `TypeError` of `resolveConfig`, dropping the setting
 * to blame and checking again, so every problem is listed rather than the first.
 */
export function checkConfiguration(
  env: NodeJS.ProcessEnv,
  flags: Readonly<Record<string, string | boolean | undefined>> = {},
): ConfigReport {
  const problems: ConfigProblem[] = [];
  let file: ConfigFile | null = null;
  if (typeof flags.config === "string") {
    try {
      file = readConfigFile(flags.config);
    } catch (error) {
      problems.push(problemOf(null, error));
    }
  }
  for (const { variable, message } of file?.problems ?? [])
    problems.push({ setting: variable === null ? null : (optionOfVariable(variable) ?? null), variable, message });
  const given = givenSettings(env, flags, file);
  const options: Record<string, unknown> = { production: env.NODE_ENV === "production" };
  for (const [option, { text, name }] of given) {
    const spec = SETTINGS[option];
    if (!spec) continue;
    try {
      options[option] = readSetting(spec, text, name);
    } catch (error) {
      problems.push(problemOf(option, error));
    }
  }
  const sources = Object.fromEntries(
    Object.entries(SETTINGS).map(([option, spec]): [string, SettingOrigin] => {
      const setting = given.get(option);
      if (!setting) return [spec.variable, { source: "default", value: spec.default }];
      return [spec.variable, { source: setting.source, value: maskedText(option, setting.text) }];
    }),
  );
  const report = (config: Record<string, unknown> | null): ConfigReport => ({ config, sources, problems });
  // Each round drops one setting, so there are at most as many rounds as settings, plus the last.
  const rounds = Object.keys(options).length + 1;
  for (let round = 0; round < rounds; round += 1) {
    try {
      return report(maskSecrets(resolveConfig(options)));
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      const culprit = culpritOf(options, error.message);
      problems.push(problemOf(culprit, error));
      if (culprit === null) break;
      delete options[culprit];
    }
  }
  return report(null);
}

/** A setting's text as given, with a secret or a URL's password masked. */
function maskedText(option: string, text: string): string {
  if ((SECRET_FIELDS as readonly string[]).includes(option)) return MASK;
  return (URL_FIELDS as readonly string[]).includes(option) ? maskUrlPassword(text) : text;
}

/** The set option a `resolveConfig` error is about: the one it names first, else the one whose removal clears it. */
function culpritOf(options: Readonly<Record<string, unknown>>, message: string): string | null {
  const named = /^(\w+)/.exec(message)?.[1];
  if (named !== undefined && named in options) return named;
  for (const option of Object.keys(options)) {
    const { [option]: _, ...without } = options;
    try {
      resolveConfig(without);
      return option;
    } catch (error) {
      if (!(error instanceof Error) || error.message !== message) return option;
    }
  }
  return null;
}

function problemOf(setting: string | null, error: unknown): ConfigProblem {
  const variable = setting === null ? null : (SETTINGS[setting]?.variable ?? null);
  return { setting, variable, message: error instanceof Error ? error.message : String(error) };
}

/** `config` as plain JSON with every secret and every password in a URL replaced by {@link MASK}. */
export function maskSecrets(config: Readonly<TesseraConfig>): Record<string, unknown> {
  const masked: Record<string, unknown> = { ...config };
  for (const field of SECRET_FIELDS) if (masked[field] !== null) masked[field] = MASK;
  for (const field of URL_FIELDS) {
    const url = masked[field];
    if (typeof url === "string") masked[field] = maskUrlPassword(url);
  }
  return masked;
}

/** `url` with the password of its userinfo (`scheme://user:password@host`) masked. */
export function maskUrlPassword(url: string): string {
  return url.replace(/^([a-z][\w+.-]*:\/\/[^:/@]*:)[^@]*@/i, `$1${MASK}@`);
}
