// Server RSS: idle after start, after one minute of a mixed load, and its growth after that
// (to minute 3 with --full, to minute 2 by default).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchContext, GoalRow, GroupResult } from "../lib/bench-context.js";
import { createBenchDatabase } from "../lib/bench-databases.js";
import { LOAD_CORE, SERVER_CORE } from "../lib/child-processes.js";
import { formatMegabytes, formatRate, markdownTable, median } from "../lib/stats.js";
import { login, openSessions, PASSWORD, registerUser, startTessera, USERNAME } from "../lib/tessera-process.js";
import { runWrk } from "../lib/wrk-runner.js";
import { runChains } from "./refresh-group.js";

const MB = 1024 * 1024;
/** Growth from minute 1 to the end that still counts as "no growth". */
const GROWTH_TOLERANCE_BYTES = 5 * MB;

/** Least-squares slope of (t, y) in y-units per second. */
function slope(points: readonly { t: number; rss: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((sum, p) => sum + p.t, 0) / n;
  const my = points.reduce((sum, p) => sum + p.rss, 0) / n;
  const num = points.reduce((sum, p) => sum + (p.t - mt) * (p.rss - my), 0);
  const den = points.reduce((sum, p) => sum + (p.t - mt) ** 2, 0);
  return num / den;
}

export async function runMemoryGroup(context: BenchContext): Promise<GroupResult> {
  const { memory, workDir, full } = context.settings;
  const database = await createBenchDatabase("sqlite", "memory", workDir);
  const server = await startTessera({ databaseUrl: database.url });
  try {
    await sleep(3000);
    const idleSamples: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      idleSamples.push(server.rssBytes());
      await sleep(500);
    }
    const idle = median(idleSamples);
    await registerUser(server.url);
    const tokens = join(workDir, "memory-group.tokens");
    writeFileSync(tokens, `${(await openSessions(server.url, 32)).join("\n")}\n`);
    const accessToken = (await login(server.url)).access_token;
    context.log(`memory: ${memory.seconds} s of mixed load`);
    const samples: { t: number; rss: number }[] = [];
    const start = Date.now();
    let done = false;
    const sampler = (async () => {
      while (!done) {
        samples.push({ t: (Date.now() - start) / 1000, rss: server.rssBytes() });
        await sleep(1000);
      }
    })();
    const body = JSON.stringify({ username: USERNAME, password: PASSWORD });
    const [logins, me, refresh] = await Promise.all([
      runWrk({
        url: `${server.url}/auth/login`,
        seconds: memory.seconds,
        connections: 1,
        script: "login.lua",
        env: { LOGIN_BODY: body, LOGIN_DELAY_MS: "250" },
      }),
      runWrk({
        url: `${server.url}/auth/me`,
        seconds: memory.seconds,
        connections: 8,
        headers: { Authorization: `Bearer ${accessToken}` },
      }),
      runChains({ name: "Tessera", child: server, url: server.url, tokens }, memory.seconds, 8),
    ]);
    done = true;
    await sampler;
    const at = (seconds: number) =>
      samples.reduce(
        (best, sample) => (Math.abs(sample.t - seconds) < Math.abs(best.t - seconds) ? sample : best),
        samples[0]!,
      ).rss;
    const minuteOne = at(60);
    const end = at(memory.seconds);
    const peak = Math.max(...samples.map((sample) => sample.rss));
    const perMinute = slope(samples.filter((sample) => sample.t >= 60)) * 60;
    const minutes = Number((memory.seconds / 60).toFixed(1));
    const growth = end - minuteOne;
    const goals: GoalRow[] = [
      {
        path: "server RSS idle",
        tessera: formatMegabytes(idle),
        reference: "—",
        ratio: idle / MB,
        goal: "< 80 MB",
        verdict: idle < 80 * MB ? "**met**" : `not met (${formatMegabytes(idle - 80 * MB)} over)`,
      },
      {
        path: "server RSS after a 1-minute mixed run",
        tessera: formatMegabytes(minuteOne),
        reference: "—",
        ratio: minuteOne / MB,
        goal: "< 150 MB",
        verdict: minuteOne < 150 * MB ? "**met**" : `not met (${formatMegabytes(minuteOne - 150 * MB)} over)`,
      },
      {
        path: `RSS growth, minute 1 → minute ${minutes}${full ? "" : " (default length; `--full` runs to minute 3)"}`,
        tessera: `${growth >= 0 ? "+" : ""}${formatMegabytes(growth)} (${(perMinute / MB).toFixed(1)} MB/min fitted)`,
        reference: "—",
        ratio: growth / MB,
        goal: `no growth (≤ ${GROWTH_TOLERANCE_BYTES / MB} MB)`,
        verdict: growth <= GROWTH_TOLERANCE_BYTES ? "**met**" : "not met",
      },
    ];
    const timeline = samples.filter(
      (sample) => Math.round(sample.t) % 15 === 0 || sample === samples[samples.length - 1],
    );
    const markdown = [
      `\`tessera serve\` on a fresh SQLite file, pinned to core ${SERVER_CORE}; RSS read from \`/proc/<pid>/status\` (VmRSS) every second.`,
      `Idle: 3 s after it answers /healthz, before any other request. Then a mixed load for ${memory.seconds} s from wrk on core ${LOAD_CORE}:`,
      "one connection logging in every 250 ms (argon2id at the configured cost), 8 connections on GET /auth/me with a bearer",
      "token, 8 connections of never-repeated refresh chains (sessions opened beforehand).",
      `${full ? "" : "This is the default 2-minute run; `npm run bench -- memory --full` runs the full 3 minutes the issue asks for."}`,
      "",
      markdownTable(
        ["measure", "value"],
        [
          ["RSS idle", formatMegabytes(idle)],
          ["RSS at minute 1 of the mixed run", formatMegabytes(minuteOne)],
          [`RSS at minute ${minutes}`, formatMegabytes(end)],
          ["peak RSS", formatMegabytes(peak)],
          ["growth after minute 1 (least-squares slope)", `${(perMinute / MB).toFixed(1)} MB/min`],
          [
            "load served",
            `${formatRate(logins.okPerSecond)} logins/s, ${formatRate(me.okPerSecond)} /auth/me/s, ${formatRate(refresh.okPerSecond)} refreshes/s`,
          ],
        ],
      ),
      "",
      `RSS over time: ${timeline.map((sample) => `${Math.round(sample.t)} s ${formatMegabytes(sample.rss)}`).join(", ")}.`,
    ].join("\n");
    return { name: "memory", title: "Memory (server RSS)", markdown, goals };
  } finally {
    await server.stop();
    await database.drop();
  }
}
