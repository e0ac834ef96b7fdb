import { readFile, readdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

/** Options of {@link startExampleServer}. */
export interface ExampleServerOptions {
  /** The Tessera server that `/auth/*` is forwarded to. Default: `http://127.0.0.1:3000`. */
  readonly upstream?: string;
  /** Port to listen on, `0` for any free one. Default: 8080. */
  readonly port?: number;
  /** Host to listen on. Default: `127.0.0.1`. */
  readonly host?: string;
}

/** A request the example server forwarded to Tessera. */
export interface ForwardedRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** The request's `Origin` header, if any. */
  readonly origin: string | null;
  /** Whether the browser sent a cookie with it (cookie mode's refresh token). */
  readonly withCookie: boolean;
}

/** The running example server. */
export interface ExampleServer {
  /** e.g. `http://127.0.0.1:8080` */
  readonly url: string;
  /** Every `/auth/*` request forwarded so far, in order. */
  readonly forwarded: readonly ForwardedRequest[];
  close(): Promise<void>;
}

const here = fileURLToPath(new URL(".", import.meta.url));
const clientSource = fileURLToPath(new URL("../../src/client/", import.meta.url));
const PAGES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/cookie.html": { file: "cookie.html", type: "text/html; charset=utf-8" },
};
// Hop-by-hop and framing headers are the proxy's own business, not the upstream's.
const HOP_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "content-encoding",
]);

/**
 * Serves the example page, `tessera/client` as browser ES modules under `/client/` (each
 * `src/client/*.ts` transpiled on request), and forwards `/auth/*` to Tessera, all from one
 * origin so the page needs no CORS and its tabs share `localStorage` and `BroadcastChannel`.
 */
export async function startExampleServer(options: ExampleServerOptions = {}): Promise<ExampleServer> {
  const upstream = new URL(options.upstream ?? "http://127.0.0.1:3000");
  const modules = new Set(
    (await readdir(clientSource)).filter((name) => name.endsWith(".ts")).map((name) => name.replace(/\.ts$/, ".js")),
  );
  const forwarded: ForwardedRequest[] = [];

  const server = createServer((request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(502, { "content-type": "text/plain" });
      response.end("bad gateway");
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? "/", "http://example.invalid").pathname;
    if (path.startsWith("/auth/")) return forward(request, response, path);
    if (request.method !== "GET" && request.method !== "HEAD")
      return send(response, 405, "text/plain", "method not allowed");
    const page = PAGES[path];
    if (page) return send(response, 200, page.type, await readFile(`${here}${page.file}`));
    const module = path.startsWith("/client/") ? path.slice("/client/".length) : "";
    if (modules.has(module)) {
      const source = await readFile(`${clientSource}${module.replace(/\.js$/, ".ts")}`, "utf8");
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true },
      });
      return send(response, 200, "text/javascript; charset=utf-8", outputText);
    }
    return send(response, 404, "text/plain", "not found");
  }

  async function forward(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === "string" && !HOP_HEADERS.has(name)) headers.set(name, value);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    const answer = await fetch(new URL(request.url ?? path, upstream), {
      method: request.method ?? "GET",
      headers,
      body: hasBody ? Buffer.concat(chunks) : undefined,
      redirect: "manual",
    });
    forwarded.push({
      method: request.method ?? "GET",
      path,
      status: answer.status,
      origin: typeof request.headers.origin === "string" ? request.headers.origin : null,
      withCookie: typeof request.headers.cookie === "string" && request.headers.cookie !== "",
    });
    const body = Buffer.from(await answer.arrayBuffer());
    const out: Record<string, string | string[]> = {};
    answer.headers.forEach((value, name) => {
      if (!HOP_HEADERS.has(name) && name !== "set-cookie") out[name] = value;
    });
    // Set-Cookie lines must stay separate (cookie mode's refresh token).
    const cookies = answer.headers.getSetCookie();
    if (cookies.length > 0) out["set-cookie"] = cookies;
    response.writeHead(answer.status, out);
    response.end(body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    forwarded,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

function send(response: ServerResponse, status: number, type: string, body: string | Buffer): void {
  response.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  response.end(body);
}

// `node --import tsx examples/browser/serve.ts [port] [upstream]`
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  const upstream = process.argv[3] ?? process.env.TESSERA_URL ?? "http://127.0.0.1:3000";
  const example = await startExampleServer({ port, upstream });
  console.log(`Example page on ${example.url}, forwarding /auth/* to ${upstream}`);
}
