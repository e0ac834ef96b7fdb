import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { SessionRevocations } from "../service/session-revocations.js";

/**
 * Prometheus metrics of one server, in a registry of its own: request counts and latencies by
 * route, error codes, revoked sessions, and the process's default metrics. Serves `/metrics`.
 */
export function registerMetrics(app: FastifyInstance, revocations: SessionRevocations): void {
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

  app.addHook("onResponse", async (request, reply) => {
    // The route pattern, never the raw URL: bounded label values and no ids in metrics.
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? "unmatched",
      status: String(reply.statusCode),
    };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
    if (request.tesseraErrorCode) errors.inc({ code: request.tesseraErrorCode });
  });

  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) =>
    reply
      .header("content-type", registry.contentType)
      .header("cache-control", "no-store")
      .send(await registry.metrics()),
  );
}
