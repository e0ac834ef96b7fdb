/** The source of "now" for every time-dependent rule, so tests can freeze time. */
export interface Clock {
  now(): Date;
}

/** The wall clock. */
export const systemClock: Clock = Object.freeze({ now: () => new Date() });

/** Whole seconds since the Unix epoch, as JWT `NumericDate` (RFC 7519 §2). */
export function epochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/** `date` moved forward by `seconds`. */
export function addSeconds(date: Date, seconds: number): Date {
  return new Date(date.getTime() + seconds * 1000);
}
