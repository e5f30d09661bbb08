/**
 * TurnBatcher: calls of one turn go as one batch; calls made while batches are in flight form the next; with
 * `immediate`, a call made while the batcher is idle goes at once.
 */
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

  describe("immediate", () => {
    /** gated is a batcher whose batches are recorded and each held until its gate is opened. */
    function gated(options: { maxInFlight?: number; immediate?: boolean }) {
      const batches: number[][] = [];
      const gates: (() => void)[] = [];
      const b = new TurnBatcher<number, number>(
        async (xs) => {
          batches.push([...xs]);
          await new Promise<void>((r) => gates.push(r));
          return xs.map((x) => ({ ok: true, value: x }));
        },
        { max: 3, ...options },
      );
      return { b, batches, gates, open: () => gates.shift()!() };
    }

    it("sends a lone call within call() when idle; without the option it waits for the turn", async () => {
      const now = gated({ immediate: true });
      const a = now.b.call(1);
      // No await in between: the batch started synchronously.
      expect(now.batches).toEqual([[1]]);
      const turn = gated({});
      const c = turn.b.call(1);
      expect(turn.batches).toEqual([]);
      await settle();
      expect(turn.batches).toEqual([[1]]);
      now.open();
      turn.open();
      expect(await Promise.all([a, c])).toEqual([1, 1]);
    });

    it("a burst keeps batching: the first call goes alone, those made while it is in flight together after it", async () => {
      for (const maxInFlight of [1, 2]) {
        const { b, batches, gates, open } = gated({ immediate: true, maxInFlight });
        const calls = [0, 1, 2, 3, 4].map((x) => b.call(x));
        expect(batches).toEqual([[0]]);
        await settle();
        if (maxInFlight === 1) {
          // One batch at a time: the others wait for the first to settle.
          expect(batches).toEqual([[0]]);
          open();
          await settle();
        }
        expect(batches).toEqual([[0], [1, 2, 3]]);
        // Each batch let through in turn until every call is answered.
        let answered = false;
        const all = Promise.all(calls).finally(() => (answered = true));
        while (!answered) {
          if (gates.length > 0) open();
          await settle();
        }
        expect(await all).toEqual([0, 1, 2, 3, 4]);
        expect(batches).toEqual([[0], [1, 2, 3], [4]]);
      }
    });

    it("a call made while the next batch is being collected joins it; once idle again, a call goes at once", async () => {
      const { b, batches, open } = gated({ immediate: true, maxInFlight: 1 });
      const first = b.call(0);
      const queued = [1, 2].map((x) => b.call(x));
      // Registered before the first batch settles, this runs in the check phase before the batcher's own
      // turn (scheduled when the batch settles), so the call is made while the next batch is collected.
      const late = new Promise<{ answer: Promise<number> }>((r) =>
        setImmediate(() => r({ answer: b.call(3) })),
      );
      open();
      expect(await first).toBe(0);
      const third = (await late).answer;
      // The next batch is still being collected (its turn comes after this check-phase callback).
      expect(batches).toEqual([[0]]);
      await settle();
      expect(batches).toEqual([[0], [1, 2, 3]]);
      open();
      expect(await Promise.all([...queued, third])).toEqual([1, 2, 3]);
      await settle();
      const again = b.call(9);
      expect(batches).toEqual([[0], [1, 2, 3], [9]]);
      open();
      expect(await again).toBe(9);
    });

    it("a lone batch that throws synchronously rejects its call, and the batcher serves the next one", async () => {
      let fail = true;
      const b = new TurnBatcher<number, number>(
        (xs) => {
          if (fail) throw new Error("sync");
          return Promise.resolve(xs.map((x) => ({ ok: true, value: x })));
        },
        { immediate: true },
      );
      await expect(b.call(1)).rejects.toThrow("sync");
      fail = false;
      expect(await b.call(2)).toBe(2);
    });
  });
});
