// Refresh traffic as careful clients send it: each client holds one session's refresh token,
// rotates it over and over across the instances, retries on 503, and when an answer never
// comes (the instance died, the connection broke) presents the same token again, twice, and
// expects one and the same successor within the grace window.
import type { ClientRecord } from "./consistency.js";
import { delay, postJson } from "./cluster.js";

/** One client's session, as the load drives it. */
export class LoadClient implements ClientRecord {
  readonly name: string;
  held: string;
  readonly received: string[];
  readonly rotations: { presented: string; successor: string }[] = [];

  constructor(name: string, refreshToken: string) {
    this.name = name;
    this.held = refreshToken;
    this.received = [refreshToken];
  }

  accept(presented: string, successor: string): void {
    this.rotations.push({ presented, successor });
    if (successor !== this.held) {
      this.received.push(successor);
      this.held = successor;
    }
  }
}

/** One request of the load. `status` 0: no answer (refused, reset, timed out). */
export interface LoadEvent {
  /** Milliseconds since the load started (or its `origin`), when the request was sent. */
  readonly at: number;
  readonly url: string;
  readonly status: number;
  readonly ms: number;
  readonly error: string | null;
}

/** A refresh whose answer never came, retried. */
export interface LostAnswer {
  /** The token whose refresh got no answer. */
  readonly presented: string;
  /** Wall-clock time (epoch ms) the first retry was sent: a successor stored before it was stored by the lost request. */
  readonly firstRetryAt: number;
  /** From the lost request's start to the second retry's 200, in milliseconds. */
  readonly settledMs: number;
  readonly attempts: number;
  /** Both retries got the same successor. */
  readonly identical: boolean;
}

/** What a load run saw. */
export interface LoadResult {
  readonly events: LoadEvent[];
  readonly lost: LostAnswer[];
  /** Answers no careful client should ever get (a 401 for its own token, a 500, a 503 without Retry-After…). */
  readonly unexpected: string[];
  readonly durationMs: number;
}

/** Options of {@link runRefreshLoad}. */
export interface LoadOptions {
  readonly clients: readonly LoadClient[];
  /** The instances, tried in turn; read on every request, so a test may change the list. */
  readonly urls: () => readonly string[];
  readonly durationMs: number;
  /** Cap on requests over all clients. */
  readonly maxRequests: number;
  /** The server's refresh grace, in milliseconds: retries of a lost answer must settle within it. */
  readonly graceMs: number;
  /** Per-request timeout. Default 4000 ms. */
  readonly timeoutMs?: number;
  /** Wait after a 503 before trying again (a client honouring Retry-After would wait longer). Default 100 ms. */
  readonly retryDelayMs?: number;
  /** Think time between two refreshes of one client. Default 0. */
  readonly pauseMs?: number;
  /** Stops the load early when it returns true. */
  readonly stop?: () => boolean;
  /** `performance.now()` that event times count from. Default: when the load starts. */
  readonly origin?: number;
}

/** Runs refresh clients concurrently until the duration, the request cap or `stop()`. */
export async function runRefreshLoad(options: LoadOptions): Promise<LoadResult> {
  const started = options.origin ?? performance.now();
  const end = performance.now() + options.durationMs;
  const events: LoadEvent[] = [];
  const lost: LostAnswer[] = [];
  const unexpected: string[] = [];
  const timeoutMs = options.timeoutMs ?? 4000;
  const retryDelayMs = options.retryDelayMs ?? 100;
  let sent = 0;
  const going = () => performance.now() < end && sent < options.maxRequests && !(options.stop?.() ?? false);

  const attempt = async (
    url: string,
    token: string,
  ): Promise<{ status: number; successor?: string; error: string | null; retryAfter: string | null }> => {
    sent += 1;
    const at = performance.now() - started;
    try {
      const answer = await postJson(`${url}/auth/refresh`, { refresh_token: token }, { timeoutMs });
      const error = typeof answer.body.error === "string" ? answer.body.error : null;
      events.push({ at, url, status: answer.status, ms: answer.ms, error });
      const successor = typeof answer.body.refresh_token === "string" ? answer.body.refresh_token : undefined;
      return {
        status: answer.status,
        ...(successor ? { successor } : {}),
        error,
        retryAfter: answer.headers.get("retry-after"),
      };
    } catch (error) {
      const cause =
        (error as { cause?: { code?: string } }).cause?.code ?? (error instanceof Error ? error.name : "error");
      events.push({ at, url, status: 0, ms: performance.now() - started - at, error: cause });
      return { status: 0, error: cause, retryAfter: null };
    }
  };

  const drive = async (client: LoadClient, first: number) => {
    let cursor = first;
    const nextUrl = () => {
      const urls = options.urls();
      return urls[cursor++ % urls.length]!;
    };
    while (going()) {
      const token = client.held;
      const lostAt = performance.now();
      const result = await attempt(nextUrl(), token);
      if (result.status === 200 && result.successor) {
        client.accept(token, result.successor);
      } else if (result.status === 503) {
        if (result.error !== "temporarily_unavailable" || result.retryAfter === null) {
          unexpected.push(`${client.name}: 503 ${result.error} retry-after ${result.retryAfter}`);
        }
        await delay(retryDelayMs);
      } else if (result.status === 0) {
        // The answer never came: present the same token again, twice, as a client retrying
        // and a second tab would; both must get the one successor.
        const answers: string[] = [];
        let attempts = 0;
        const firstRetryAt = Date.now();
        while (answers.length < 2 && performance.now() - lostAt < options.graceMs) {
          attempts += 1;
          const retry = await attempt(nextUrl(), token);
          if (retry.status === 200 && retry.successor) answers.push(retry.successor);
          else if (retry.status === 503 || retry.status === 0) await delay(retryDelayMs / 2);
          else {
            unexpected.push(`${client.name}: retry of a lost answer got ${retry.status} ${retry.error}`);
            return;
          }
        }
        if (answers.length < 2) {
          unexpected.push(`${client.name}: a lost answer was not settled within the grace window`);
          return;
        }
        lost.push({
          presented: token,
          firstRetryAt,
          settledMs: performance.now() - lostAt,
          attempts,
          identical: answers[0] === answers[1],
        });
        if (answers[0] !== answers[1])
          unexpected.push(`${client.name}: two retries of one token got different successors`);
        client.accept(token, answers[0]!);
      } else {
        unexpected.push(`${client.name}: ${result.status} ${result.error}`);
        return;
      }
      if (options.pauseMs) await delay(options.pauseMs);
    }
  };

  await Promise.all(options.clients.map((client, index) => drive(client, index)));
  return { events, lost, unexpected, durationMs: performance.now() - started };
}

/** Status counts of `events`, e.g. `{ "200": 812, "0": 3 }`. */
export function statusCounts(events: readonly LoadEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const event of events) counts[event.status] = (counts[event.status] ?? 0) + 1;
  return counts;
}
