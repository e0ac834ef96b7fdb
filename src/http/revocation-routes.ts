import type { FastifyInstance } from "fastify";
import { epochSeconds } from "../core/clock.js";
import { encodeRevocationFeed } from "../core/revocation.js";
import { publishRevocations } from "../service/revocation-publisher.js";
import type { SessionRevocations } from "../service/session-revocations.js";

/** Options of {@link registerRevocationRoutes}. */
export interface RevocationRoutesOptions {
  readonly revocations: SessionRevocations;
  /** Publish every revocation to this Redis on the revocation channel. Default none. */
  readonly redisUrl?: string | null;
}

interface RevocationsQuery {
  since?: string;
}

const errorResponse = {
  type: "object",
  properties: { error: { type: "string" }, error_description: { type: "string" } },
  required: ["error"],
} as const;

/** Route schema of `GET /auth/revocations`. Unknown parameters are refused. */
export const revocationSchema = {
  tags: ["auth"],
  summary: "Sessions revoked within the last access-token lifetime, for resource servers",
  querystring: {
    type: "object",
    additionalProperties: false,
    properties: { since: { type: "string", pattern: "^(0|[1-9][0-9]{0,11})$" } },
  },
  response: {
    200: {
      type: "object",
      required: ["revoked", "window_seconds", "generated_at"],
      properties: {
        revoked: {
          type: "array",
          items: {
            type: "object",
            required: ["sid", "revoked_at"],
            properties: { sid: { type: "string" }, revoked_at: { type: "integer" } },
          },
        },
        window_seconds: { type: "integer" },
        generated_at: { type: "integer" },
      },
    },
    "4xx": errorResponse,
  },
} as const;

/**
 * Registers `GET /auth/revocations?since=<unix s>`: the sessions revoked within the last
 * access-token lifetime (`since` is clamped to it), so resource servers refuse their tokens.
 * With `redisUrl`, also publishes each revocation as `{"sids":[…],"revoked_at":<unix s>}`;
 * a Redis outage is logged and never fails a request.
 */
export function registerRevocationRoutes(
  app: FastifyInstance,
  { revocations, redisUrl }: RevocationRoutesOptions,
): void {
  app.get<{ Querystring: RevocationsQuery }>(
    "/auth/revocations",
    { schema: revocationSchema },
    async (request, reply) => {
      const since = request.query.since === undefined ? undefined : new Date(Number(request.query.since) * 1000);
      const { revoked, generatedAt } = await revocations.listRecent(since);
      // Shared caches must not keep a stale list; clients poll.
      void reply.header("cache-control", "no-store");
      return encodeRevocationFeed({
        entries: revoked.map((session) => ({ sid: session.id, revokedAt: epochSeconds(session.revokedAt) })),
        windowSeconds: revocations.feedWindowSeconds,
        generatedAt: epochSeconds(generatedAt),
      });
    },
  );

  if (redisUrl) {
    const close = publishRevocations(revocations, { redisUrl, logger: app.log });
    app.addHook("onClose", close);
  }
}
