// Property-based hostile input: random and mutated requests on every route (through
// app.inject), random and malformed bytes on a raw socket, and random or mutated tokens.
// Never a 5xx, never a crash or an unhandled rejection, and a heap that stays flat.
//
// CI runs a fixed seed and a few hundred cases per property. A longer run, for manual use:
//   TESSERA_FUZZ_RUNS=20000 TESSERA_FUZZ_SEED=$RANDOM \
//     node --import tsx --test --test-timeout=0 test/fault/hostile-input.test.ts
// A failure prints the seed and the path that reproduces it (fast-check's `seed` and `path`).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { decodeProtectedHeader } from "../../src/core/access-token.js";
import { isTesseraError } from "../../src/core/errors.js";
import { isWellFormedRefreshToken } from "../../src/core/refresh-token.js";
import { createServer } from "../../src/http/server.js";
import { resolveConfig } from "../../src/http/server-config.js";
import { createServices } from "../../src/service/tessera-services.js";
import type { PasswordHasher } from "../../src/service/password-hasher.js";
import { openStore } from "../../src/store/open-store.js";
import { createVerifier } from "../../src/verify/index.js";
import { report } from "./cluster.js";

/** Seed of every property; `TESSERA_FUZZ_SEED` changes it. */
export const FUZZ_SEED = Number(process.env.TESSERA_FUZZ_SEED ?? 1_212_012);
/** Cases per property; `TESSERA_FUZZ_RUNS` changes it. */
export const FUZZ_RUNS = Number(process.env.TESSERA_FUZZ_RUNS ?? 300);
const settings = { seed: FUZZ_SEED, numRuns: FUZZ_RUNS };

const ISSUER = "https://issuer.test";
const PASSWORD = "correct horse battery staple";
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"] as const;

// Passwords are not what this test is about: a cheap stand-in keeps thousands of logins fast.
const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain:${password}`),
  verify: (hash, password) => Promise.resolve(hash === `plain:${password}`),
  unknownUserHash: "plain:\u0000",
};

setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
function heapMb(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Printable ASCII without control characters: what light-my-request accepts in a header value. */
const headerText = (maxLength: number) =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength });

/** Strings from the corners of Unicode: lone surrogates, combining marks, zero-width and bidi controls, fullwidth forms, NUL. */
const edgyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme-composite", maxLength: 40 }),
  fc
    .array(
      fc.constantFrom(
        "\u0000",
        "\ud800",
        "\udfff",
        "\u200b",
        "\u202e",
        "\ufeff",
        "\u0307",
        "İ",
        "ß",
        "ａ",
        "\u{1f600}",
        "a",
        "é",
        "%00",
        "\\",
        '"',
      ),
      { maxLength: 40 },
    )
    .map((parts) => parts.join("")),
);

/** A value of any JSON type, or one that is not JSON at all. */
const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  edgyText,
  fc.constantFrom(null, true, 0, -0, 1e308, "", [], {}),
);

/** Flips, deletes or inserts characters of `text`. */
function mutated(text: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(
      text,
      fc.array(
        fc.tuple(
          fc.constantFrom("flip", "delete", "insert", "truncate"),
          fc.nat(),
          fc.string({ unit: "binary", minLength: 1, maxLength: 3 }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    )
    .map(([start, edits]) => {
      let value = start;
      for (const [kind, at, what] of edits) {
        const i = value.length === 0 ? 0 : at % value.length;
        if (kind === "flip") value = value.slice(0, i) + what + value.slice(i + 1);
        else if (kind === "delete") value = value.slice(0, i) + value.slice(i + 1);
        else if (kind === "insert") value = value.slice(0, i) + what + value.slice(i);
        else value = value.slice(0, i);
      }
      return value;
    });
}

/** Every byte of `text` (lone surrogates as U+FFFD) percent-encoded: always a valid path segment. */
function percentEncoded(text: string): string {
  return [...Buffer.from(text, "utf8")].map((byte) => `%${byte.toString(16).padStart(2, "0")}`).join("");
}

/** A 5xx, or an error answer not in the contract's shape. */
function problemOf(status: number, contentType: string | undefined, body: string, method: string): string | null {
  if (status >= 500) return `status ${status}: ${body.slice(0, 200)}`;
  if (status >= 400 && method !== "HEAD" && contentType?.startsWith("application/json")) {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error !== "string") return `status ${status} without an error code: ${body.slice(0, 200)}`;
  }
  return null;
}

describe("Hostile input", () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-fuzz-"));
  let app: FastifyInstance;
  let port: number;
  let routes: { method: string; path: string }[];
  let accessToken: string;
  let refreshToken: string;
  const unhandled: string[] = [];
  const onUnhandled = (error: unknown) =>
    unhandled.push(error instanceof Error ? (error.stack ?? error.message) : String(error));

  before(async () => {
    process.on("unhandledRejection", onUnhandled);
    process.on("uncaughtException", onUnhandled);
    const databaseUrl = `sqlite:${join(dir, "tessera.db")}`;
    const options = {
      databaseUrl,
      secret: "fuzz-test-secret-0123456789-abcdefghijk",
      issuer: ISSUER,
      rateLimitPerMinute: 0,
    };
    const store = openStore({ url: databaseUrl });
    await store.migrate();
    const services = await createServices({
      store,
      config: resolveConfig(options),
      hasher: plainHasher,
      logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    app = await createServer({ services, rateLimitPerMinute: 0, logger: false });
    app.addHook("onClose", () => services.close());
    await app.listen({ host: "127.0.0.1", port: 0 });
    port = (app.server.address() as { port: number }).port;
    const document = (await app.inject("/openapi.json")).json<{ paths: Record<string, Record<string, unknown>> }>();
    routes = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => ({ method: method.toUpperCase(), path })),
    );
    routes.push({ method: "GET", path: "/openapi.json" }, { method: "GET", path: "/docs" });
    await app.inject({ method: "POST", url: "/auth/register", payload: { username: "fuzzer", password: PASSWORD } });
    const login = (
      await app.inject({ method: "POST", url: "/auth/login", payload: { username: "fuzzer", password: PASSWORD } })
    ).json<{ access_token: string; refresh_token: string }>();
    accessToken = login.access_token;
    refreshToken = login.refresh_token;
  });

  after(async () => {
    await app?.close();
    process.off("unhandledRejection", onUnhandled);
    process.off("uncaughtException", onUnhandled);
    rmSync(dir, { recursive: true, force: true });
  });

  /** A documented path with its parameter filled with anything, a random path, or a known troublemaker. */
  const pathOf = (path: string) =>
    path.includes("{")
      ? fc.oneof(edgyText, headerText(300)).map((id) => path.replace(/\{[^}]+\}/, percentEncoded(id)))
      : fc.constant(path);
  const routePath = () =>
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...routes.map((route) => route.path)).chain(pathOf) },
      { weight: 1, arbitrary: fc.webPath().map((path) => (path.startsWith("/") ? path : `/${path}`)) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "/auth/%",
          "/auth/%ZZ",
          "/auth/..%2f..%2fetc",
          "//auth//login",
          "/auth/login/",
          `/auth/sessions/${"x".repeat(5000)}`,
          "/auth/login?refresh_token=a&refresh_token=b",
          "/auth/revocations?since=-1",
          "/auth/revocations?since=99999999999999999999",
          "/auth/revocations?since[]=1",
        ),
      },
    );
  /** Mostly a route with its own method (so handlers run, not only 405s), sometimes any method on any path. */
  const target = () =>
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .constantFrom(...routes)
          .chain((route) => pathOf(route.path).map((path) => [route.method, path] as const)),
      },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...METHODS), routePath()) },
    );

  const body = () =>
    fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)),
      fc
        .record(
          {
            username: anyValue,
            password: anyValue,
            refresh_token: anyValue,
            grant_type: anyValue,
            token: anyValue,
            client_id: anyValue,
            scope: anyValue,
          },
          { requiredKeys: [] },
        )
        .map((value) => JSON.stringify(value)),
      fc.record({ username: edgyText, password: edgyText }).map((value) => JSON.stringify(value)),
      mutated(fc.constant(JSON.stringify({ username: "fuzzer", password: PASSWORD }))),
      mutated(fc.constant(`grant_type=refresh_token&refresh_token=${refreshToken}`)),
      fc.integer({ min: 1, max: 4000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
      fc.integer({ min: 1, max: 1300 }).map((depth) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth)),
      fc
        .integer({ min: 7000, max: 40_000 })
        .map((size) => JSON.stringify({ username: "fuzzer", password: "p".repeat(size) })),
      fc
        .dictionary(headerText(20), fc.oneof(headerText(40), edgyText), { maxKeys: 8 })
        .map((pairs) => new URLSearchParams(pairs).toString()),
      fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes).toString("latin1")),
    );

  it("answers random and mutated requests on every route without a 5xx", async (t) => {
    const heapBefore = heapMb();
    const statuses: Record<number, number> = {};
    await fc.assert(
      fc.asyncProperty(
        target(),
        fc.option(
          fc.constantFrom(
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/json; charset=utf-16",
            "multipart/form-data; boundary=x",
            "application/JSON",
            "application/json;;",
            "*/*",
          ),
          { nil: undefined },
        ),
        fc.option(
          fc.oneof(
            fc.constant(`Bearer ${accessToken}`),
            mutated(fc.constant(`Bearer ${accessToken}`)),
            headerText(200),
            fc.constant("Basic Zm9vOmJhcg=="),
          ),
          { nil: undefined },
        ),
        fc.option(body(), { nil: undefined }),
        fc.dictionary(
          fc.constantFrom(
            "origin",
            "cookie",
            "x-forwarded-for",
            "user-agent",
            "accept",
            "accept-encoding",
            "x-requested-with",
          ),
          headerText(500),
          { maxKeys: 4 },
        ),
        async ([method, url], contentType, authorization, payload, extra) => {
          const headers: Record<string, string> = { ...extra };
          if (contentType !== undefined) headers["content-type"] = contentType;
          if (authorization !== undefined) headers.authorization = authorization;
          const response = await app.inject({
            method,
            url,
            headers,
            ...(payload !== undefined && method !== "GET" && method !== "HEAD"
              ? { payload: Buffer.from(payload, "latin1") }
              : {}),
          });
          statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
          assert.equal(
            problemOf(
              response.statusCode,
              response.headers["content-type"] as string | undefined,
              response.body,
              method,
            ),
            null,
          );
        },
      ),
      settings,
    );
    const heapAfter = heapMb();
    assert.equal((await app.inject("/healthz")).statusCode, 200);
    report(t, "fuzz-routes", {
      seed: FUZZ_SEED,
      runs: FUZZ_RUNS,
      routes: routes.length,
      statuses,
      heapBeforeMb: Math.round(heapBefore),
      heapAfterMb: Math.round(heapAfter),
    });
  });

  it("refuses random and mutated access and refresh tokens with 4xx on every endpoint that reads one", async (t) => {
    // A session of its own: the requests above may have ended the first one (logout-all is a route too).
    const login = (
      await app.inject({ method: "POST", url: "/auth/login", payload: { username: "fuzzer", password: PASSWORD } })
    ).json<{ access_token: string; refresh_token: string }>();
    const accessToken = login.access_token;
    const refreshToken = login.refresh_token;
    const jwtPart = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const [header, payload, signature] = accessToken.split(".") as [string, string, string];
    const forgedJwt = fc.oneof(
      mutated(fc.constant(accessToken)),
      fc
        .record({
          alg: fc.constantFrom("none", "HS256", "ES256", "RS256", "EdDSA", "", "ES256 "),
          typ: fc.constantFrom("at+jwt", "JWT", undefined),
          kid: fc.option(edgyText),
          crit: fc.option(fc.array(edgyText)),
        })
        .map((h) => `${jwtPart(h)}.${payload}.${signature}`),
      fc.jsonValue().map((claims) => `${header}.${jwtPart(claims)}.${signature}`),
      fc.constantFrom(
        `${header}.${payload}.`,
        `${header}.${payload}`,
        `${header}..${signature}`,
        `${accessToken}.${signature}`,
        `${header}.${payload}.${signature}${signature}`,
        ` ${accessToken}`,
        `${accessToken} `,
        "..",
        ".",
      ),
      fc.string({ unit: "binary", maxLength: 300 }),
    );
    const forgedRefresh = fc.oneof(
      mutated(fc.constant(refreshToken)),
      fc.constant(`tsr_${"A".repeat(49)}`),
      fc.string({ unit: "binary", maxLength: 120 }),
      headerText(9000),
    );
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: "tessera",
      algorithms: ["ES256"],
      jwks: (await app.inject("/.well-known/jwks.json")).json(),
      logger: { warn: () => undefined },
    });
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(forgedJwt, forgedRefresh, async (jwt, refresh) => {
        if (jwt !== accessToken) {
          try {
            await verifier.verify(jwt);
          } catch (error) {
            assert.ok(isTesseraError(error), `the verifier threw ${String(error)}`);
          }
          try {
            decodeProtectedHeader(jwt, ["ES256"]);
          } catch (error) {
            assert.ok(isTesseraError(error), `decodeProtectedHeader threw ${String(error)}`);
          }
          if (/^[\x20-\x7e]*$/.test(jwt)) {
            const me = await app.inject({ url: "/auth/me", headers: { authorization: `Bearer ${jwt}` } });
            assert.ok(
              me.statusCode === 401 || me.statusCode === 400 || me.statusCode === 200,
              `GET /auth/me answered ${me.statusCode}`,
            );
            if (me.statusCode === 401) assert.match(String(me.headers["www-authenticate"]), /^Bearer /);
          }
        }
        assert.equal(typeof isWellFormedRefreshToken(refresh), "boolean");
        if (refresh === refreshToken) return;
        const answers = await Promise.all([
          app.inject({ method: "POST", url: "/auth/refresh", payload: { refresh_token: refresh } }),
          app.inject({ method: "POST", url: "/auth/logout", payload: { refresh_token: refresh } }),
          app.inject({
            method: "POST",
            url: "/oauth/token",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            payload: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refresh }).toString(),
          }),
          app.inject({
            method: "POST",
            url: "/oauth/revoke",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            payload: new URLSearchParams({ token: refresh.length > 0 ? refresh : jwt }).toString(),
          }),
        ]);
        checked += answers.length;
        assert.ok(
          answers.every((answer) => answer.statusCode < 500),
          answers.map((answer) => answer.statusCode).join(","),
        );
        assert.notEqual(answers[0].statusCode, 200, "a forged refresh token rotated");
      }),
      settings,
    );
    await verifier.close();
    // The real session survived all of it.
    assert.equal(
      (await app.inject({ url: "/auth/me", headers: { authorization: `Bearer ${accessToken}` } })).statusCode,
      200,
    );
    report(t, "fuzz-tokens", { seed: FUZZ_SEED, runs: FUZZ_RUNS, endpointCalls: checked });
  });

  it("answers random bytes, oversized and repeated headers on a raw socket with a 4xx or a closed connection, never a 5xx", async (t) => {
    const send = (bytes: Buffer) =>
      new Promise<string>((resolve) => {
        const socket = connect(port, "127.0.0.1");
        let received = "";
        const timer = setTimeout(() => socket.destroy(), 3000);
        socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
        socket.on("error", () => undefined);
        socket.on("close", () => {
          clearTimeout(timer);
          resolve(received);
        });
        socket.end(bytes);
      });
    const line = (method: string, path: string) => `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
    const raw = fc.oneof(
      fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes)),
      fc
        .tuple(fc.constantFrom(...METHODS, "GET\u0000", "BREW", ""), routePath(), fc.uint8Array({ maxLength: 300 }))
        .map(([method, path, junk]) =>
          Buffer.concat([Buffer.from(line(method, path)), Buffer.from(junk), Buffer.from("\r\n\r\n")]),
        ),
      fc
        .integer({ min: 1000, max: 70_000 })
        .map((size) => Buffer.from(`${line("GET", "/auth/me")}X-Big: ${"a".repeat(size)}\r\n\r\n`)),
      fc
        .tuple(
          fc.constantFrom(
            "Authorization: Bearer x",
            "Content-Length: 5",
            "Content-Length: 7",
            "Transfer-Encoding: chunked",
            "Host: a",
            "Content-Type: application/json",
            "Cookie: a=b",
          ),
          fc.integer({ min: 2, max: 300 }),
        )
        .map(([header, times]) =>
          Buffer.from(`${line("POST", "/auth/refresh")}${`${header}\r\n`.repeat(times)}\r\n{"refresh_token":"x"}`),
        ),
      fc
        .constantFrom(
          "POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
          "POST /auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nffffffffffffffff\r\n",
          "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
          "GET /healthz HTTP/0.9\r\n\r\n",
          "GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n",
          `GET /${"a".repeat(70_000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
        )
        .map((text) => Buffer.from(text)),
    );
    const statuses: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        const answer = await send(bytes);
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? "closed";
        statuses[status] = (statuses[status] ?? 0) + 1;
        // Every answer on the connection, pipelined ones too.
        for (const match of answer.matchAll(/HTTP\/1\.[01] (\d{3})/g))
          assert.ok(Number(match[1]) < 500, `answered ${match[0]}`);
      }),
      { ...settings, numRuns: Math.max(1, Math.round(FUZZ_RUNS / 2)) },
    );
    assert.equal((await app.inject("/healthz")).statusCode, 200);
    report(t, "fuzz-raw-socket", { seed: FUZZ_SEED, runs: Math.round(FUZZ_RUNS / 2), statuses });
  });

  it("keeps the heap flat over a second round of random requests, and no rejection went unhandled", async (t) => {
    const request = fc.tuple(target(), fc.option(body(), { nil: undefined }));
    const round = async () =>
      fc.assert(
        fc.asyncProperty(request, async ([[method, url], payload]) => {
          const response = await app.inject({
            method,
            url,
            headers: { "content-type": "application/json" },
            ...(payload !== undefined && method !== "GET" && method !== "HEAD" ? { payload } : {}),
          });
          assert.ok(response.statusCode < 500);
        }),
        { seed: FUZZ_SEED + 1, numRuns: FUZZ_RUNS },
      );
    await round();
    const before = heapMb();
    await round();
    await round();
    const growth = heapMb() - before;
    report(t, "fuzz-heap", {
      runsPerRound: FUZZ_RUNS,
      heapMb: Math.round(before),
      growthOverTwoRoundsMb: Number(growth.toFixed(1)),
      unhandled: unhandled.length,
    });
    assert.ok(growth < 16, `heap grew ${growth.toFixed(1)} MB over two rounds`);
    assert.deepEqual(unhandled, []);
  });
});
