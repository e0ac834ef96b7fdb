// Logins/s at the configured argon2id cost, and the p99 of a protected route (GET /auth/me)
// and of refreshes with and without logins running on the same server.
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import BetterSqlite3 from "better-sqlite3";
import type { BenchContext, GroupResult } from "../lib/bench-context.js";
import { createBenchDatabase } from "../lib/bench-databases.js";
import { LOAD_CORE, SERVER_CORE } from "../lib/child-processes.js";
import { formatMs, formatRate, formatRatio, formatSpread, markdownTable, median } from "../lib/stats.js";
import {
  login,
  openSessions,
  PASSWORD,
  registerUser,
  startTessera,
  type TesseraProcess,
  USERNAME,
} from "../lib/tessera-process.js";
import { runWrk, type WrkResult } from "../lib/wrk-runner.js";
import { runChains } from "./refresh-group.js";

/** Connections of each load: logins, GET /auth/me, refresh chains. */
const LOGIN_CONNECTIONS = 4;
const ME_CONNECTIONS = 4;
const REFRESH_CONNECTIONS = 4;

/** The argon2id parameters of the stored hash, e.g. `m=19456,t=2,p=1`; "unknown" if unreadable. */
export function argon2Parameters(sqliteFile: string): string {
  try {
    const db = new BetterSqlite3(sqliteFile, { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare("select password_hash from users limit 1").get() as { password_hash?: string } | undefined;
      return (
        /\$(argon2\w+)\$v=\d+\$(m=\d+,t=\d+,p=\d+)\$/
          .exec(row?.password_hash ?? "")
          ?.slice(1)
          .join(" ") ?? "unknown"
      );
    } finally {
      db.close();
    }
  } catch {
    return "unknown";
  }
}

/** Loads that run together. */
interface Mix {
  readonly logins: boolean;
  readonly background: boolean;
}

interface MixResult {
  readonly logins?: WrkResult;
  readonly me?: WrkResult;
  readonly refresh?: WrkResult;
}

async function runMix(
  server: TesseraProcess,
  mix: Mix,
  seconds: number,
  accessToken: string,
  tokens: string,
): Promise<MixResult> {
  const body = JSON.stringify({ username: USERNAME, password: PASSWORD });
  const [logins, me, refresh] = await Promise.all([
    mix.logins
      ? runWrk({
          url: `${server.url}/auth/login`,
          seconds,
          connections: LOGIN_CONNECTIONS,
          script: "login.lua",
          env: { LOGIN_BODY: body },
        })
      : undefined,
    mix.background
      ? runWrk({
          url: `${server.url}/auth/me`,
          seconds,
          connections: ME_CONNECTIONS,
          headers: { Authorization: `Bearer ${accessToken}` },
        })
      : undefined,
    mix.background
      ? runChains({ name: "Tessera", child: server, url: server.url, tokens }, seconds, REFRESH_CONNECTIONS)
      : undefined,
  ]);
  for (const result of [logins, me, refresh]) {
    if (result && (result.statusErrors > 0 || result.socketErrors > 0))
      throw new Error(`login group: ${result.statusErrors} non-2xx, ${result.socketErrors} socket errors`);
  }
  return { ...(logins ? { logins } : {}), ...(me ? { me } : {}), ...(refresh ? { refresh } : {}) };
}

export async function runLoginGroup(context: BenchContext): Promise<GroupResult> {
  const { login: settings, workDir } = context.settings;
  const database = await createBenchDatabase("sqlite", "login", workDir);
  const server = await startTessera({ databaseUrl: database.url, pinned: false });
  try {
    await registerUser(server.url);
    const tokens = join(workDir, "login-group.tokens");
    writeFileSync(
      tokens,
      `${(await openSessions(server.url, REFRESH_CONNECTIONS * (2 * settings.rounds + 4))).join("\n")}\n`,
    );
    const accessToken = (await login(server.url)).access_token;
    server.pin(SERVER_CORE);
    const mixes = {
      alone: { logins: true, background: false },
      background: { logins: false, background: true },
      both: { logins: true, background: true },
    } as const;
    const results: Record<keyof typeof mixes, MixResult[]> = { alone: [], background: [], both: [] };
    for (let round = 0; round < settings.rounds; round += 1) {
      context.log(`login: round ${round + 1} of ${settings.rounds}`);
      const order = (["alone", "background", "both"] as const).slice();
      if (round % 2 === 1) order.reverse();
      for (const name of order)
        results[name].push(await runMix(server, mixes[name], settings.seconds, accessToken, tokens));
    }
    const cost = argon2Parameters(database.location);
    const pick = (name: keyof typeof mixes, load: keyof MixResult, value: (result: WrkResult) => number) =>
      results[name].map((result) => (result[load] ? value(result[load]) : NaN));
    const rate = (name: keyof typeof mixes, load: keyof MixResult) => pick(name, load, (result) => result.okPerSecond);
    const p99 = (name: keyof typeof mixes, load: keyof MixResult) => median(pick(name, load, (result) => result.p99Ms));
    const rows = [
      [
        "POST /auth/login",
        `-c${LOGIN_CONNECTIONS}`,
        `${formatRate(median(rate("alone", "logins")))} ${formatSpread(rate("alone", "logins"))}`,
        formatMs(p99("alone", "logins")),
        `${formatRate(median(rate("both", "logins")))}`,
        formatMs(p99("both", "logins")),
        "–",
      ],
      [
        "GET /auth/me (Bearer)",
        `-c${ME_CONNECTIONS}`,
        `${formatRate(median(rate("background", "me")))}`,
        formatMs(p99("background", "me")),
        `${formatRate(median(rate("both", "me")))}`,
        formatMs(p99("both", "me")),
        formatRatio(p99("both", "me") / p99("background", "me")),
      ],
      [
        "POST /auth/refresh (chains)",
        `-c${REFRESH_CONNECTIONS}`,
        `${formatRate(median(rate("background", "refresh")))}`,
        formatMs(p99("background", "refresh")),
        `${formatRate(median(rate("both", "refresh")))}`,
        formatMs(p99("both", "refresh")),
        formatRatio(p99("both", "refresh") / p99("background", "refresh")),
      ],
    ];
    const markdown = [
      `\`tessera serve\` on SQLite, pinned to core ${SERVER_CORE} (its libuv pool, where argon2id runs, included); wrk on core ${LOAD_CORE}.`,
      `Password hashing: **${cost}** (the configured cost, read from the stored hash). One user logs in over and over.`,
      `Three mixes, ${settings.seconds} s each, ${settings.rounds} rounds, order reversed every other round: logins alone; "background" alone (GET /auth/me`,
      "with a bearer token, and never-repeated refresh chains, concurrently); background while logins run. Medians.",
      "",
      markdownTable(
        ["request", "wrk", "/s apart¹", "p99 apart¹", "/s, all three together", "p99 together", "p99 together ÷ apart"],
        rows,
      ),
      "",
      "¹ Logins: alone. GET /auth/me and refresh: the two together, without logins.",
    ].join("\n");
    return {
      name: "login",
      title: "Login",
      markdown,
      goals: [],
    };
  } finally {
    await server.stop();
    await database.drop();
  }
}
