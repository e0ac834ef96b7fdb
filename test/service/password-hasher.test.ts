import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import { limitConcurrentHashing, type PasswordHasher } from "../../src/service/password-hasher.js";

/** A hasher whose every call waits until the test finishes it; records how many run at once. */
function heldHasher() {
  const pending: (() => void)[] = [];
  const stats = { running: 0, most: 0 };
  const wait = async <T>(value: T): Promise<T> => {
    stats.running += 1;
    stats.most = Math.max(stats.most, stats.running);
    await new Promise<void>((resolve) => pending.push(resolve));
    stats.running -= 1;
    return value;
  };
  const hasher: PasswordHasher = { hash: (password) => wait(`hashed:${password}`), verify: () => wait(true) };
  const finishOne = async () => {
    pending.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { hasher, stats, finishOne };
}

describe("limitConcurrentHashing()", () => {
  it("runs `concurrency` hashes, queues `queue` more in order and refuses the rest with server_busy", async () => {
    const { hasher, stats, finishOne } = heldHasher();
    const limited = limitConcurrentHashing(hasher, { concurrency: 2, queue: 2 });
    const order: string[] = [];
    const calls = ["a", "b", "c", "d"].map((name) => limited.hash(name).then((value) => order.push(value)));
    await assert.rejects(limited.verify("stored", "e"), (error: unknown) => {
      return error instanceof TesseraError && error.code === "server_busy";
    });
    assert.equal(stats.running, 2);
    for (let i = 0; i < 4; i += 1) await finishOne();
    await Promise.all(calls);
    assert.deepEqual(order, ["hashed:a", "hashed:b", "hashed:c", "hashed:d"]);
    assert.equal(stats.most, 2);
    // The slots are free again.
    const again = limited.verify("stored", "f");
    await finishOne();
    assert.equal(await again, true);
  });

  it("frees the slot when a hash fails", async () => {
    let calls = 0;
    const failing: PasswordHasher = {
      hash: () => {
        calls += 1;
        return Promise.reject(new Error("boom"));
      },
      verify: () => Promise.resolve(true),
    };
    const limited = limitConcurrentHashing(failing, { concurrency: 1, queue: 0 });
    await assert.rejects(limited.hash("x"), /boom/);
    await assert.rejects(limited.hash("y"), /boom/);
    assert.equal(calls, 2);
  });
});
