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
