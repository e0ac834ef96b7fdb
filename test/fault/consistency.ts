// After a fault: what the database holds must still be a set of clean rotation chains, and
// every refresh token a client was handed must be either usable or deliberately ended.
import { sha256Hex } from "./cluster.js";

/** Runs one SQL statement and returns its rows (any of the three databases). */
export type QueryRows = (sql: string) => Promise<Record<string, unknown>[]>;

/** What a client saw: every refresh token it was handed, and the one it holds now. */
export interface ClientRecord {
  readonly name: string;
  /** Every refresh token handed to this client, oldest first (login's included). */
  readonly received: readonly string[];
  /** The token it would present next. */
  readonly held: string;
  /** Pairs (presented, successor answered), one per 200 answer to a refresh. */
  readonly rotations: readonly { readonly presented: string; readonly successor: string }[];
}

interface TokenRow {
  readonly id: string;
  readonly sessionId: string;
  readonly hash: string;
  readonly parentId: string | null;
  readonly used: boolean;
}

/** Counts that describe the tables checked. */
export interface ConsistencyFigures {
  readonly tokens: number;
  readonly sessions: number;
  readonly usedTokens: number;
  readonly revokedSessions: number;
}

/**
 * Checks the rotation invariants on the `refresh_tokens` and `sessions` tables, and the clients'
 * records against them. Returns the violations (empty when consistent) and figures.
 *
 * - no session holds two unused tokens (two live tokens);
 * - every used token has exactly one successor; every successor's parent exists and is used;
 * - every answered rotation is in the database as parent and child;
 * - every token handed out is either used (ended by rotation, with its successor) or the one
 *   its client holds, unused, in an open session; or its session was revoked.
 * With `allowRevoked: false` (default) any revoked session is a violation too: no legitimate
 * retry may be taken for reuse.
 */
export async function checkConsistency(
  query: QueryRows,
  clients: readonly ClientRecord[],
  options: { allowRevoked?: boolean } = {},
): Promise<{ violations: string[]; figures: ConsistencyFigures }> {
  const tokenRows = await query("select id, session_id, token_hash, parent_id, used_at from refresh_tokens");
  const sessionRows = await query("select id, revoked_at, revoked_reason from sessions");
  const tokens: TokenRow[] = tokenRows.map((row) => ({
    id: String(row.id),
    sessionId: String(row.session_id),
    hash: String(row.token_hash),
    parentId: row.parent_id === null ? null : String(row.parent_id as string),
    used: row.used_at !== null,
  }));
  const revoked = new Map(
    sessionRows.filter((row) => row.revoked_at !== null).map((row) => [String(row.id), String(row.revoked_reason)]),
  );
  const byId = new Map(tokens.map((token) => [token.id, token]));
  const byHash = new Map(tokens.map((token) => [token.hash, token]));
  const children = new Map<string, TokenRow[]>();
  const unusedBySession = new Map<string, number>();
  for (const token of tokens) {
    if (token.parentId !== null) children.set(token.parentId, [...(children.get(token.parentId) ?? []), token]);
    if (!token.used) unusedBySession.set(token.sessionId, (unusedBySession.get(token.sessionId) ?? 0) + 1);
  }
  const violations: string[] = [];
  for (const [sessionId, count] of unusedBySession)
    if (count > 1) violations.push(`session ${sessionId} has ${count} live tokens`);
  for (const token of tokens) {
    const successors = children.get(token.id) ?? [];
    if (token.used && successors.length !== 1)
      violations.push(`used token ${token.id} has ${successors.length} successors`);
    if (!token.used && successors.length > 0)
      violations.push(`unused token ${token.id} has ${successors.length} successors`);
    if (token.parentId !== null) {
      const parent = byId.get(token.parentId);
      if (!parent) violations.push(`token ${token.id} names a missing parent`);
      else if (!parent.used) violations.push(`token ${token.id} is the successor of the unused token ${parent.id}`);
    }
  }
  if (!options.allowRevoked) {
    for (const [sessionId, reason] of revoked) violations.push(`session ${sessionId} was revoked (${reason})`);
  }
  for (const client of clients) {
    for (const { presented, successor } of client.rotations) {
      const parent = byHash.get(sha256Hex(presented));
      const child = byHash.get(sha256Hex(successor));
      if (!parent || !child || child.parentId !== parent.id) {
        violations.push(`${client.name}: an answered rotation is not in the database as parent and child`);
      }
    }
    for (const token of client.received) {
      const row = byHash.get(sha256Hex(token));
      if (!row) {
        violations.push(`${client.name}: a token it was handed is not in the database`);
        continue;
      }
      if (revoked.has(row.sessionId)) continue; // deliberately ended (and reported above unless allowed)
      if (row.used) continue; // ended by rotation; its successor was checked above
      if (token !== client.held) violations.push(`${client.name}: a token it no longer holds is still live`);
    }
    const held = byHash.get(sha256Hex(client.held));
    if (!held || held.used) violations.push(`${client.name}: the token it holds is not usable`);
  }
  return {
    violations,
    figures: {
      tokens: tokens.length,
      sessions: sessionRows.length,
      usedTokens: tokens.filter((token) => token.used).length,
      revokedSessions: revoked.size,
    },
  };
}
