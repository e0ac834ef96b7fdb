// The account page: one document, its screens chosen by the address's fragment; tessera/client in
// cookie mode does every call. Built by scripts/build-account-page.mjs, served by src/http/account-page-routes.ts.
import Bowser from "bowser";
import { type AuthClient, createAuthClient, isAuthClientError } from "../client/index.js";

const SCREENS = [
  "loading",
  "sign-in",
  "mfa",
  "sign-up",
  "forgot",
  "reset",
  "account",
  "two-factor",
  "sessions",
] as const;
type Screen = (typeof SCREENS)[number];
/** Screens that need a session. */
const SIGNED_IN_SCREENS: readonly Screen[] = ["account", "two-factor", "sessions"];

interface Me {
  username: string;
  roles: string[];
  email?: string | null;
  email_verified?: boolean;
  capabilities?: { email?: boolean };
  mfa?: { totp?: boolean };
}

interface SessionRow {
  id: string;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
}

const meta = (name: string): string => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? "";
/** Where the server's routes live: the path the page is mounted under, without `/account`. */
const basePath = meta("tessera-base").replace(/\/+$/, "");
const registrationOpen = meta("tessera-registration") === "open";
const api = (path: string): string => `${basePath}${path}`;

/** The last `error_description` the server sent: the client's errors carry only a status. */
let serverSaid: string | null = null;

async function watchingFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const response = await fetch(input, init);
  if (!response.ok && (response.headers.get("content-type") ?? "").includes("json")) {
    try {
      const body = (await response.clone().json()) as { error_description?: unknown };
      serverSaid = typeof body.error_description === "string" ? body.error_description : null;
    } catch {
      serverSaid = null;
    }
  }
  return response;
}

const client: AuthClient = createAuthClient({
  baseUrl: new URL(basePath || "/", location.origin),
  cookieMode: true,
  fetch: watchingFetch,
});

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

const messageBox = element<HTMLParagraphElement>("message");

function say(text: string, tone: "ok" | "error" | "info" = "info"): void {
  messageBox.textContent = text;
  messageBox.className = tone === "info" ? "message" : `message ${tone}`;
}

/** A failure the server explained: its `error_description`, or what was asked and the status. */
class ServerRefusal extends Error {}

/** What to tell the user about a failure: the server's own words where it gave them, never an input. */
function explain(error: unknown, wrongPassword = "Wrong username or password."): string {
  if (error instanceof ServerRefusal) return error.message;
  if (isAuthClientError(error, "invalid_credentials")) return wrongPassword;
  if (isAuthClientError(error, "session_expired") || isAuthClientError(error, "not_authenticated"))
    return "Your session has ended. Sign in again.";
  if (isAuthClientError(error)) {
    if (serverSaid !== null) return serverSaid;
    if (error.status === 429) return "Too many attempts. Wait a moment and try again.";
    return error.status === null ? "Something went wrong." : `The server answered ${error.status}.`;
  }
  if (error instanceof TypeError) return "The server could not be reached. Check your connection.";
  return "Something went wrong.";
}

/** Runs `task` for a form or button: one at a time, its buttons disabled, failures said. */
async function act(
  trigger: HTMLFormElement | HTMLButtonElement | null,
  task: () => Promise<void>,
  onError?: (error: unknown) => string | undefined,
): Promise<void> {
  const buttons =
    trigger instanceof HTMLFormElement ? [...trigger.querySelectorAll("button")] : trigger === null ? [] : [trigger];
  for (const button of buttons) button.disabled = true;
  serverSaid = null;
  try {
    await task();
  } catch (error) {
    if (isAuthClientError(error, "session_expired") || isAuthClientError(error, "not_authenticated")) {
      if (signedIn) return leave("ended");
      say(onError?.(error) ?? explain(error), "error");
      show("sign-in");
    } else say(onError?.(error) ?? explain(error), "error");
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

function onSubmit(
  id: string,
  task: (form: HTMLFormElement) => Promise<void>,
  onError?: (e: unknown) => string | undefined,
) {
  const form = element<HTMLFormElement>(id);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void act(form, () => task(form), onError);
  });
}

function onClick(id: string, task: () => Promise<void>): void {
  const button = element<HTMLButtonElement>(id);
  button.addEventListener("click", () => void act(button, task));
}

function field(form: HTMLFormElement, name: string): string {
  const input = form.elements.namedItem(name);
  return input instanceof HTMLInputElement ? input.value : "";
}

function clearPasswords(form: HTMLFormElement): void {
  for (const input of form.querySelectorAll<HTMLInputElement>('input[type="password"]')) input.value = "";
}

// --- screens -------------------------------------------------------------------------------

let current: Screen = "loading";
let signedIn = false;

/** Shows one screen, moves focus to its heading and, unless `keepMessage`, clears the message. */
function show(screen: Screen, keepMessage = true): void {
  if (!keepMessage) say("");
  current = screen;
  for (const name of SCREENS) element(`screen-${name}`).hidden = name !== screen;
  // Hidden, not removed: the header keeps its height, so nothing below it moves.
  element("nav").classList.toggle("off", !SIGNED_IN_SCREENS.includes(screen));
  for (const link of element("nav").querySelectorAll("a")) {
    if (link.getAttribute("href") === `#${screen}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const wanted = `#${screen}`;
  if (screen !== "loading" && screen !== "reset" && screen !== "mfa" && location.hash !== wanted)
    history.replaceState(null, "", wanted);
  element(`h-${screen}`).focus();
  if (screen === "account") void act(null, loadProfile);
  if (screen === "two-factor") void act(null, loadTwoFactor);
  if (screen === "sessions") void act(null, loadSessions);
}

/** The screen the fragment names, or where a signed-in or signed-out user belongs. */
function route(): void {
  const name = location.hash.slice(1) as Screen;
  if (!SCREENS.includes(name) || name === "loading" || name === "reset" || name === "mfa")
    return show(signedIn ? "account" : "sign-in");
  if (SIGNED_IN_SCREENS.includes(name) && !signedIn) return show("sign-in");
  if (!SIGNED_IN_SCREENS.includes(name) && signedIn && name !== "forgot") return show("account");
  if (name === "sign-up" && !registrationOpen) return show("sign-in");
  show(name);
}

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#verify=") || location.hash.startsWith("#reset=")) void readLink();
  else if (location.hash.slice(1) !== current) {
    say("");
    route();
  }
});

function signedInNow(): void {
  signedIn = true;
  show("account");
}

/** Why the page left a session: the part after `#sign-in:` in the address, and what it says. */
const LEFT = {
  "signed-out": { text: "You are signed out.", tone: "ok" },
  "not-reached": {
    text: "You are signed out on this page, but the server could not be reached: the session may still be open.",
    tone: "error",
  },
  everywhere: { text: "You are signed out everywhere.", tone: "ok" },
  elsewhere: { text: "You signed out in another tab.", tone: "ok" },
  ended: { text: "Your session has ended. Sign in again.", tone: "error" },
  "password-reset": { text: "Your password is changed. Sign in with the new one.", tone: "ok" },
} as const satisfies Record<string, { text: string; tone: "ok" | "error" }>;
type Left = keyof typeof LEFT;

let leaving = false;

/**
 * Leaves the session's view for good: the sign-in screen of a freshly loaded document, so nothing
 * of the previous user (profile, recovery codes and their download, a pending enrolment, the
 * sessions table, a second-step or reset token) survives into the next sign-in. Why it left rides
 * in the fragment and is said after the reload.
 */
function leave(why: Left): void {
  if (leaving) return;
  leaving = true;
  signedIn = false;
  if (codesUrl !== null) URL.revokeObjectURL(codesUrl);
  codesUrl = null;
  history.replaceState(null, "", `${location.pathname}${location.search}#sign-in:${why}`);
  location.reload();
}

/** Says why the page left a session, from a `#sign-in:<why>` fragment, and tidies the address. */
function readLeft(): void {
  const why = /^#sign-in:([a-z-]+)$/.exec(location.hash)?.[1];
  if (why === undefined) return;
  history.replaceState(null, "", `${location.pathname}${location.search}#sign-in`);
  if (!signedIn && Object.hasOwn(LEFT, why)) say(LEFT[why as Left].text, LEFT[why as Left].tone);
}

client.on("session_expired", () => {
  if (signedIn) leave("ended");
});
client.on("logged_out", (event) => {
  if (event.origin === "remote" && signedIn) leave("elsewhere");
});
// Another tab signed in (maybe as someone else): this page's view belongs to the tokens it held.
client.on("logged_in", (event) => {
  if (event.origin !== "remote" || leaving) return;
  leaving = true;
  location.reload();
});

// --- sign in, second step, sign up ----------------------------------------------------------

let mfaToken: string | null = null;
let useRecoveryCode = false;

onSubmit("form-sign-in", async (form) => {
  try {
    await client.login(field(form, "username"), field(form, "password"));
  } catch (error) {
    if (isAuthClientError(error, "mfa_required") && error.mfaToken !== undefined) {
      clearPasswords(form);
      mfaToken = error.mfaToken;
      setRecoveryMode(false);
      say("Enter the code from your authenticator app.");
      show("mfa");
      return;
    }
    clearPasswords(form);
    throw error;
  }
  form.reset();
  say("");
  signedInNow();
});

function setRecoveryMode(on: boolean): void {
  useRecoveryCode = on;
  element("mfa-code-field").hidden = on;
  element("mfa-recovery-field").hidden = !on;
  element<HTMLInputElement>("mfa-code").required = !on;
  element<HTMLInputElement>("mfa-recovery").required = on;
  element("mfa-switch").textContent = on ? "Use a code from the app" : "Use a recovery code";
}

element("mfa-switch").addEventListener("click", () => {
  setRecoveryMode(!useRecoveryCode);
  element(useRecoveryCode ? "mfa-recovery" : "mfa-code").focus();
});

element("mfa-restart").addEventListener("click", () => {
  mfaToken = null;
  show("sign-in", false);
});

onSubmit(
  "form-mfa",
  async (form) => {
    if (mfaToken === null) return show("sign-in");
    const answer = useRecoveryCode
      ? { recoveryCode: field(form, "recovery_code").trim() }
      : { code: field(form, "code").trim() };
    await client.completeMfa(mfaToken, answer);
    mfaToken = null;
    form.reset();
    say("");
    signedInNow();
  },
  (error) =>
    isAuthClientError(error, "invalid_credentials")
      ? "That code did not work. Try again, or start again if the sign-in has expired."
      : undefined,
);

if (!registrationOpen)
  for (const link of document.querySelectorAll<HTMLElement>(".when-registration")) link.hidden = true;

onSubmit("form-sign-up", async (form) => {
  const username = field(form, "username");
  const password = field(form, "password");
  const email = field(form, "email").trim();
  serverSaid = null;
  const response = await watchingFetch(api("/auth/register"), {
    method: "POST",
    // Cookie mode wants this header on every browser request to /auth.
    headers: { "content-type": "application/json", "x-tessera-csrf": "1" },
    body: JSON.stringify({ username, password }),
    credentials: "include",
  });
  clearPasswords(form);
  if (response.status !== 201) throw new ServerRefusal(serverSaid ?? `Sign-up answered ${response.status}.`);
  await client.login(username, password);
  form.reset();
  if (email !== "") {
    try {
      await client.setEmail(email);
      say(`Welcome, ${username}. A verification link is on its way to ${email}.`, "ok");
    } catch (error) {
      say(`Your account is ready, but the email address was not saved: ${explain(error)}`, "error");
    }
  } else say(`Welcome, ${username}.`, "ok");
  signedInNow();
});

// --- forgot, reset, verify ------------------------------------------------------------------

onSubmit("form-forgot", async (form) => {
  await client.forgotPassword(field(form, "email").trim());
  form.reset();
  say("If the address is known, a mail with a reset link is on its way.", "ok");
});

let resetToken: string | null = null;

onSubmit("form-reset", async (form) => {
  const password = field(form, "password");
  if (password !== field(form, "repeat")) {
    clearPasswords(form);
    say("The two passwords differ.", "error");
    return;
  }
  if (resetToken === null) return show("forgot");
  await client.resetPassword(resetToken, password);
  resetToken = null;
  form.reset();
  leave("password-reset");
});

/** Reads a mailed link's token from the fragment, then takes it out of the address bar. */
async function readLink(): Promise<boolean> {
  const match = /^#(verify|reset)=(tse_[A-Za-z0-9_-]+)$/.exec(location.hash);
  if (match === null) return false;
  const [, kind, token] = match as unknown as [string, "verify" | "reset", string];
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  if (kind === "reset") {
    resetToken = token;
    say("Choose a new password for your account.");
    show("reset");
    return true;
  }
  say("Checking the link…");
  await act(
    null,
    async () => {
      await client.verifyEmail(token);
      say("Your email address is verified.", "ok");
    },
    (error) =>
      isAuthClientError(error) && error.status === 400
        ? "This verification link is not valid any more. Send a new one from your profile."
        : undefined,
  );
  return false;
}

// --- account view ---------------------------------------------------------------------------

let profile: Me | null = null;

async function readJson<T>(response: Response, what: string): Promise<T> {
  if (!response.ok) {
    let description: string | null = null;
    try {
      const body = (await response.json()) as { error_description?: unknown };
      description = typeof body.error_description === "string" ? body.error_description : null;
    } catch {
      description = null;
    }
    throw new ServerRefusal(description ?? `${what} answered ${response.status}.`);
  }
  return (await response.json()) as T;
}

async function loadProfile(): Promise<void> {
  profile = await readJson<Me>(await client.fetch(api("/auth/me"), { cache: "no-store" }), "The profile");
  element("profile-username").textContent = profile.username;
  element("profile-roles").textContent = profile.roles.length > 0 ? profile.roles.join(", ") : "none";
  element("profile-email").textContent =
    profile.email == null ? "none" : `${profile.email} (${profile.email_verified ? "verified" : "not verified"})`;
  element("profile-mfa").textContent = profile.mfa?.totp ? "on" : "off";
  const mail = profile.capabilities?.email !== false;
  element("form-email").hidden = !mail;
  element("email-resend").hidden = profile.email == null || profile.email_verified === true;
  const emailInput = element<HTMLInputElement>("email-address");
  if (document.activeElement !== emailInput) emailInput.value = profile.email ?? "";
}

onSubmit("form-email", async (form) => {
  const email = field(form, "email").trim();
  await client.setEmail(email);
  say(`A verification link is on its way to ${email}.`, "ok");
  await loadProfile();
});

onClick("email-resend", async () => {
  if (profile?.email == null) return;
  await client.setEmail(profile.email);
  say(`A new verification link is on its way to ${profile.email}.`, "ok");
});

onSubmit(
  "form-password",
  async (form) => {
    const next = field(form, "next");
    if (next !== field(form, "repeat")) {
      clearPasswords(form);
      say("The two new passwords differ.", "error");
      return;
    }
    try {
      await client.changePassword(field(form, "current"), next);
    } finally {
      clearPasswords(form);
    }
    say("Your password is changed. Your other sessions were signed out.", "ok");
  },
  (error) => explain(error, "The current password is wrong."),
);

// --- two-factor -----------------------------------------------------------------------------

let codesUrl: string | null = null;

function showTotpPart(part: "off" | "enrol" | "codes" | "on"): void {
  for (const name of ["off", "enrol", "codes", "on"]) element(`totp-${name}`).hidden = name !== part;
}

async function loadTwoFactor(): Promise<void> {
  if (!element("totp-codes").hidden) return; // the codes stay until the user says they saved them
  await loadProfile();
  showTotpPart(profile?.mfa?.totp ? "on" : "off");
}

onClick("totp-start", async () => {
  const { secret, qrSvg } = await client.enrollTotp();
  element<HTMLImageElement>("totp-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(qrSvg)}`;
  element("totp-secret").textContent = secret.replace(/(.{4})/g, "$1 ").trim();
  showTotpPart("enrol");
  element<HTMLInputElement>("totp-code").focus();
});

onSubmit(
  "form-totp-confirm",
  async (form) => {
    const { recoveryCodes } = await client.confirmTotp(field(form, "code").trim());
    form.reset();
    element("totp-secret").textContent = "";
    element<HTMLImageElement>("totp-qr").removeAttribute("src");
    const list = element("totp-code-list");
    list.replaceChildren(
      ...recoveryCodes.map((code) => {
        const item = document.createElement("li");
        item.textContent = code;
        return item;
      }),
    );
    if (codesUrl !== null) URL.revokeObjectURL(codesUrl);
    codesUrl = URL.createObjectURL(
      new Blob([`Recovery codes for ${profile?.username ?? "your account"}\n\n${recoveryCodes.join("\n")}\n`], {
        type: "text/plain",
      }),
    );
    element<HTMLAnchorElement>("totp-download").href = codesUrl;
    showTotpPart("codes");
    say("Two-factor sign-in is on. Save your recovery codes now.", "ok");
  },
  (error) =>
    isAuthClientError(error, "invalid_mfa_code") || (isAuthClientError(error) && error.status === 400)
      ? (serverSaid ?? "That code did not work; check the time on your device and try again.")
      : undefined,
);

onClick("totp-done", async () => {
  element("totp-code-list").replaceChildren();
  if (codesUrl !== null) URL.revokeObjectURL(codesUrl);
  codesUrl = null;
  element<HTMLAnchorElement>("totp-download").href = "#two-factor";
  showTotpPart("on");
  await loadProfile();
});

onSubmit(
  "form-totp-disable",
  async (form) => {
    const code = field(form, "code").trim();
    const password = field(form, "password");
    clearPasswords(form);
    if ((code === "") === (password === "")) {
      say("Enter either a code or your password.", "error");
      return;
    }
    await client.disableTotp(code !== "" ? { code } : { password });
    form.reset();
    showTotpPart("off");
    say("Two-factor sign-in is off.", "ok");
    await loadProfile();
  },
  (error) => explain(error, "The password is wrong."),
);

// --- sessions -------------------------------------------------------------------------------

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "Firefox 128 on Windows 10 (desktop)" from a user agent; "Unknown device" without one. */
function deviceOf(userAgent: string | null): string {
  if (userAgent === null || userAgent === "") return "Unknown device";
  const { browser, os, platform } = Bowser.parse(userAgent);
  const name = [browser.name, browser.version?.split(".")[0]].filter(Boolean).join(" ");
  const system = [os.name, os.versionName ?? os.version].filter(Boolean).join(" ");
  const kind = platform.type ? ` (${platform.type})` : "";
  if (name === "" && system === "") return "Unknown device";
  return `${name || "A browser"}${system ? ` on ${system}` : ""}${kind}`;
}

function cell(row: HTMLTableRowElement, label: string, text: string): HTMLTableCellElement {
  const td = row.insertCell();
  td.dataset.label = label;
  td.textContent = text;
  return td;
}

let sessions: SessionRow[] = [];

async function loadSessions(): Promise<void> {
  const answer = await readJson<{ sessions: SessionRow[] }>(
    await client.fetch(api("/auth/sessions"), { cache: "no-store" }),
    "The session list",
  );
  sessions = answer.sessions;
  const body = element<HTMLTableSectionElement>("sessions-body");
  body.replaceChildren();
  for (const session of sessions) {
    const row = body.insertRow();
    row.dataset.session = session.id;
    const device = cell(row, "Device", deviceOf(session.user_agent));
    if (session.current) {
      const mark = document.createElement("span");
      mark.className = "current";
      mark.textContent = "this device";
      device.append(" ", mark);
    }
    cell(row, "IP", session.ip ?? "unknown");
    cell(row, "Signed in", when.format(new Date(session.created_at)));
    cell(row, "Last used", when.format(new Date(session.last_used_at)));
    cell(row, "Expires", when.format(new Date(session.expires_at)));
    const action = row.insertCell();
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = "Sign out";
    button.setAttribute("aria-label", `Sign out ${session.current ? "this device" : deviceOf(session.user_agent)}`);
    button.addEventListener("click", () => void act(button, () => endSession(session, row)));
    action.append(button);
  }
}

async function revoke(id: string): Promise<void> {
  const response = await client.fetch(api(`/auth/sessions/${encodeURIComponent(id)}`), { method: "DELETE" });
  if (response.status !== 204 && response.status !== 404) await readJson(response, "Signing the session out");
}

/** Marks a row signed out in place: rows below it do not move. */
function markEnded(row: HTMLTableRowElement): void {
  const action = row.cells[row.cells.length - 1];
  if (action !== undefined) action.textContent = "Signed out";
}

async function endSession(session: SessionRow, row: HTMLTableRowElement): Promise<void> {
  if (session.current) return signOut();
  await revoke(session.id);
  markEnded(row);
  say("That session is signed out.", "ok");
}

onClick("sessions-others", async () => {
  // One call: the server also ends sessions opened after the table was shown.
  const ended = (await client.logoutOthers()).length;
  await loadSessions();
  say(`Signed out ${ended} other ${ended === 1 ? "session" : "sessions"}.`, "ok");
});

onClick("sessions-all", async () => {
  const response = await client.fetch(api("/auth/logout-all"), { method: "POST" });
  if (response.status !== 204) await readJson(response, "Signing out everywhere");
  // The server ended this session too; forget its access token here.
  await client.logout().catch(() => undefined);
  leave("everywhere");
});

/** Signs this session out; the page leaves it even when the server could not be reached. */
async function signOut(): Promise<void> {
  let why: Left = "signed-out";
  try {
    await client.logout();
  } catch {
    why = "not-reached";
  }
  leave(why);
}

onClick("sign-out", signOut);

// --- start ----------------------------------------------------------------------------------

async function start(): Promise<void> {
  const fromLink = await readLink();
  if (fromLink) return;
  try {
    signedIn = (await client.getAccessToken()) !== null;
  } catch {
    signedIn = false;
  }
  readLeft();
  route();
}

void start();
