import assert from "node:assert/strict";
import { existsSync } from "node:fs";

/** Where scripts/install-browser.sh puts Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags for a quiet headless Chromium in a container. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

/** True under CI, where a missing browser is a failure rather than a skip. */
export const inCi = process.env.CI === "true";

/** The `skip` option of the browser suites: a reason when Chromium is missing locally, else false. */
export const skipWithoutChromium: string | false =
  !existsSync(CHROMIUM) && !inCi
    ? `Chromium not found at ${CHROMIUM}; run scripts/install-browser.sh to enable this test`
    : false;

/** Fails a browser suite that runs without Chromium: under CI, where it is not skipped. */
export function assertChromium(): void {
  assert.ok(existsSync(CHROMIUM), `CI=true but Chromium is missing at ${CHROMIUM}: run scripts/install-browser.sh`);
}
