import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { runSoak } from "../../scripts/soak.js";
import { report, statusOf, waitFor } from "./cluster.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("scripts/cluster.ts and scripts/soak.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-scripts-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("npm run cluster starts N instances on one database, prints their URLs and stops them all on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "scripts/cluster.ts",
        "--instances",
        "2",
        "--port",
        "0",
        "--database",
        `sqlite:${join(dir, "cluster.db")}`,
        "--log-dir",
        join(dir, "logs"),
      ],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "",
          TESSERA_SECRET: "scripts-test-secret-0123456789-abcdefghij",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.resume();
    try {
      await waitFor(() => stdout.includes("Ctrl-C stops them all."), 30_000, "the cluster's URLs");
      const instances = [...stdout.matchAll(/instance \d+\s+(http:\/\/\S+)\s+pid (\d+)/g)].map((match) => ({
        url: match[1]!,
        pid: Number(match[2]),
      }));
      assert.equal(instances.length, 2);
      for (const instance of instances) assert.equal(await statusOf(`${instance.url}/readyz`), 200);
      child.kill("SIGTERM");
      const [code] = await exited;
      assert.equal(code, 0);
      assert.deepEqual(
        instances.filter((instance) => alive(instance.pid)),
        [],
        "no instance outlives the script",
      );
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("npm run soak reports throughput, errors, p99 and RSS per interval", async (t) => {
    const lines = await runSoak({
      durationMs: 3000,
      intervalMs: 1500,
      instances: 2,
      clients: 6,
      databaseUrl: `sqlite:${join(dir, "soak.db")}`,
    });
    assert.ok(lines.length >= 2);
    for (const line of lines) {
      assert.deepEqual(line.errors, {});
      assert.ok(line.requests > 0 && line.p99Ms > 0 && line.rssMb.every((mb) => mb > 0));
    }
    report(t, "soak-short", { lines });
  });
});
