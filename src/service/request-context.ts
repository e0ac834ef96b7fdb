import { LIMITS } from "../store/store.js";

/** Where a request came from, recorded on sessions and audit events. */
export interface RequestContext {
  readonly ip: string | null;
  readonly userAgent: string | null;
  /**
   * `performance.now()` when the request arrived; refresh judges its grace window as of then.
   * Absent: when the service is called.
   */
  readonly receivedAt?: number;
}

/** The context of work done by an operator through the CLI. */
export const OPERATOR_CONTEXT: RequestContext = Object.freeze({ ip: null, userAgent: "tessera-cli" });

/** `context` cut to what the store keeps. */
export function storedContext(context: RequestContext): RequestContext {
  return {
    ip: context.ip === null ? null : context.ip.slice(0, LIMITS.ip),
    userAgent: context.userAgent === null ? null : context.userAgent.slice(0, LIMITS.userAgent),
  };
}
