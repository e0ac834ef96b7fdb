import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { Registration } from "../service/config.js";

/**
 * The account page's Content-Security-Policy: its own script and stylesheet only, the QR code as a
 * `data:` image, requests to its own origin; no inline script or style anywhere.
 */
export const ACCOUNT_PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Options of {@link registerAccountPageRoutes}. */
export interface AccountPageRoutesOptions {
  /** Whether cookie mode is on: the page needs it and answers 404 without it. */
  readonly cookieMode: boolean;
  /** Whether the page offers sign-up. */
  readonly registration: Registration;
}

/** What `npm run build` writes to `dist/account-page/manifest.json`. */
interface AccountPageManifest {
  readonly html: string;
  readonly assets: readonly string[];
}

interface PageFiles {
  readonly html: string;
  readonly assets: ReadonlyMap<string, { readonly body: Buffer; readonly type: string }>;
}

const ASSET_TYPES: Readonly<Record<string, string>> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

// From dist (the published package) the page sits next to this module's folder; from src (tsx),
// it is the one `npm run build` wrote.
const PAGE_FOLDERS = [
  new URL("../account-page/", import.meta.url),
  new URL("../../dist/account-page/", import.meta.url),
];

/** The folder holding the built page, or `null` when it has not been built. */
function pageFolder(): URL | null {
  return PAGE_FOLDERS.find((folder) => existsSync(fileURLToPath(new URL("manifest.json", folder)))) ?? null;
}

async function readPage(folder: URL, fill: Readonly<Record<string, string>>): Promise<PageFiles> {
  const manifest = JSON.parse(await readFile(new URL("manifest.json", folder), "utf8")) as AccountPageManifest;
  let html = await readFile(new URL(manifest.html, folder), "utf8");
  for (const [name, value] of Object.entries(fill)) html = html.replaceAll(`{{${name}}}`, escapeHtml(value));
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const name of manifest.assets) {
    const type = ASSET_TYPES[name.split(".").pop() ?? ""];
    if (type !== undefined) assets.set(name, { body: await readFile(new URL(name, folder)), type });
  }
  return { html, assets };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** A 404 of the page's paths, under the page's own CSP like everything else there. */
function notFound(reply: FastifyReply, description: string): FastifyReply {
  return reply
    .code(404)
    .header("cache-control", "no-store")
    .header("content-security-policy", ACCOUNT_PAGE_CSP)
    .send({ error: "not_found", error_description: description });
}

/**
 * Registers `GET /account` (the account page, for end users) and its assets under `/account/…`.
 * The files are read once, here. Every other path under `/account/`, however deep, answers 404
 * `not_found` here too, never reaching a host app. Without cookie mode, or when the page was not
 * built, everything answers 404 `not_found` saying why.
 */
export async function registerAccountPageRoutes(
  app: FastifyInstance,
  { cookieMode, registration }: AccountPageRoutesOptions,
): Promise<void> {
  const folder = cookieMode ? pageFolder() : null;
  if (cookieMode && folder === null)
    app.log.warn("the account page is not built (npm run build); /account answers 404");
  const page = folder === null ? null : await readPage(folder, { base: app.prefix, registration });
  const unavailable = cookieMode
    ? "The account page is not built: run npm run build."
    : "The account page needs cookie mode (TESSERA_COOKIE_MODE=on).";

  app.get("/account", { schema: { hide: true } }, (_request, reply) => {
    if (page === null) return notFound(reply, unavailable);
    return reply
      .header("content-type", "text/html; charset=utf-8")
      .header("cache-control", "no-store")
      .header("content-security-policy", ACCOUNT_PAGE_CSP)
      .send(page.html);
  });

  app.get<{ Params: { "*": string } }>("/account/*", { schema: { hide: true } }, (request, reply) => {
    if (page === null) return notFound(reply, unavailable);
    const asset = page.assets.get(request.params["*"]);
    if (asset === undefined) return notFound(reply, "No such file.");
    // The names carry a hash of the content: a new build is a new name.
    return reply
      .header("content-type", asset.type)
      .header("cache-control", "public, max-age=31536000, immutable")
      .header("content-security-policy", ACCOUNT_PAGE_CSP)
      .send(asset.body);
  });
}
