import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { Secret, TOTP } from "otpauth";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { createServer } from "../../src/http/server.js";
import { freePort, temporaryDirectory } from "../support/server.js";
import { decodeQuotedPrintable, startSmtpServer, type TestSmtpServer } from "../support/smtp.js";
import { assertChromium, CHROMIUM, CHROMIUM_ARGS, skipWithoutChromium } from "./chromium.js";
import { sleep } from "./recording-fetch.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const ARTIFACTS = join(root, "test-artifacts/account-page");
const FIRST_PASSWORD = "correct horse battery staple";
const CHANGED_PASSWORD = "staple battery horse correct";
const RESET_PASSWORD = "a brand new password, reset";
const EMAIL = "robin@example.test";
const PHONE_UA =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/** What the init script below collects in each page. */
interface Audit {
  shift: number;
  violations: string[];
}

/**
 * Run in the page: every visible text whose colour against the first opaque background behind it
 * is below WCAG 2 AA (4.5:1; 3:1 for large text, 24 px or 18.66 px bold), as Chromium computed the
 * colours. A string, so the test's compiler adds nothing to it.
 */
const CONTRAST_FAILURES = `(() => {
  const rgba = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  const channel = (c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const backgroundOf = (start) => {
    for (let element = start; element; element = element.parentElement) {
      const [r, g, b, a = 1] = rgba(getComputedStyle(element).backgroundColor);
      if (a >= 1) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const element of document.body.querySelectorAll("*")) {
    const text = Array.from(element.childNodes)
      .filter((node) => node.nodeType === Node.TEXT_NODE)
      .map((node) => node.textContent || "")
      .join("")
      .trim();
    if (text === "" || element.getClientRects().length === 0) continue;
    const style = getComputedStyle(element);
    if (style.visibility === "hidden" || Number(style.opacity) === 0) continue;
    const back = backgroundOf(element);
    const [r, g, b, a = 1] = rgba(style.color);
    const fore = [r, g, b].map((c, i) => c * a + back[i] * (1 - a));
    const [light, dark] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = Number.parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) found.push(JSON.stringify(text.slice(0, 40)) + " " + ratio.toFixed(2) + ":1");
  }
  return found;
})()`;

/** Counts layout shifts not caused by input, and CSP violations, from the first paint on. */
function watchPage(): void {
  const audit: Audit = { shift: 0, violations: [] };
  (window as unknown as { audit: Audit }).audit = audit;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { value: number; hadRecentInput: boolean })[])
      if (!entry.hadRecentInput) audit.shift += entry.value;
  }).observe({ type: "layout-shift", buffered: true });
  document.addEventListener("securitypolicyviolation", (event) =>
    audit.violations.push(`${event.violatedDirective} ${event.blockedURI}`),
  );
}

/** The link of the next mail, decoded from quoted-printable as a mail client would. */
async function mailedLink(smtp: TestSmtpServer, kind: "verify" | "reset"): Promise<string> {
  const mail = await smtp.next();
  assert.deepEqual(mail.to, [EMAIL]);
  const link = new RegExp(`https?://\\S+/account#${kind}=tse_[A-Za-z0-9_-]{43}`).exec(
    decodeQuotedPrintable(mail.raw),
  )?.[0];
  assert.ok(link, `the mail carries a ${kind} link`);
  return link;
}

describe("the account page in Chromium", { skip: skipWithoutChromium }, () => {
  let app: FastifyInstance;
  let origin: string;
  let smtp: TestSmtpServer;
  let browser: Browser;
  const dir = temporaryDirectory("tessera-account-page-");
  const problems: string[] = [];
  const pages: Page[] = [];
  const audits: (Audit & { url: string })[] = [];
  const responses: { page: Page; method: string; path: string; status: number }[] = [];

  before(async () => {
    assertChromium();
    assert.ok(existsSync(join(root, "dist/account-page/manifest.json")), "the page is built by npm run build");
    smtp = await startSmtpServer();
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    // The issuer is the page's own origin: mailed links point to <issuer>/account.
    app = await createServer({
      databaseUrl: `sqlite:${join(dir.path, "tessera.db")}`,
      secret: "test-secret-test-secret-test-secret-0123456789",
      rateLimitPerMinute: 0,
      logger: false,
      issuer: origin,
      audience: "tessera",
      cookieMode: true,
      smtpUrl: smtp.url,
      mailFrom: "Tessera <no-reply@example.test>",
    });
    await app.listen({ host: "127.0.0.1", port });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    await smtp?.close();
    dir.remove();
  });

  /** A new device: its own browser context (cookies, storage), with the page open. */
  async function device(
    options: Parameters<Browser["newContext"]>[0] = {},
  ): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, ...options });
    await context.addInitScript(watchPage);
    const page = await context.newPage();
    watch(page);
    await page.goto(`${origin}/account`);
    return { context, page };
  }

  function watch(page: Page): void {
    pages.push(page);
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // A refused request is logged by Chromium itself; the page's own errors are not expected.
      if (message.type() === "error" && !message.text().startsWith("Failed to load resource"))
        problems.push(`console: ${message.text()}`);
    });
    page.on("response", (response) => {
      const url = new URL(response.url());
      responses.push({ page, method: response.request().method(), path: url.pathname, status: response.status() });
    });
  }

  /** Keeps what the page's document measured; call before it reloads or closes. */
  async function keepAudit(page: Page): Promise<void> {
    const audit = await page.evaluate(() => (window as unknown as { audit: Audit }).audit);
    audits.push({ ...audit, url: page.url() });
  }

  async function reload(page: Page): Promise<void> {
    await keepAudit(page);
    await page.reload();
  }

  const screen = (page: Page, heading: string): Locator => page.getByRole("region", { name: heading, exact: true });
  const message = (page: Page): Locator => page.locator("#message");

  async function expectScreen(page: Page, heading: string): Promise<void> {
    await screen(page, heading).waitFor();
    // Focus moves to each screen's heading.
    await page.waitForFunction(
      (name) => document.activeElement?.tagName === "H1" && document.activeElement.textContent === name,
      heading,
    );
  }

  async function expectMessage(page: Page, pattern: RegExp): Promise<void> {
    await page.waitForFunction(
      (source) => new RegExp(source).test(document.querySelector("#message")?.textContent ?? ""),
      pattern.source,
    );
  }

  /** Every input of the page has an accessible name its label gives. */
  async function checkLabels(page: Page): Promise<void> {
    const inputs = await page.locator("input").evaluateAll((elements) =>
      elements.map((element) => ({
        id: element.id,
        label: (element as HTMLInputElement).labels?.[0]?.textContent?.trim() ?? "",
      })),
    );
    assert.ok(inputs.length >= 15);
    for (const { id, label } of inputs) {
      assert.notEqual(label, "", `#${id} has a label`);
      const labelled = await page.getByLabel(label, { exact: true }).evaluateAll((found) => found.map((e) => e.id));
      assert.ok(labelled.includes(id), `getByLabel("${label}") finds #${id}`);
    }
  }

  async function checkNoHorizontalScroll(page: Page): Promise<void> {
    const { scrollWidth, clientWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
    assert.ok(scrollWidth <= clientWidth, `no horizontal scroll at ${clientWidth} px (content ${scrollWidth} px)`);
  }

  /**
   * WCAG 2 AA contrast for every visible text on the page, as Chromium computed its colours: 4.5:1,
   * 3:1 for large text (24 px, or 18.66 px bold), against the first opaque background behind it.
   */
  async function checkContrast(page: Page): Promise<void> {
    const failures = await page.evaluate<string[]>(CONTRAST_FAILURES);
    assert.deepEqual(failures, [], `text below WCAG AA contrast on ${page.url()}`);
  }

  async function shot(page: Page, name: string): Promise<void> {
    await checkContrast(page);
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  }

  async function signIn(page: Page, username: string, password: string): Promise<void> {
    const form = screen(page, "Sign in");
    await form.getByLabel("Username").fill(username);
    await form.getByLabel("Password").fill(password);
    await form.getByRole("button", { name: "Sign in" }).click();
  }

  let first: { context: BrowserContext; page: Page };

  it("signs up with an email address, and the mailed link verifies it", async () => {
    first = await device();
    const { page } = first;
    await expectScreen(page, "Sign in");
    await shot(page, "sign-in");
    await checkLabels(page);
    await page.getByRole("link", { name: "Create an account" }).click();
    await expectScreen(page, "Create an account");
    const form = screen(page, "Create an account");
    await form.getByLabel("Username").fill("robin");
    await form.getByLabel(/^Password/).fill(FIRST_PASSWORD);
    await form.getByLabel(/^Email/).fill(EMAIL);
    await form.getByRole("button", { name: "Create account" }).click();
    await expectScreen(page, "Profile");
    await expectMessage(page, /verification link is on its way/);
    await page
      .locator("#profile-email")
      .filter({ hasText: `${EMAIL} (not verified)` })
      .waitFor();
    assert.equal(await page.locator("#profile-username").textContent(), "robin");

    const link = await mailedLink(smtp, "verify");
    assert.ok(link.startsWith(`${origin}/account#verify=`));
    // The link opens in another tab of the same browser, as from a mail client.
    const tab = await first.context.newPage();
    watch(tab);
    await tab.goto(link);
    await expectMessage(tab, /^Your email address is verified\.$/);
    await expectScreen(tab, "Profile");
    assert.equal(new URL(tab.url()).hash, "#account", "the token is gone from the address bar");
    await tab
      .locator("#profile-email")
      .filter({ hasText: `${EMAIL} (verified)` })
      .waitFor();
    await keepAudit(tab);
    await tab.close();
  });

  it("changes the password, then resets it from the mailed link: the new one works, the old one not", async () => {
    const { page } = first;
    await reload(page);
    await expectScreen(page, "Profile");
    const profile = screen(page, "Profile");
    await shot(page, "account");
    if (process.env.TESSERA_UPDATE_SCREENSHOTS === "1")
      copyFileSync(join(ARTIFACTS, "account.png"), join(root, "docs/images/account.png"));
    await profile.getByLabel("Current password").fill("not the password");
    await profile.getByLabel("New password", { exact: true }).fill(CHANGED_PASSWORD);
    await profile.getByLabel("New password again").fill(CHANGED_PASSWORD);
    await profile.getByRole("button", { name: "Change password" }).click();
    await expectMessage(page, /^The current password is wrong\.$/);
    assert.equal(await profile.getByLabel("Current password").inputValue(), "", "password fields are emptied");
    await profile.getByLabel("Current password").fill(FIRST_PASSWORD);
    await profile.getByLabel("New password", { exact: true }).fill(CHANGED_PASSWORD);
    await profile.getByLabel("New password again").fill(CHANGED_PASSWORD);
    await profile.getByRole("button", { name: "Change password" }).click();
    await expectMessage(page, /Your password is changed/);
    assert.ok(!(await message(page).textContent())?.includes(CHANGED_PASSWORD));

    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await expectScreen(page, "Sign in");
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await expectScreen(page, "Forgot password");
    await screen(page, "Forgot password").getByLabel("Email address of your account").fill(EMAIL);
    await page.getByRole("button", { name: "Send a reset link" }).click();
    await expectMessage(page, /^If the address is known, a mail with a reset link is on its way\.$/);
    await shot(page, "forgot");

    const link = await mailedLink(smtp, "reset");
    await keepAudit(page);
    await page.goto(link);
    await expectScreen(page, "Choose a new password");
    assert.equal(new URL(page.url()).hash, "", "the token is gone from the address bar");
    await shot(page, "reset");
    const reset = screen(page, "Choose a new password");
    await reset.getByLabel("New password", { exact: true }).fill(RESET_PASSWORD);
    await reset.getByLabel("New password again").fill(`${RESET_PASSWORD}!`);
    await reset.getByRole("button", { name: "Set the password" }).click();
    await expectMessage(page, /^The two passwords differ\.$/);
    await reset.getByLabel("New password", { exact: true }).fill(RESET_PASSWORD);
    await reset.getByLabel("New password again").fill(RESET_PASSWORD);
    await reset.getByRole("button", { name: "Set the password" }).click();
    await expectScreen(page, "Sign in");
    await expectMessage(page, /Sign in with the new one/);

    await signIn(page, "robin", CHANGED_PASSWORD);
    await expectMessage(page, /^Wrong username or password\.$/);
    // With the keyboard only: from the focused heading, Tab to each field and Enter to submit.
    await page.locator("#h-sign-in").focus();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "sign-in-username");
    await page.keyboard.type("robin");
    await page.keyboard.press("Tab");
    await page.keyboard.type(RESET_PASSWORD);
    await page.keyboard.press("Enter");
    await expectScreen(page, "Profile");
  });

  it("signs out another device from the sessions table: its next API call is refused", async () => {
    const second = await device({ viewport: { width: 360, height: 740 }, userAgent: PHONE_UA, colorScheme: "dark" });
    await signIn(second.page, "robin", RESET_PASSWORD);
    await expectScreen(second.page, "Profile");
    await checkNoHorizontalScroll(second.page);
    await shot(second.page, "account-phone-dark");

    const { page } = first;
    await page.getByRole("link", { name: "Sessions" }).click();
    await expectScreen(page, "Sessions");
    const rows = page.locator("#sessions-body tr");
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    const phone = rows.filter({ hasText: "iOS" });
    assert.match((await phone.textContent()) ?? "", /Safari 17 on iOS 17\.5 \(mobile\)/);
    assert.match((await rows.filter({ hasText: "this device" }).textContent()) ?? "", /Chrome/);
    await shot(page, "sessions");

    await second.page.getByRole("link", { name: "Sessions" }).click();
    await expectScreen(second.page, "Sessions");
    await checkNoHorizontalScroll(second.page);
    await shot(second.page, "sessions-phone-dark");

    await phone.getByRole("button", { name: /^Sign out/ }).click();
    await expectMessage(page, /^That session is signed out\.$/);
    await phone.filter({ hasText: "Signed out" }).waitFor();

    // The phone's next call with its (unexpired) access token: the server refuses the ended session.
    const from = responses.length;
    await second.page.getByRole("link", { name: "Profile" }).click();
    await expectScreen(second.page, "Sign in");
    await expectMessage(second.page, /Your session has ended/);
    const calls = responses
      .slice(from)
      .filter((response) => response.page === second.page && response.path.startsWith("/auth/"))
      .map((response) => `${response.method} ${response.path} ${response.status}`);
    assert.deepEqual(calls.slice(0, 2), ["GET /auth/me 401", "POST /auth/refresh 401"]);
    // The page then starts afresh: it finds no session, and asks nothing with the ended one.
    assert.deepEqual(calls.slice(2), calls.slice(2).fill("POST /auth/refresh 401"));
    await checkLabels(second.page);
    await keepAudit(second.page);
    await second.context.close();
  });

  it("turns on an authenticator app: another device passes the code step, a recovery code works once", async () => {
    const { page } = first;
    await page.getByRole("link", { name: "Two-factor" }).click();
    await expectScreen(page, "Two-factor authentication");
    await page.getByRole("button", { name: "Set up an authenticator app" }).click();
    const qr = page.getByRole("img", { name: "QR code for your authenticator app" });
    await qr.waitFor();
    assert.match((await qr.getAttribute("src")) ?? "", /^data:image\/svg\+xml;charset=utf-8,/);
    const secret = ((await page.locator("#totp-secret").textContent()) ?? "").replace(/\s+/g, "");
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    await shot(page, "two-factor-setup");
    const totp = new TOTP({ secret: Secret.fromBase32(secret) });
    // A code is good once per 30 s step: each use waits for a step not used yet.
    let lastStep = -1;
    const freshCode = async (): Promise<string> => {
      while (TOTP.counter() === lastStep) await sleep(TOTP.remaining() + 50);
      lastStep = TOTP.counter();
      return totp.generate();
    };
    await page.getByLabel("6-digit code from the app").fill("000000");
    await page.getByRole("button", { name: "Turn on" }).click();
    await expectMessage(page, /.+/);
    assert.ok(await page.locator("#message.error").isVisible(), "a wrong code is refused");
    await page.getByLabel("6-digit code from the app").fill(await freshCode());
    await page.getByRole("button", { name: "Turn on" }).click();
    await expectMessage(page, /Two-factor sign-in is on/);
    const codes = await page.locator("#totp-code-list li").allTextContents();
    assert.equal(codes.length, 10);
    await shot(page, "two-factor-codes");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download as text" }).click(),
    ]);
    const saved = readFileSync(await download.path(), "utf8");
    for (const code of codes) assert.ok(saved.includes(code), "the download holds every recovery code");
    await page.getByRole("button", { name: "I saved them" }).click();
    await page.getByRole("button", { name: "Turn off" }).waitFor();
    assert.equal(await page.locator("#totp-code-list li").count(), 0, "the codes are gone from the page");

    const other = await device();
    await signIn(other.page, "robin", RESET_PASSWORD);
    await expectScreen(other.page, "Two-factor check");
    await shot(other.page, "two-factor-check");
    await other.page.getByLabel("6-digit code from your authenticator app").fill(await freshCode());
    await other.page.getByRole("button", { name: "Continue" }).click();
    await expectScreen(other.page, "Profile");
    await other.page.locator("#profile-mfa").filter({ hasText: "on" }).waitFor();
    await other.page.getByRole("button", { name: "Sign out", exact: true }).click();
    await expectScreen(other.page, "Sign in");

    for (const outcome of ["works", "is refused"]) {
      await signIn(other.page, "robin", RESET_PASSWORD);
      await expectScreen(other.page, "Two-factor check");
      await other.page.getByRole("button", { name: "Use a recovery code" }).click();
      await other.page.getByLabel("Recovery code").fill(codes[0]!);
      await other.page.getByRole("button", { name: "Continue" }).click();
      if (outcome === "works") {
        await expectScreen(other.page, "Profile");
        await other.page.getByRole("button", { name: "Sign out", exact: true }).click();
        await expectScreen(other.page, "Sign in");
      } else {
        await expectMessage(other.page, /That code did not work/);
        assert.ok(await screen(other.page, "Two-factor check").isVisible());
      }
    }
    await keepAudit(other.page);
    await other.context.close();

    // Turned off with the password; a sign-in then needs no code.
    await page.getByLabel("or password", { exact: true }).fill(RESET_PASSWORD);
    await page.getByRole("button", { name: "Turn off" }).click();
    await expectMessage(page, /^Two-factor sign-in is off\.$/);
    await page.getByRole("button", { name: "Set up an authenticator app" }).waitFor();
  });

  it("keeps nothing of one user after sign-out: the next user on the same tab sees none of it", async () => {
    const api = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${origin}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    for (const username of ["alice", "bob", "carol"])
      assert.equal((await api("/auth/register", { username, password: FIRST_PASSWORD })).status, 201);

    const shared = await device();
    const { page } = shared;
    await signIn(page, "alice", FIRST_PASSWORD);
    await expectScreen(page, "Profile");
    await page.getByRole("link", { name: "Two-factor" }).click();
    await page.getByRole("button", { name: "Set up an authenticator app" }).click();
    await page.getByRole("img", { name: "QR code for your authenticator app" }).waitFor();
    const secret = ((await page.locator("#totp-secret").textContent()) ?? "").replace(/\s+/g, "");
    await page.getByLabel("6-digit code from the app").fill(new TOTP({ secret: Secret.fromBase32(secret) }).generate());
    await page.getByRole("button", { name: "Turn on" }).click();
    await expectMessage(page, /Two-factor sign-in is on/);
    const aliceCodes = await page.locator("#totp-code-list li").allTextContents();
    assert.equal(aliceCodes.length, 10);
    assert.match((await page.locator("#totp-download").getAttribute("href")) ?? "", /^blob:/);
    await keepAudit(page);
    // Signed out with the codes still on screen.
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await expectScreen(page, "Sign in");
    await expectMessage(page, /^You are signed out\.$/);
    assert.equal(new URL(page.url()).hash, "#sign-in");

    await signIn(page, "bob", FIRST_PASSWORD);
    await expectScreen(page, "Profile");
    await page.locator("#profile-username").filter({ hasText: "bob" }).waitFor();
    await page.getByRole("link", { name: "Two-factor" }).click();
    await expectScreen(page, "Two-factor authentication");
    await page.getByRole("button", { name: "Set up an authenticator app" }).waitFor();
    assert.equal(await page.locator("#totp-code-list li").count(), 0);
    assert.ok(!(await page.locator("#totp-codes").isVisible()), "no recovery codes part");
    assert.equal(await page.locator("#totp-download").getAttribute("href"), "#two-factor", "no download link");
    const text = await page.evaluate(() => document.documentElement.outerHTML);
    for (const code of aliceCodes) assert.ok(!text.includes(code), "none of alice's codes is in the page");
    assert.ok(!text.includes(secret.slice(0, 8)), "nor her TOTP secret");
    assert.ok(!text.includes("alice"), "nor her name");

    // A session opened after the table was shown is signed out by "Sign out everywhere else" too.
    await page.getByRole("link", { name: "Sessions" }).click();
    await expectScreen(page, "Sessions");
    await page.locator("#sessions-body tr").first().waitFor();
    const late = await api("/auth/login", { username: "bob", password: FIRST_PASSWORD });
    assert.equal(late.status, 200);
    const lateCookie = late.headers.get("set-cookie")!.split(";")[0]!;
    await page.getByRole("button", { name: "Sign out everywhere else" }).click();
    await expectMessage(page, /^Signed out 1 other session\.$/);
    await page.waitForFunction(() => document.querySelectorAll("#sessions-body tr").length === 1);
    const refused = await api("/auth/refresh", {}, { cookie: lateCookie, origin, "x-tessera-csrf": "1" });
    assert.equal(refused.status, 401, "the later session is over");
    await page.getByRole("link", { name: "Profile" }).click();
    await page.locator("#profile-username").filter({ hasText: "bob" }).waitFor();

    // Another tab of the same browser signs out, then signs in as someone else: this one follows.
    const tab = await shared.context.newPage();
    watch(tab);
    await tab.goto(`${origin}/account`);
    await expectScreen(tab, "Profile");
    await keepAudit(page);
    await tab.getByRole("button", { name: "Sign out", exact: true }).click();
    await expectScreen(tab, "Sign in");
    await expectScreen(page, "Sign in");
    await expectMessage(page, /^You signed out in another tab\.$/);
    await keepAudit(page);
    await signIn(tab, "carol", FIRST_PASSWORD);
    await expectScreen(tab, "Profile");
    await expectScreen(page, "Profile");
    await page.locator("#profile-username").filter({ hasText: "carol" }).waitFor();
    await keepAudit(tab);
    await keepAudit(page);
    await shared.context.close();
  });

  it("signs out everywhere: back to sign in, and a reload finds no session", async () => {
    const { page } = first;
    const other = await device();
    await signIn(other.page, "robin", RESET_PASSWORD);
    await expectScreen(other.page, "Profile");
    await page.getByRole("link", { name: "Sessions" }).click();
    await page.locator("#sessions-body tr").nth(1).waitFor();
    await page.getByRole("button", { name: "Sign out everywhere", exact: true }).click();
    await expectScreen(page, "Sign in");
    await expectMessage(page, /signed out everywhere/);
    await reload(page);
    await expectScreen(page, "Sign in");
    await reload(other.page);
    await expectScreen(other.page, "Sign in");
    await keepAudit(other.page);
    await other.context.close();
  });

  it("kept to its CSP, threw nothing and did not shift its layout", async () => {
    for (const page of pages.filter((page) => !page.isClosed())) await keepAudit(page);
    assert.ok(audits.length >= 8);
    for (const audit of audits) {
      assert.deepEqual(audit.violations, [], audit.url);
      assert.ok(audit.shift < 0.01, `cumulative layout shift ${audit.shift} at ${audit.url}`);
    }
    assert.deepEqual(problems, []);
  });
});
