// Instances whose clocks differ by a few seconds, in one process: three services on one SQLite
// file, each with its own clock (a shared "true" time plus an offset), as NTP-less machines.
// The database has one clock, the true time: SQLite's is the one its stores are opened with.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import type { Clock } from "../../src/core/clock.js";
import { isTesseraError } from "../../src/core/errors.js";
import { resolveConfig } from "../../src/http/server-config.js";
import type { PasswordHasher } from "../../src/service/password-hasher.js";
import { createServices, type TesseraServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import { report } from "./cluster.js";

const GRACE_SECONDS = 10;
/** Clock offsets of the three instances, in seconds: a spread of 7 s. */
const OFFSETS: readonly number[] = [0, 4, -3];
const SPREAD_SECONDS = Math.max(...OFFSETS) - Math.min(...OFFSETS);
const context = { ip: "127.0.0.1", userAgent: "clock-test" };

/** The true time, moved by the test. */
class TrueTime {
  ms = Date.parse("2026-03-01T12:00:00.000Z");
}

class OffsetClock implements Clock {
  readonly #time: TrueTime;
  readonly #offsetMs: number;

  constructor(time: TrueTime, offsetSeconds: number) {
    this.#time = time;
    this.#offsetMs = offsetSeconds * 1000;
  }

  now(): Date {
    return new Date(this.#time.ms + this.#offsetMs);
  }
}

// Passwords are not what this test is about: a cheap stand-in keeps hundreds of logins fast.
const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain:${password}`),
  verify: (hash, password) => Promise.resolve(hash === `plain:${password}`),
  unknownUserHash: "plain:\u0000",
};

describe("Instances whose clocks differ by a few seconds", () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-clock-"));
  const time = new TrueTime();
  let services: TesseraServices[] = [];

  const startServices = async (clockSkew: number) => {
    const databaseUrl = `sqlite:${join(dir, "tessera.db")}`;
    const config = resolveConfig({
      databaseUrl,
      secret: "clock-test-secret-0123456789-abcdefghij",
      issuer: "https://issuer.test",
      refreshGrace: GRACE_SECONDS,
      clockSkew,
    });
    const started: TesseraServices[] = [];
    for (const offset of OFFSETS) {
      const store = openStore({ url: databaseUrl, clock: new OffsetClock(time, 0) });
      await store.migrate();
      started.push(
        await createServices({
          store,
          config,
          clock: new OffsetClock(time, offset),
          hasher: plainHasher,
          logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
        }),
      );
    }
    return started;
  };

  before(async () => {
    services = await startServices(0);
    await services[0]!.auth.register("clocky", "correct horse battery staple", context);
  });

  after(async () => {
    for (const service of services) await service.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Refreshes `token` on `first`, then retries it `delaySeconds` later (true time) on `second`. */
  const retry = async (first: number, second: number, delaySeconds: number) => {
    const login = await services[first]!.auth.login("clocky", "correct horse battery staple", context);
    const answered = await services[first]!.auth.refresh(login.refreshToken, context);
    time.ms += delaySeconds * 1000;
    try {
      const again = await services[second]!.auth.refresh(login.refreshToken, context);
      return { same: again.refreshToken === answered.refreshToken, code: null, successor: again.refreshToken };
    } catch (error) {
      return { same: false, code: isTesseraError(error) ? error.code : String(error), successor: null };
    }
  };

  it(`hands every retry within the ${GRACE_SECONDS} s grace window the same successor, on any pair of instances`, async (t) => {
    const seed = Number(process.env.TESSERA_FUZZ_SEED ?? 20_260_301);
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: GRACE_SECONDS * 1000 - 1 }),
        async (first, second, delayMs) => {
          runs += 1;
          const result = await retry(first, second, delayMs / 1000);
          assert.deepEqual({ same: result.same, code: result.code }, { same: true, code: null });
          // The session lives on: the successor rotates on the next instance.
          await services[(second + 1) % 3]!.auth.refresh(result.successor!, context);
        },
      ),
      { seed, numRuns: 60 },
    );
    report(t, "clock-safe-band", { offsetsSeconds: OFFSETS, graceSeconds: GRACE_SECONDS, runs });
  });

  it("measures, for each pair of instances, the longest retry delay still answered as a repeat", async (t) => {
    const limits: Record<string, number> = {};
    for (const first of [0, 1, 2]) {
      for (const second of [0, 1, 2]) {
        let longest = -1;
        for (let delay = 0; delay <= GRACE_SECONDS + SPREAD_SECONDS; delay += 1) {
          if ((await retry(first, second, delay)).same) longest = delay;
        }
        limits[`${OFFSETS[first]}s→${OFFSETS[second]}s`] = longest;
      }
    }
    report(t, "clock-repeat-limits-seconds", limits);
    // The window is judged on the database's clock alone: the same for every pair.
    for (const first of [0, 1, 2]) {
      for (const second of [0, 1, 2]) {
        assert.equal(limits[`${OFFSETS[first]}s→${OFFSETS[second]}s`], GRACE_SECONDS - 1);
      }
    }
  });

  it(`answers a retry ${GRACE_SECONDS - 2} s after the first use (inside the ${GRACE_SECONDS} s grace) as a repeat on every pair of instances`, async () => {
    for (const first of [0, 1, 2]) {
      for (const second of [0, 1, 2]) {
        const result = await retry(first, second, GRACE_SECONDS - 2);
        assert.equal(result.code, null, `${OFFSETS[first]} s → ${OFFSETS[second]} s: ${result.code}`);
      }
    }
  });

  it("accepts an access token issued by an instance whose clock is ahead only with clockSkew at least the difference", async () => {
    const ahead = await services[1]!.auth.login("clocky", "correct horse battery staple", context);
    await assert.rejects(services[0]!.auth.authenticate(ahead.accessToken), (error) =>
      isTesseraError(error, "access_token_not_yet_valid"),
    );
    const tolerant = await startServices(5);
    try {
      const principal = await tolerant[0]!.auth.authenticate(ahead.accessToken);
      assert.equal(principal.sessionId, ahead.sessionId);
    } finally {
      for (const service of tolerant) await service.close();
    }
  });
});
