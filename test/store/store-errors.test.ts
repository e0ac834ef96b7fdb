import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isTesseraError } from "../../src/core/errors.js";
import {
  isConnectionError,
  isTransientConflict,
  isUniqueViolation,
  translateStoreError,
} from "../../src/store/store-errors.js";

/** An error shaped as the drivers throw it. */
function driverError(message: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), fields);
}

const UNAVAILABLE: [string, Error][] = [
  ["pg: server not listening", driverError("connect ECONNREFUSED 127.0.0.1:5432", { code: "ECONNREFUSED" })],
  ["pg: connection cut mid-query", driverError("Connection terminated unexpectedly")],
  ["pg: pool connect timeout", driverError("timeout exceeded when trying to connect")],
  ["pg: admin shutdown", driverError("terminating connection due to administrator command", { code: "57P01" })],
  ["pg: cannot connect now (starting up)", driverError("the database system is starting up", { code: "57P03" })],
  ["pg: too many connections", driverError("sorry, too many clients already", { code: "53300" })],
  ["pg: dead client reused", driverError("Client was closed and is not queryable")],
  [
    "node: dual-stack connect failure",
    Object.assign(new AggregateError([driverError("x", { code: "ECONNREFUSED" })], ""), {}),
  ],
  [
    "mysql2: server not listening",
    driverError("connect ECONNREFUSED 127.0.0.1:3306", { code: "ECONNREFUSED", fatal: true }),
  ],
  [
    "mysql2: connection lost",
    driverError("Connection lost: The server closed the connection.", {
      code: "PROTOCOL_CONNECTION_LOST",
      fatal: true,
    }),
  ],
  ["mysql2: closed connection reused", driverError("Can't add new command when connection is in closed state")],
  ["mysql2: too many connections", driverError("Too many connections", { code: "ER_CON_COUNT_ERROR", errno: 1040 })],
  [
    "mysql2: lock wait timeout",
    driverError("Lock wait timeout exceeded", { code: "ER_LOCK_WAIT_TIMEOUT", errno: 1205 }),
  ],
  ["sqlite: locked for too long", driverError("database is locked", { code: "SQLITE_BUSY" })],
  ["pg: no answer within query_timeout", driverError("Query read timeout")],
  ["pg: statement_timeout", driverError("canceling statement due to statement timeout", { code: "57014" })],
  [
    "pg: idle_in_transaction_session_timeout",
    driverError("terminating connection due to idle-in-transaction timeout", { code: "25P03" }),
  ],
  ["node: route to the database lost", driverError("connect ENETUNREACH 10.0.0.1:5432", { code: "ENETUNREACH" })],
  [
    "mysql2: no answer within the query's timeout",
    driverError("Query inactivity timeout", { code: "PROTOCOL_SEQUENCE_TIMEOUT" }),
  ],
  [
    "mariadb: max_statement_time",
    driverError("Query execution was interrupted (max_statement_time exceeded)", { errno: 1969 }),
  ],
];

const NOT_UNAVAILABLE: [string, Error][] = [
  ["pg: syntax error", driverError('syntax error at or near "selec"', { code: "42601" })],
  ["pg: unique violation", driverError("duplicate key value violates unique constraint", { code: "23505" })],
  ["mysql2: unknown column", driverError("Unknown column 'x'", { code: "ER_BAD_FIELD_ERROR", errno: 1054 })],
  ["sqlite: constraint", driverError("UNIQUE constraint failed: users.username", { code: "SQLITE_CONSTRAINT_UNIQUE" })],
  ["a bug", new TypeError("cannot read properties of undefined")],
];

describe("translateStoreError()", () => {
  for (const [name, error] of UNAVAILABLE) {
    it(`turns ${name} into store_unavailable, keeping the cause`, () => {
      assert.throws(
        () => translateStoreError(error),
        (thrown) => isTesseraError(thrown, "store_unavailable") && thrown.cause === error,
      );
    });
  }
  for (const [name, error] of NOT_UNAVAILABLE) {
    it(`rethrows ${name} unchanged`, () => {
      assert.throws(
        () => translateStoreError(error),
        (thrown) => thrown === error,
      );
      assert.equal(isConnectionError(error), false);
    });
  }
  it("turns a deadlock that outlived the store's retries into store_unavailable", () => {
    const deadlock = driverError("Deadlock found when trying to get lock", { code: "ER_LOCK_DEADLOCK", errno: 1213 });
    assert.throws(
      () => translateStoreError(deadlock),
      (thrown) => isTesseraError(thrown, "store_unavailable"),
    );
  });
});

describe("isTransientConflict()", () => {
  it("recognizes deadlocks and serialization failures of all three databases", () => {
    for (const code of ["ER_LOCK_DEADLOCK", "40001", "40P01", "SQLITE_BUSY_SNAPSHOT"])
      assert.equal(isTransientConflict(driverError("x", { code })), true, code);
    assert.equal(isTransientConflict(driverError("x", { code: "23505" })), false);
  });
});

describe("isUniqueViolation()", () => {
  it("recognizes unique violations of all three databases and nothing else", () => {
    for (const code of ["23505", "ER_DUP_ENTRY", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"])
      assert.equal(isUniqueViolation(driverError("x", { code })), true, code);
    for (const code of ["23503", "ER_NO_REFERENCED_ROW_2", "SQLITE_CONSTRAINT_FOREIGNKEY"])
      assert.equal(isUniqueViolation(driverError("x", { code })), false, code);
  });
});
