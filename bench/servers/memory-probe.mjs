// Preloaded into `tessera serve` by the memory group (`node --import`): once a second, writes
// the process's process.memoryUsage() to the file named by BENCH_MEMORY_PROBE, so the RSS can
// be split into V8 heap, external memory and the rest (code, native allocations, malloc arenas).
// Plain JavaScript, no TypeScript loader: it must not add to the memory it measures.
import { writeFileSync } from "node:fs";

const file = process.env.BENCH_MEMORY_PROBE;
if (file) {
  setInterval(() => writeFileSync(file, JSON.stringify(process.memoryUsage())), 1000).unref();
}
