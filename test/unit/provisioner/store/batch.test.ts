/** TurnBatcher: calls of one turn go as one batch; calls made while batches are in flight form the next. */
import { describe, expect, it } from "vitest";
import { TurnBatcher, type BatchResult } from "../../../../src/provisioner/store/batch.js";

/**
 * settle lets the batcher's own turn run: it schedules with setImmediate, so a few check phases in a row
 * are enough whatever the load. A timer (setTimeout 1 ms) can fire first on a busy machine.
 */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

describe("TurnBatcher", () => {
  it("sends the calls of one turn as one batch and answers each with its own result", async () => {
    const batches: number[][] = [];
    const b = new TurnBatcher<number, number>(async (xs) => {
      batches.push([...xs]);
      return xs.map((x): BatchResult<number> =>
        x < 0 ? { ok: false, error: new Error(`neg ${x}`) } : { ok: true, value: x * 2 },
      );
    });
    const calls = [1, 2, -3, 4].map((x) => b.call(x));
    const out = await Promise.allSettled(calls);
    expect(batches).toEqual([[1, 2, -3, 4]]);
    expect(out.map((o) => (o.status === "fulfilled" ? o.value : (o.reason as Error).message))).toEqual([
      2,
      4,
      "neg -3",
      8,
    ]);
  });

  it("holds calls while maxInFlight batches run, then sends them together (group commit), bounded by max", async () => {
    const batches: number[][] = [];
    const gates: (() => void)[] = [];
    const b = new TurnBatcher<number, number>(
      async (xs) => {
        batches.push([...xs]);
        await new Promise<void>((r) => gates.push(r));
        return xs.map((x) => ({ ok: true, value: x }));
      },
      { maxInFlight: 1, max: 3 },
    );
    const first = b.call(0);
    await settle();
    expect(batches).toEqual([[0]]);
    const later = [1, 2, 3, 4].map((x) => b.call(x));
    await settle();
    // Nothing more goes while the first batch is in flight.
    expect(batches).toHaveLength(1);
    gates.shift()!();
    expect(await first).toBe(0);
    await settle();
    expect(batches).toEqual([[0], [1, 2, 3]]);
    gates.shift()!();
    await settle();
    gates.shift()!();
    expect(await Promise.all(later)).toEqual([1, 2, 3, 4]);
    expect(batches).toEqual([[0], [1, 2, 3], [4]]);
  });

  it("rejects every call of a batch whose command failed, and keeps serving later calls", async () => {
    let fail = true;
    const b = new TurnBatcher<string, string>(async (xs) => {
      if (fail) throw new Error("server gone");
      return xs.map((x) => ({ ok: true, value: x.toUpperCase() }));
    });
    const bad = await Promise.allSettled([b.call("a"), b.call("b")]);
    expect(bad.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    fail = false;
    expect(await b.call("c")).toBe("C");
    // A batch function that throws synchronously or answers too few results rejects, never hangs.
    const short = new TurnBatcher<number, number>(() => Promise.resolve([]));
    await expect(short.call(1)).rejects.toThrow(/0 results for 1 calls/);
    const sync = new TurnBatcher<number, number>(() => {
      throw new Error("sync");
    });
    await expect(sync.call(1)).rejects.toThrow("sync");
  });
});
