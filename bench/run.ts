// `npm run bench`: each figure is reported as a ratio against a baseline measured in the same run.
import { runTokenBench } from "./token-bench.js";

const format = (value: number) => Math.round(value).toLocaleString("en-US");

process.stdout.write("Access tokens (baseline: raw node:crypto ECDSA P-256 on the same bytes)\n");
for (const row of runTokenBench()) {
  process.stdout.write(
    `  ${row.name.padEnd(30)} ${format(row.opsPerSecond).padStart(9)} ops/s   baseline ${format(row.baseline).padStart(9)} ops/s   ratio ${(row.ratio * 100).toFixed(1)}%\n`,
  );
}
