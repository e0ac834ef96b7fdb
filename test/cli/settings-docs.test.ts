import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { SETTINGS } from "../../src/http/server-config.js";

/** The rows of the README's configuration table: variable → [flag cell, default cell]. */
function readmeSettings(): Map<string, [string, string]> {
  const readme = readFileSync(resolve("README.md"), "utf8");
  const section = readme.slice(
    readme.indexOf("## Configuration"),
    readme.indexOf("\n## ", readme.indexOf("## Configuration") + 1),
  );
  const rows = new Map<string, [string, string]>();
  for (const line of section.split("\n")) {
    const cells = /^\| `(TESSERA_\w+)` \| ([^|]+) \| (.+) \|$/.exec(line);
    if (cells) rows.set(cells[1]!, [cells[2]!.trim(), cells[3]!.trim()]);
  }
  return rows;
}

describe("the settings table", () => {
  it("is what the README's configuration table lists: each variable, its flag and its default", () => {
    const rows = readmeSettings();
    for (const spec of Object.values(SETTINGS)) {
      const row = rows.get(spec.variable);
      assert.ok(row, `README lists ${spec.variable}`);
      assert.equal(row[0], spec.flag ? `\`${spec.flag}\`` : "—", `${spec.variable}'s flag`);
      assert.ok(row[1].includes(spec.default.split(" ")[0]!), `${spec.variable}'s default in README: ${row[1]}`);
    }
    const known = new Set<string>(Object.values(SETTINGS).map((spec) => spec.variable));
    for (const variable of rows.keys())
      assert.ok(known.has(variable), `README lists ${variable}, which no setting reads`);
  });

  it("is what `tessera --help` lists", () => {
    const result = spawnSync(process.execPath, [resolve("dist/cli/main.js"), "--help"], { encoding: "utf8" });
    assert.equal(result.status, 0);
    for (const spec of Object.values(SETTINGS)) {
      const line = result.stdout.split("\n").find((text) => text.trim().startsWith(spec.variable));
      assert.ok(line, `--help lists ${spec.variable}`);
      if (spec.flag) assert.ok(line.includes(spec.flag), `--help gives ${spec.variable}'s flag`);
      assert.ok(line.includes(spec.default), `--help gives ${spec.variable}'s default`);
    }
  });
});
