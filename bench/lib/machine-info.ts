// Machine, versions and date for docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { createRequire } from "node:module";
import { serverVersion } from "./bench-databases.js";
import { ROOT } from "./tessera-process.js";
import { wrkVersion } from "./wrk-runner.js";

const require = createRequire(`${ROOT}package.json`);

/** The installed version of `name` (from its package.json), or "?". */
function versionOf(name: string): string {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8")) as { version: string }).version;
  } catch {
    try {
      // Packages whose "exports" hide package.json: find it next to the entry point.
      const entry = require.resolve(name);
      const root = entry.slice(0, entry.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}/`.length);
      return (JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { version: string }).version;
    } catch {
      return "?";
    }
  }
}

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "Linux";
  } catch {
    return "Linux";
  }
}

function gitCommit(): string {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty =
      execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: ROOT, encoding: "utf8" }).trim() !== "";
    return dirty ? `${commit} (src/ modified)` : commit;
  } catch {
    return "?";
  }
}

/** One-line load averages, e.g. "1.02 0.87 0.55". */
export function loadAverages(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(" ");
}

/** The "Machine and versions" table rows. */
export async function machineRows(): Promise<string[][]> {
  const cpu = cpus();
  const packages = [
    "fastify",
    "express",
    "hono",
    "@hono/node-server",
    "fast-jwt",
    "@fastify/jwt",
    "jsonwebtoken",
    "jose",
    "kysely",
    "better-sqlite3",
    "pg",
    "mysql2",
    "@node-rs/argon2",
  ];
  return [
    ["date", new Date().toISOString().replace(/\.\d+Z$/, "Z")],
    [
      "machine",
      `${cpu.length} × ${cpu[0]?.model.trim() ?? "?"}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM; ${osName()}, Linux ${release()}`,
    ],
    [
      "Tessera",
      `${(JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { version: string }).version} at commit ${gitCommit()}`,
    ],
    ["Node.js", process.version],
    ["load generator", wrkVersion()],
    [
      "databases",
      [
        await serverVersion("postgres"),
        await serverVersion("mysql"),
        `SQLite (better-sqlite3 ${versionOf("better-sqlite3")})`,
      ]
        .filter(Boolean)
        .join("; "),
    ],
    ["packages", packages.map((name) => `${name} ${versionOf(name)}`).join(", ")],
  ];
}
