import type { Clock } from "../../src/core/clock.js";

/** The tests' clock: it moves only when a test calls `advance()`. */
export class FrozenClock implements Clock {
  /** The instant it stands at, or `null` to follow the system clock. */
  readonly #startMs: number | null;
  #offsetMs = 0;

  /** A clock standing still at `start` (default 2026-01-15T12:00:00Z); `null`: see `onSystemTime()`. */
  constructor(start: Date | string | null = "2026-01-15T12:00:00.000Z") {
    this.#startMs = start === null ? null : new Date(start).getTime();
  }

  /**
   * A clock that reads the system clock, shifted by every `advance()`: for tests that also meet
   * tokens a real server (or `Date.now()`) stamps, which a standing clock would see as issued
   * in its future.
   */
  static onSystemTime(): FrozenClock {
    return new FrozenClock(null);
  }

  now(): Date {
    return new Date((this.#startMs ?? Date.now()) + this.#offsetMs);
  }

  /** Moves the clock forward by `seconds` (back when negative). */
  advance(seconds: number): void {
    this.#offsetMs += seconds * 1000;
  }
}
