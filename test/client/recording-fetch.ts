/** One request as the client sent it. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | null;
}

/** Decides per request whether to answer instead of the network, or to rewrite it first. */
export type Intercept = (request: Request) => Request | Response | Promise<Request | Response>;

/**
 * A `fetch` for the client's `fetch` option that records every request before passing it to
 * the real `fetch`, so tests count refreshes as the server receives them.
 */
export function recordingFetch(intercept?: Intercept) {
  const requests: RecordedRequest[] = [];
  const fetchImpl = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const original = new Request(input, init);
    requests.push({
      method: original.method,
      path: new URL(original.url).pathname,
      authorization: original.headers.get("authorization"),
    });
    const outcome = intercept ? await intercept(original) : original;
    return outcome instanceof Response ? outcome : fetch(outcome);
  };
  return {
    fetch: fetchImpl,
    requests,
    /** How many `method path` requests were sent. */
    count: (method: string, path: string) =>
      requests.filter((request) => request.method === method && request.path === path).length,
  };
}

/** A clock `offsetMs` ahead of the wall clock; move it with `advance`. */
export function shiftedClock(offsetMs = 0) {
  let offset = offsetMs;
  return {
    now: () => new Date(Date.now() + offset),
    advance: (ms: number) => {
      offset += ms;
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
