import assert from "node:assert/strict";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { createServer, type ServerOptions } from "../../src/http/server.js";
import { temporaryDirectory } from "./server.js";

/** A Tessera app answering through `app.inject()`, not listening. */
export interface InjectedServer {
  readonly app: FastifyInstance;
  /** Closes the app and removes its temporary directory. */
  readonly close: () => Promise<void>;
}

/**
 * Creates a server for `app.inject()`. Defaults: a fresh SQLite file (unless `databaseUrl` names
 * another database, which the caller drops), no rate limits, silent logs, a secret set.
 */
export async function injectedServer(options: ServerOptions = {}): Promise<InjectedServer> {
  const dir = temporaryDirectory();
  const app = await createServer({
    databaseUrl: `sqlite:${dir.path}/t.db`,
    secret: "inject-test-secret-0123456789-abcdefghijkl",
    rateLimitPerMinute: 0,
    logger: false,
    ...options,
  });
  return {
    app,
    close: async () => {
      await app.close();
      dir.remove();
    },
  };
}

/** Sends `body` as JSON (no body and no content type when `undefined`) through `app.inject()`. */
export function injectJson(
  app: FastifyInstance,
  method: "POST" | "GET" | "DELETE",
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    payload: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Asserts an error answer: `status`, and a body with `error` and a string `error_description`. */
export function assertErrorAnswer(response: LightMyRequestResponse, status: number, error: string): void {
  assert.equal(response.statusCode, status, response.body);
  const body = response.json();
  assert.equal(body.error, error);
  assert.equal(typeof body.error_description, "string");
}
