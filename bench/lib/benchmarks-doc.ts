// docs/benchmarks.md: rebuilt from a template on every run. Each group's section sits between
// markers, so running one group (`npm run bench -- verify`) replaces only that section and
// keeps the others; the goals table is rebuilt from the goals each section carries in an HTML
// comment. The hand-written notes between the `notes` markers are kept as they are.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { GoalRow, GroupName } from "./bench-context.js";
import { formatRatio, markdownTable } from "./stats.js";

/** Sections in document order, with their headings. */
const SECTIONS: readonly { name: GroupName; heading: string }[] = [
  { name: "verify", heading: "Verify ops/s (one thread, in process)" },
  { name: "routes", heading: "Protected route req/s and p99" },
  { name: "refresh", heading: "Refresh rotations/s and p99" },
  { name: "login", heading: "Login" },
  { name: "memory", heading: "Memory (server RSS)" },
  { name: "profile", heading: "Where the time goes (CPU profiles)" },
];

const begin = (name: string) => `<!-- bench:${name}:begin -->`;
const end = (name: string) => `<!-- bench:${name}:end -->`;

function between(doc: string, name: string): string | null {
  const from = doc.indexOf(begin(name));
  const to = doc.indexOf(end(name));
  if (from < 0 || to < from) return null;
  return doc.slice(from + begin(name).length, to).trim();
}

function goalsIn(section: string): GoalRow[] {
  const json = /<!-- goals: (.*) -->/.exec(section)?.[1];
  return json ? (JSON.parse(json) as GoalRow[]) : [];
}

/** A finished group's section: when, under which load, the goals it measured, its tables. */
export interface SectionUpdate {
  readonly name: GroupName;
  readonly markdown: string;
  readonly goals: readonly GoalRow[];
  readonly measuredAt: string;
  readonly seconds: number;
  readonly loadBefore: string;
  readonly loadAfter: string;
}

const HOW_TO_RUN = [
  "```sh",
  "npm run bench                              # every group but profile, about 12 minutes on 2 cores",
  "npm run bench -- verify                    # one group: verify | routes | refresh | login | memory | profile",
  "npm run bench -- refresh --stores=sqlite   # refresh on some stores only (sqlite,postgres,mysql)",
  "npm run bench -- memory --full             # the full 3-minute memory run (default 2 minutes)",
  "npm run bench -- --quick                   # a fast smoke test of the suite itself; its figures mean nothing",
  "npm run bench -- verify --no-write         # print the section instead of writing this file",
  "```",
].join("\n");

/** Rewrites `path` with the new sections and machine table, keeping everything else. */
export function writeBenchmarksDoc(
  path: string,
  machine: readonly string[][],
  updates: readonly SectionUpdate[],
): void {
  const old = existsSync(path) ? readFileSync(path, "utf8") : "";
  const sections = new Map<string, string>();
  for (const { name } of SECTIONS) sections.set(name, between(old, name) ?? "_Not measured yet._");
  for (const update of updates) {
    sections.set(
      update.name,
      [
        `<!-- goals: ${JSON.stringify(update.goals)} -->`,
        `_Measured ${update.measuredAt} in ${Math.round(update.seconds)} s; load average (1/5/15 min) before ${update.loadBefore}, after ${update.loadAfter}._`,
        "",
        update.markdown,
      ].join("\n"),
    );
  }
  const goals = SECTIONS.flatMap(({ name }) => goalsIn(sections.get(name) ?? ""));
  const goalRows = goals.map((goal) => {
    const absolute = goal.goal.startsWith("<") || goal.goal.startsWith("no growth");
    return [
      goal.path,
      goal.tessera,
      goal.reference,
      absolute ? "–" : formatRatio(goal.ratio),
      goal.goal,
      goal.verdict,
      goal.ratioPerCpu === undefined ? "–" : `${formatRatio(goal.ratioPerCpu)}: ${goal.verdictPerCpu ?? ""}`,
    ];
  });
  const notes = between(old, "notes") ?? "_No notes yet._";
  const doc = [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts). Every comparison is a ratio of two things measured in the same run on the same",
    "machine, alternating, median of several rounds: the absolute figures of these shared 2-core machines vary several-fold from",
    "day to day (and with whatever else runs on them: see each section's load average), the ratios much less. Servers run pinned",
    "to core 0 with `taskset`, the load generator (`wrk`, installed with apt-get if missing) pinned to core 1, over loopback only.",
    "Not part of `npm test` or CI.",
    "",
    HOW_TO_RUN,
    "",
    "## Machine and versions",
    "",
    begin("machine"),
    machine.length > 0 ? markdownTable(["", ""], machine) : (between(old, "machine") ?? ""),
    end("machine"),
    "",
    "## Goals of issue 11",
    "",
    "Ratio = Tessera ÷ the reference measured in the same run (median of per-round ratios), in requests or operations per",
    "second as the issue defines them. The last column is the same ratio per CPU-second used by the server process (or the",
    "verifying thread): what each would do with a core to itself. When other processes load the machine (see the load averages",
    "in each section) the per-second ratio is noisy and the per-CPU-second ratio is the better estimate for CPU-bound servers;",
    "for PostgreSQL and MariaDB, where the server waits for the database, only the per-second ratio tells the whole story.",
    "",
    begin("goals"),
    goals.length > 0
      ? markdownTable(
          ["path", "Tessera", "reference, same run", "ratio", "goal", "verdict", "per CPU-second"],
          goalRows,
        )
      : "_No goals measured yet._",
    end("goals"),
    "",
    ...SECTIONS.flatMap(({ name, heading }) => [`## ${heading}`, "", begin(name), sections.get(name)!, end(name), ""]),
    "## Notes",
    "",
    begin("notes"),
    notes,
    end("notes"),
    "",
  ].join("\n");
  writeFileSync(path, doc);
}
