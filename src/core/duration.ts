const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;
const DURATION = /^(\d{1,9})(s|m|h|d)?$/;

/**
 * Parses a duration such as `"15m"`, `"3d"`, `"10s"` or `"900"` (seconds) into whole seconds.
 * Throws `TypeError` naming `name` for anything else, so a typo never falls back to a default.
 */
export function parseDurationSeconds(value: string | number, name: string): number {
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0) return value;
    throw new TypeError(`${name} must be a non-negative whole number of seconds`);
  }
  const match = DURATION.exec(value.trim());
  if (!match) {
    throw new TypeError(`${name} must be a duration like "15m", "3d", "10s" or a number of seconds`);
  }
  const unit = (match[2] ?? "s") as keyof typeof UNIT_SECONDS;
  return Number(match[1]) * UNIT_SECONDS[unit];
}
