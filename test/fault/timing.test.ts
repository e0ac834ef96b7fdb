// Does the time of an answer tell an attacker anything? Failed logins of unknown users and of
// wrong passwords, and refreshes with unknown, revoked and expired tokens, are timed in blocks
// of one request per class in random order, so load and drift hit every class of a block
// alike. Each pair of classes is compared by the median of its within-block differences and
// that median's 95 % bootstrap interval: the test passes when even the far end of the interval
// is within a tolerance of the typical time. A negative control (a request refused before any
// work) checks that the method does see a real gap.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import type { Clock } from "../../src/core/clock.js";
import { createServer } from "../../src/http/server.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { createServices } from "../../src/service/tessera-services.js";
import { openStore } from "../../src/store/open-store.js";
import { report } from "./cluster.js";

const LOGIN_SAMPLES = Number(process.env.TESSERA_TIMING_LOGIN_SAMPLES ?? 200);
const REFRESH_SAMPLES = Number(process.env.TESSERA_TIMING_REFRESH_SAMPLES ?? 300);
const BOOTSTRAP_ROUNDS = 2000;
/** Two classes answer "alike" when their medians surely differ by less than this share of the typical time. */
const TOLERANCE = 0.25;
/** …or by less than this many milliseconds, for answers too fast for a share to mean anything (network jitter is larger). */
const FLOOR_MS = 0.5;
const PASSWORD = "correct horse battery staple";

/** Deterministic random numbers (mulberry32), so the resampling is the same on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The 95 % bootstrap interval of the median of `differences`. */
function medianInterval(differences: readonly number[], next: () => number): [number, number] {
  const resample = () => Array.from(differences, () => differences[Math.floor(next() * differences.length)]!);
  const medians = Array.from({ length: BOOTSTRAP_ROUNDS }, () => median(resample())).sort((x, y) => x - y);
  return [medians[Math.floor(BOOTSTRAP_ROUNDS * 0.025)]!, medians[Math.ceil(BOOTSTRAP_ROUNDS * 0.975) - 1]!];
}

/** How far apart two classes, timed block by block, may be for sure, and whether that is within the tolerance. */
function compare(a: readonly number[], b: readonly number[]) {
  const differences = a.map((value, block) => value - b[block]!);
  const [low, high] = medianInterval(differences, random(7));
  const typical = median([...a, ...b]);
  const worst = Math.max(Math.abs(low), Math.abs(high));
  return {
    medianMs: [Number(median(a).toFixed(3)), Number(median(b).toFixed(3))],
    medianDifferenceMs: Number(median(differences).toFixed(3)),
    differenceIntervalMs: [Number(low.toFixed(3)), Number(high.toFixed(3))],
    alike: worst < Math.max(TOLERANCE * typical, FLOOR_MS),
    // Surely different: the whole interval lies beyond the tolerance.
    apart:
      Math.min(Math.abs(low), Math.abs(high)) > Math.max(TOLERANCE * typical, FLOOR_MS) &&
      Math.sign(low) === Math.sign(high),
  };
}

/**
 * Times `samples` blocks, each one request of every class in a fresh random order; returns
 * milliseconds per class, index = block.
 */
async function timeInBlocks(
  requests: Record<string, () => Promise<number>>,
  samples: number,
  expected: Record<string, number>,
): Promise<Record<string, number[]>> {
  const names = Object.keys(requests);
  const next = random(11);
  const times: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  // A few unmeasured rounds first: JIT and caches warm for every class.
  for (const name of names) for (let i = 0; i < 5; i += 1) await requests[name]!();
  for (let block = 0; block < samples; block += 1) {
    const order = [...names];
    for (let i = order.length - 1; i > 0; i -= 1) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const name of order) {
      const started = process.hrtime.bigint();
      const status = await requests[name]!();
      const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
      assert.equal(status, expected[name], `${name} answered ${status}`);
      times[name]!.push(elapsed);
    }
  }
  return times;
}

/** A clock the test moves forward. */
class MovableClock implements Clock {
  ms = Date.now();
  now(): Date {
    return new Date(this.ms);
  }
}

describe("Timing of refusals", () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-timing-"));
  const clock = new MovableClock();
  let app: FastifyInstance;
  const tokens = { unknown: [] as string[], revoked: [] as string[], expired: [] as string[] };

  before(async () => {
    const databaseUrl = `sqlite:${join(dir, "tessera.db")}`;
    const options = {
      databaseUrl,
      secret: "timing-test-secret-0123456789-abcdefghij",
      issuer: "https://issuer.test",
      rateLimitPerMinute: 0,
    };
    const store = openStore({ url: databaseUrl });
    await store.migrate();
    // The real argon2id hasher: its cost is what must not differ.
    const services = await createServices({
      store,
      config: resolveConfig(options),
      clock,
      logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    app = await createServer({ services, rateLimitPerMinute: 0, logger: false });
    app.addHook("onClose", () => services.close());
    await app.inject({
      method: "POST",
      url: "/auth/register",
      payload: { username: "timed-user", password: PASSWORD },
    });
    // A disabled account, tried with its right password, must look like a wrong password.
    await services.admin.createUser("disabled-user", PASSWORD);
    await services.admin.disableUser("disabled-user");
    // Ten sessions revoked, ten left to expire; ten tokens that never existed. Each is presented
    // many times: refusals have no side effects.
    for (let i = 0; i < 20; i += 1) {
      const login = (
        await app.inject({
          method: "POST",
          url: "/auth/login",
          payload: { username: "timed-user", password: PASSWORD },
        })
      ).json<{ refresh_token: string }>();
      if (i % 2) {
        await app.inject({ method: "POST", url: "/auth/logout", payload: { refresh_token: login.refresh_token } });
        tokens.revoked.push(login.refresh_token);
      } else {
        tokens.expired.push(login.refresh_token);
      }
    }
    const { generateRefreshToken } = await import("../../src/core/refresh-token.js");
    for (let i = 0; i < 10; i += 1) tokens.unknown.push(generateRefreshToken());
    // Past the refresh tokens' 3 days, inside the sessions' 30.
    clock.ms += 4 * 86_400_000;
  });

  after(async () => {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const login = (username: string, password: string | undefined) => async () =>
    (
      await app.inject({
        method: "POST",
        url: "/auth/login",
        payload: password === undefined ? { username } : { username, password },
      })
    ).statusCode;

  it(`answers a failed login of an unknown user, a wrong password and a disabled account alike (${LOGIN_SAMPLES} samples each)`, async (t) => {
    const times = await timeInBlocks(
      {
        unknownUser: login("nobody-here", PASSWORD),
        wrongPassword: login("timed-user", "wrong horse battery staple"),
        disabledAccount: login("disabled-user", PASSWORD),
        control: login("timed-user", undefined),
      },
      LOGIN_SAMPLES,
      { unknownUser: 401, wrongPassword: 401, disabledAccount: 401, control: 400 },
    );
    const result = compare(times.unknownUser!, times.wrongPassword!);
    const disabled = compare(times.disabledAccount!, times.wrongPassword!);
    const control = compare(times.control!, times.wrongPassword!);
    report(t, "timing-login", {
      samples: LOGIN_SAMPLES,
      unknownVsWrongPassword: result,
      disabledVsWrongPassword: disabled,
      controlVsWrongPassword: control,
    });
    assert.ok(control.apart, "the negative control (400 before any password work) must be told apart");
    for (const compared of [result, disabled]) {
      assert.ok(
        compared.alike,
        `medians ${compared.medianMs.join(" vs ")} ms, difference interval ${compared.differenceIntervalMs.join("…")} ms`,
      );
    }
  });

  it(`answers a refresh with an unknown, a revoked and an expired token alike (${REFRESH_SAMPLES} samples each)`, async (t) => {
    const refresh = (list: string[]) => {
      let i = 0;
      return async () =>
        (
          await app.inject({
            method: "POST",
            url: "/auth/refresh",
            payload: { refresh_token: list[i++ % list.length] },
          })
        ).statusCode;
    };
    const times = await timeInBlocks(
      { unknown: refresh(tokens.unknown), revoked: refresh(tokens.revoked), expired: refresh(tokens.expired) },
      REFRESH_SAMPLES,
      { unknown: 401, revoked: 401, expired: 401 },
    );
    const pairs = {
      unknownVsRevoked: compare(times.unknown!, times.revoked!),
      unknownVsExpired: compare(times.unknown!, times.expired!),
      revokedVsExpired: compare(times.revoked!, times.expired!),
    };
    report(t, "timing-refresh", { samples: REFRESH_SAMPLES, ...pairs });
    for (const [name, result] of Object.entries(pairs)) {
      assert.ok(
        result.alike,
        `${name}: medians ${result.medianMs.join(" vs ")} ms, difference interval ${result.differenceIntervalMs.join("…")} ms`,
      );
    }
  });
});
