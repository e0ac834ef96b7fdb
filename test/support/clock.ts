import type { Clock } from "../../src/core/clock.js";

/** A clock that stands still until moved. */
export class FrozenClock implements Clock {
  #now: number;

  constructor(start: Date | string = "2026-01-15T12:00:00.000Z") {
    this.#now = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  /** Moves the clock forward by `seconds`. */
  advance(seconds: number): void {
    this.#now += seconds * 1000;
  }
}
