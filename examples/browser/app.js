// The example's page script: plain JavaScript using tessera/client, served as ES modules by serve.ts.
import { createAuthClient, isAuthClientError, localStorageStorage } from "/client/index.js";

// Same origin as the page: serve.ts forwards /auth/* to Tessera. The default channelName makes
// every tab of this origin share refreshes. cookie.html (for a server with TESSERA_COOKIE_MODE=on)
// keeps the refresh token in an HttpOnly cookie and the access token in memory only.
const cookieMode = document.documentElement.dataset.cookieMode === "on";
const client = cookieMode
  ? createAuthClient({ baseUrl: location.origin, cookieMode: true })
  : createAuthClient({ baseUrl: location.origin, storage: localStorageStorage("tessera-example.tokens") });

const status = document.querySelector("#status");
const eventList = document.querySelector("#events");
const form = document.querySelector("#login");
const events = [];

for (const type of ["logged_in", "tokens_refreshed", "logged_out", "session_expired"]) {
  client.on(type, (event) => {
    events.push(`${type}:${event.origin}`);
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${type} (${event.origin === "local" ? "this tab" : "another tab"})`;
    eventList.append(item);
    if (type === "logged_out" || type === "session_expired") status.textContent = "Not logged in.";
    if (type === "logged_in") status.textContent = "Logged in.";
  });
}

/** Calls GET /auth/me with the session; answers { status, body } or { error }. */
async function me() {
  try {
    const response = await client.fetch("/auth/me");
    const body = await response.json();
    status.textContent = response.ok
      ? `You are ${body.username} (roles: ${body.roles.join(", ") || "none"}).`
      : `GET /auth/me answered ${response.status}.`;
    return { status: response.status, body };
  } catch (error) {
    status.textContent = isAuthClientError(error) ? `No session (${error.code}).` : "The request failed.";
    return { error: isAuthClientError(error) ? error.code : String(error) };
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  try {
    await client.login(String(data.get("username")), String(data.get("password")));
    await me();
  } catch (error) {
    status.textContent = isAuthClientError(error, "invalid_credentials")
      ? "Wrong username or password."
      : "Login failed.";
  }
});

document.querySelector("#register").addEventListener("click", async () => {
  const data = new FormData(form);
  const response = await fetch("/auth/register", {
    method: "POST",
    // X-Tessera-CSRF: a server in cookie mode wants it on every browser request to /auth.
    headers: { "content-type": "application/json", "x-tessera-csrf": "1" },
    body: JSON.stringify({ username: data.get("username"), password: data.get("password") }),
  });
  status.textContent = response.status === 201 ? "Registered; now log in." : `Register answered ${response.status}.`;
});

document.querySelector("#me").addEventListener("click", () => void me());
document.querySelector("#logout").addEventListener("click", () => void client.logout().catch(() => undefined));

if ((await client.getAccessToken()) !== null) status.textContent = "Logged in.";

// For the browser test (test/client/browser.test.ts) and the console.
window.tesseraExample = { client, me, events };
