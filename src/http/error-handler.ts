import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { isTesseraError } from "../core/errors.js";
import { errorAnswerOf, HTTP_ERRORS, type HttpErrorShape, INTERNAL_ERROR } from "../core/http-errors.js";
import { isOAuthRoute } from "./oauth-routes.js";

interface FrameworkError {
  statusCode?: number;
  code?: string;
  validation?: unknown;
  message?: string;
}

/**
 * The HTTP answer for any error thrown while handling a request. On the token endpoint
 * (`oauth: true`) every grant error is a 400, as RFC 6749 §5.2 requires.
 */
export function httpErrorOf(error: unknown, oauth = false): HttpErrorShape {
  if (isTesseraError(error)) {
    const shape = HTTP_ERRORS[error.code];
    if (oauth && shape.status === 401 && shape.error === "invalid_grant") return { ...shape, status: 400 };
    if (error.code === "invalid_request" && error.message) return { ...shape, description: sentence(error.message) };
    if (error.retryAfterSeconds !== undefined) return { ...shape, retryAfterSeconds: error.retryAfterSeconds };
    return shape;
  }
  const framework = (error ?? {}) as FrameworkError;
  if (framework.validation !== undefined) {
    const description = sentence(framework.message ?? "the request is malformed");
    return { status: 400, error: "invalid_request", description };
  }
  const status = framework.statusCode;
  if (status === 429) return { status, error: "too_many_requests", description: "Too many requests; retry later." };
  if (status === 415) {
    return { status: oauth ? 400 : 415, error: "invalid_request", description: "Unsupported content type." };
  }
  if (status === 413) return { status, error: "invalid_request", description: "The request body is too large." };
  if (typeof status === "number" && status >= 400 && status < 500) {
    // Fastify's own 4xx messages describe the request's form, never its content.
    return { status, error: "invalid_request", description: sentence(framework.message ?? "the request is malformed") };
  }
  return INTERNAL_ERROR;
}

/**
 * The one error handler of the Fastify plugin and the standalone server: answers with
 * {@link httpErrorOf}'s shape in its wire form, records the error code for metrics and logs
 * every 5xx with its cause.
 */
export function answerError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const shape = httpErrorOf(error, isOAuthRoute(request.routeOptions.url));
  if (isTesseraError(error)) request.tesseraErrorCode = error.code;
  if (shape.status >= 500) request.log.error({ err: error }, "request failed");
  const answer = errorAnswerOf(shape);
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

function sentence(text: string): string {
  const trimmed = text.slice(0, 200);
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1) + (trimmed.endsWith(".") ? "" : ".");
}
