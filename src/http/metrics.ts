import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import { AUDIT_LOSS_REASONS, type AuditTrail } from "../service/audit-trail.js";
import type { SessionRevocations } from "../service/session-revocations.js";
import type { MetricsAddress } from "./server-config.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The listener of `/metrics` when it has an address of its own (`metricsAddress`), once ready; else null. */
    readonly metricsServer: Server | null;
  }
}

/**
 * Prometheus metrics of one server, in a registry of its own: request counts and latencies by
 * route, error codes, revoked sessions, and the process's default metrics. Serves `/metrics` on
 * the API port, on a listener of its own at `address` (started when the app is ready, closed
 * with it), or nowhere (`off`: nothing is collected either).
 */
export function registerMetrics(
  app: FastifyInstance,
  revocations: SessionRevocations,
  address: MetricsAddress,
  audit?: AuditTrail,
): void {
  let listener: Server | null = null;
  app.decorate("metricsServer", { getter: () => listener });
  if (address === "off") return;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tessera_" });
  const labelNames = ["method", "route", "status"] as const;
  const requests = new Counter({
    name: "tessera_http_requests_total",
    help: "HTTP requests answered",
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "tessera_http_request_duration_seconds",
    help: "Time to answer HTTP requests",
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const errors = new Counter({
    name: "tessera_errors_total",
    help: "Requests refused, by Tessera error code",
    labelNames: ["code"],
    registers: [registry],
  });
  const revoked = new Counter({
    name: "tessera_sessions_revoked_total",
    help: "Sessions revoked (logout, logout-all, revocation, reuse)",
    registers: [registry],
  });
  const stop = revocations.onSessionsRevoked((event) => revoked.inc(event.sessionIds.length));
  app.addHook("onClose", (_instance, done) => {
    stop();
    done();
  });

  if (audit) registerAuditMetric(app, registry, audit);

  // Each label set's children, resolved once: prom-client would otherwise hash the labels on every answer.
  // Bounded: methods, route patterns (never raw URLs) and status codes are few.
  const children = new Map<
    string,
    { requests: Counter.Internal; duration: Histogram.Internal<(typeof labelNames)[number]> }
  >();
  const childrenOf = (method: string, route: string, status: number) => {
    const key = `${method} ${status} ${route}`;
    let found = children.get(key);
    if (found === undefined) {
      const labels = { method, route, status: String(status) };
      found = { requests: requests.labels(labels), duration: duration.labels(labels) };
      children.set(key, found);
    }
    return found;
  };
  app.addHook("onResponse", (request, reply, done) => {
    // The route pattern, never the raw URL: bounded label values and no ids in metrics.
    const child = childrenOf(request.method, request.routeOptions.url ?? "unmatched", reply.statusCode);
    child.requests.inc();
    child.duration.observe(reply.elapsedTime / 1000);
    if (request.tesseraErrorCode) errors.inc({ code: request.tesseraErrorCode });
    done();
  });

  if (address === "api") {
    app.get("/metrics", { schema: { hide: true } }, async (_request, reply) =>
      reply
        .header("content-type", registry.contentType)
        .header("cache-control", "no-store")
        .send(await registry.metrics()),
    );
    return;
  }

  const server = createServer((request, response) => answerMetrics(registry, request, response));
  // Scrapers ask small questions: slow or idle connections are not kept.
  server.requestTimeout = 5000;
  server.headersTimeout = 5000;
  server.keepAliveTimeout = 5000;
  app.addHook("onReady", async () => {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: address.host, port: address.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (error) => app.log.error({ err: error.message }, "metrics listener failed"));
    listener = server;
    app.log.info({ address: server.address() }, "metrics listening");
  });
  app.addHook("onClose", async () => {
    if (!server.listening) return;
    const closed = once(server, "close");
    server.close();
    server.closeAllConnections();
    await closed;
    listener = null;
  });
}

/** `tessera_audit_write_failures_total{reason}`: audit events lost, by {@link AUDIT_LOSS_REASONS}. */
function registerAuditMetric(app: FastifyInstance, registry: Registry, audit: AuditTrail): void {
  const lost = new Counter({
    name: "tessera_audit_write_failures_total",
    help: "Audit events not written: the store refused their batch (store_error) or the buffer was full (buffer_full)",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of AUDIT_LOSS_REASONS) lost.inc({ reason }, 0);
  const stop = audit.onEventsLost((count, reason) => lost.inc({ reason }, count));
  app.addHook("onClose", (_instance, done) => {
    stop();
    done();
  });
}

function answerMetrics(registry: Registry, request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? "").split("?", 1)[0];
  const headers = { "cache-control": "no-store", "x-content-type-options": "nosniff" };
  if (path !== "/metrics" || (request.method !== "GET" && request.method !== "HEAD")) {
    response.writeHead(404, { ...headers, "content-type": "application/json" });
    response.end(JSON.stringify({ error: "not_found", error_description: "No such route." }));
    return;
  }
  registry.metrics().then(
    (text) => {
      response.writeHead(200, { ...headers, "content-type": registry.contentType });
      response.end(request.method === "HEAD" ? undefined : text);
    },
    () => {
      response.writeHead(500, { ...headers, "content-type": "application/json" });
      response.end(JSON.stringify({ error: "server_error", error_description: "Internal server error." }));
    },
  );
}
