import { readFileSync } from "node:fs";
import { SETTINGS, type TesseraOptions } from "../http/server-config.js";
import type { SettingSpec } from "../service/config.js";

function integer(value: string, name: string): number {
  if (!/^\d+$/.test(value)) throw new TypeError(`${name} must be a whole number`);
  return Number(value);
}

function boolean(value: string, name: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new TypeError(`${name} must be on or off`);
}

/** `value` as the setting's type; `name` names it in errors (a variable or a flag). */
export function readSetting(spec: SettingSpec, value: string, name: string): string | number | boolean {
  switch (spec.type) {
    case "integer":
      return integer(value, name);
    case "boolean":
      return boolean(value, name);
    default:
      return value;
  }
}

/** Reads {@link TesseraOptions} from `TESSERA_*` variables (and `NODE_ENV`). Empty variables count as unset. */
export function optionsFromEnvironment(env: NodeJS.ProcessEnv): TesseraOptions {
  const options: Record<string, unknown> = { production: env.NODE_ENV === "production" };
  for (const [option, spec] of Object.entries(SETTINGS)) {
    const value = env[spec.variable];
    if (value === undefined || value === "") continue;
    options[option] = readSetting(spec, value, spec.variable);
  }
  return options;
}

/** The option a `TESSERA_*` variable sets, or `undefined`. */
export function optionOfVariable(variable: string): string | undefined {
  return Object.entries(SETTINGS).find(([, spec]) => spec.variable === variable)?.[0];
}

/** The `TESSERA_*` variable that sets `option`, or `undefined`. */
export function variableOfOption(option: string): string | undefined {
  return SETTINGS[option]?.variable;
}

/** Where a setting's value came from, as `tessera config check` reports it; flags win over env, env over the file. */
export const SETTING_SOURCES = ["default", "file", "env", "flag"] as const;

/** One of {@link SETTING_SOURCES}. */
export type SettingSource = (typeof SETTING_SOURCES)[number];

/** A setting given in a config file, the environment or a flag, as text, before its type is read. */
export interface GivenSetting {
  readonly text: string;
  readonly source: Exclude<SettingSource, "default">;
  /** What names it in messages: the flag, the variable, or the variable and the file. */
  readonly name: string;
}

/** A config file's settings by option name, and what is wrong in it. */
export interface ConfigFile {
  readonly settings: ReadonlyMap<string, GivenSetting>;
  readonly problems: readonly { readonly variable: string | null; readonly message: string }[];
}

// The JSON types a setting of each type takes; text settings also take numbers (seconds).
function fileText(spec: SettingSpec, value: unknown): string | null {
  switch (spec.type) {
    case "integer":
      return typeof value === "number" && Number.isInteger(value) && value >= 0 ? String(value) : null;
    case "boolean":
      return typeof value === "boolean" ? String(value) : null;
    default:
      return typeof value === "string" || (typeof value === "number" && Number.isInteger(value)) ? String(value) : null;
  }
}

const TYPE_NAMES = { integer: "a whole number", boolean: "true or false", string: "a string" } as const;

/**
 * Reads a config file: a JSON object whose keys are the `TESSERA_*` variable names of the
 * settings. Unknown keys and values of the wrong JSON type are problems; a file that cannot be
 * read or is not a JSON object throws `TypeError`.
 */
export function readConfigFile(path: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    const reason = error instanceof SyntaxError ? "is not valid JSON" : "cannot be read";
    throw new TypeError(`--config: ${path} ${reason}`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TypeError(`--config: ${path} must hold a JSON object of TESSERA_* settings`);
  }
  const settings = new Map<string, GivenSetting>();
  const problems: { variable: string | null; message: string }[] = [];
  for (const [variable, value] of Object.entries(json)) {
    const option = optionOfVariable(variable);
    const spec = option === undefined ? undefined : SETTINGS[option];
    if (option === undefined || spec === undefined) {
      problems.push({ variable, message: `${variable} in ${path} is not a setting` });
      continue;
    }
    const text = fileText(spec, value);
    if (text === null) {
      problems.push({ variable, message: `${variable} in ${path} must be ${TYPE_NAMES[spec.type]}` });
      continue;
    }
    settings.set(option, { text, source: "file", name: `${variable} in ${path}` });
  }
  return { settings, problems };
}

/**
 * The settings given, by option name: from `file`, overridden by non-empty `env` variables,
 * overridden by `flags` (names without `--`).
 */
export function givenSettings(
  env: NodeJS.ProcessEnv,
  flags: Readonly<Record<string, string | boolean | undefined>>,
  file: ConfigFile | null,
): Map<string, GivenSetting> {
  const given = new Map<string, GivenSetting>(file?.settings ?? []);
  for (const [option, spec] of Object.entries(SETTINGS)) {
    const value = env[spec.variable];
    if (value !== undefined && value !== "") given.set(option, { text: value, source: "env", name: spec.variable });
    const flag = spec.flag === undefined ? undefined : flags[spec.flag.slice(2)];
    if (typeof flag === "string" && spec.flag) given.set(option, { text: flag, source: "flag", name: spec.flag });
  }
  return given;
}
