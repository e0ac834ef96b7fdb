// Medians, spreads and number formats of the benchmark tables.

/** The median of `values` (NaN when empty). */
export function median(values: readonly number[]): number {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** (max − min) ÷ median of `values`, as a fraction: how far apart the rounds were. */
export function spread(values: readonly number[]): number {
  const finite = values.filter((value) => Number.isFinite(value));
  if (finite.length < 2) return 0;
  return (Math.max(...finite) - Math.min(...finite)) / median(finite);
}

/** 12,345 */
export function formatCount(value: number): string {
  if (!Number.isFinite(value)) return "–";
  return Math.round(value).toLocaleString("en-US");
}

/** 12.3k for large rates, else the whole number. */
export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value >= 100_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  return formatCount(value);
}

/** 1.23 ms / 0.045 ms */
export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return "–";
  return value >= 10 ? `${value.toFixed(1)} ms` : value >= 1 ? `${value.toFixed(2)} ms` : `${value.toFixed(3)} ms`;
}

/** 0.85× */
export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "–";
}

/** ±4 % */
export function formatSpread(values: readonly number[]): string {
  return `±${Math.round((spread(values) * 100) / 2)} %`;
}

/** 123 MB (binary megabytes, as `ps` and `top` show them). */
export function formatMegabytes(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(0)} MB` : "–";
}

/** A Markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** "met" / "not met (−12 %)" for `ratio` against a lower bound `goal`. */
export function goalVerdict(ratio: number, goal: number): string {
  if (!Number.isFinite(ratio)) return "not measured";
  if (ratio >= goal) return "**met**";
  return `not met (${Math.round((1 - ratio / goal) * 100)} % short)`;
}

/**
 * The median of the per-round ratios a[i] ÷ b[i]: each round's pair was measured minutes apart
 * at most, so a machine that slows down or speeds up during the run moves both.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((value, i) => value / (b[i] ?? NaN)));
}
