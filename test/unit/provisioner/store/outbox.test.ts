/** Outbox: ordering, coalescing, bounds and retry, with a scripted apply (no MongoDB needed). */
import fc from "fast-check";
import { MongoNetworkError } from "mongodb";
import { describe, expect, it } from "vitest";
import { StoreError } from "../../../../src/common/errors.js";
import {
  mergePatches,
  Outbox,
  rowKey,
  type OutboxBatch,
  type OutboxOp,
} from "../../../../src/provisioner/store/outbox.js";
import type { RecordPatch, RfconfigRow, VmRecord } from "../../../../src/provisioner/store/types.js";

const down = () => new MongoNetworkError("connect ECONNREFUSED 127.0.0.1:27017");
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const row = (vm: string, port: string, dp = "5", dpPort = port): RfconfigRow => ({
  vm_id: vm,
  vm_port: port,
  ct_id: "0",
  dp_id: dp,
  dp_port: dpPort,
});
const fast = { backoffMs: 5, backoffMaxMs: 20, writeWaitMs: 500 };
/** flat lists the operations of an apply call: a batch's entries, or the one operation. */
const flat = (op: OutboxOp | OutboxBatch): readonly OutboxOp[] => (op.type === "batch" ? op.ops : [op]);

/** Harness: an apply that fails while `down` is set and logs what it applied. */
function harness(opts: { concurrency?: number; maxEvents?: number } = {}) {
  const state = { down: false, applied: [] as OutboxOp[] };
  const box = new Outbox({
    ...fast,
    ...opts,
    apply: async (op) => {
      await tick(1);
      if (state.down) throw down();
      state.applied.push(...flat(op));
    },
  });
  return { state, box };
}

describe("Outbox", () => {
  it("answers written when the write went through", async () => {
    const { state, box } = harness();
    expect(await box.enqueue({ type: "rfconfig-remove", vmId: "1" })).toBe("written");
    expect(state.applied).toEqual([{ type: "rfconfig-remove", vmId: "1" }]);
    expect(box.pending()).toBe(0);
  });

  it("answers queued during an outage, merges a record's patches, and flushes once the server is back", async () => {
    const { state, box } = harness();
    state.down = true;
    const at = new Date(0);
    const outcomes = [];
    outcomes.push(
      await box.enqueue({
        type: "record",
        dpidHex: "a",
        patch: { state: "joined", switch: { peer: "p", version: 4, connected: true } },
        at,
      }),
    );
    for (let i = 0; i < 50; i++) {
      outcomes.push(
        await box.enqueue({
          type: "record",
          dpidHex: i % 2 ? "a" : "b",
          patch: { attempts: i },
          at: new Date(i),
        }),
      );
    }
    outcomes.push(
      await box.enqueue({
        type: "record",
        dpidHex: "a",
        patch: { switch: { connected: false } },
        at: new Date(99),
      }),
    );
    expect(outcomes.every((o) => o === "queued")).toBe(true);
    expect(box.pending()).toBe(2);
    expect(box.isOnline()).toBe(false);
    const flushed = new Promise<number>((r) => box.once("flushed", r));
    state.down = false;
    expect(await flushed).toBe(2);
    const a = state.applied.find((o) => o.type === "record" && o.dpidHex === "a");
    expect(a).toEqual({
      type: "record",
      dpidHex: "a",
      patch: { state: "joined", attempts: 49, switch: { peer: "p", version: 4, connected: false } },
      at: new Date(99),
    });
    expect(box.stats()).toMatchObject({ pending: 0, written: 2, online: true });
    expect(box.stats().retries).toBeGreaterThan(0);
  });

  it("keeps at most maxEvents pending events, dropping the oldest and counting them", async () => {
    const { state, box } = harness({ maxEvents: 5 });
    state.down = true;
    const ev = (i: number): OutboxOp => ({
      type: "event",
      id: `e${i}`,
      event: { at: new Date(i), kind: "k", detail: `${i}` },
    });
    for (let i = 0; i < 12; i++) await box.enqueue(ev(i));
    // One may be in flight (not droppable) when the outage starts.
    expect(box.pending()).toBeLessThanOrEqual(6);
    expect(box.stats().droppedEvents).toBeGreaterThanOrEqual(6);
    state.down = false;
    await box.drain(2_000);
    const ids = state.applied.map((o) => (o.type === "event" ? o.id : ""));
    expect(ids.slice(-5)).toEqual(["e7", "e8", "e9", "e10", "e11"]);
    expect(ids.length + box.stats().droppedEvents).toBe(12);
  });

  it("coalesces repeated rfconfig rows and removals without changing the outcome", async () => {
    const { state, box } = harness();
    state.down = true;
    const remove = (vmId: string): OutboxOp => ({ type: "rfconfig-remove", vmId });
    const upsert = (...rows: RfconfigRow[]): OutboxOp => ({ type: "rfconfig-upsert", rows });
    await box.enqueue(remove("0")); // in flight when the outage is noticed
    await box.enqueue(upsert(row("1", "1"), row("1", "2")));
    // Same interface, another switch port: kept, since applying it displaces the holder of port 9.
    await box.enqueue(upsert(row("1", "1", "5", "9"), row("2", "1", "6")));
    await box.enqueue(upsert(row("1", "2"))); // identical to a pending row: that one is dropped
    await box.enqueue(remove("3"));
    await box.enqueue(remove("3")); // joins the pending removal
    await box.enqueue(upsert(row("3", "1", "7")));
    await box.enqueue(remove("3")); // cannot join: the upsert between writes a row of VM 3
    await box.enqueue(upsert(row("3", "1", "7"))); // repeats the upsert; the two removals now join
    expect(box.snapshot()).toEqual([
      remove("0"),
      upsert(row("1", "1")),
      upsert(row("1", "1", "5", "9"), row("2", "1", "6")),
      upsert(row("1", "2")),
      remove("3"),
      upsert(row("3", "1", "7")),
    ]);
    state.down = false;
    expect(await box.drain(2_000)).toBe(true);
    // Back online, upserts waiting back to back go as one batch (rows in order), stopping at the removal.
    expect(state.applied).toEqual([
      remove("0"),
      upsert(row("1", "1"), row("1", "1", "5", "9"), row("2", "1", "6"), row("1", "2")),
      remove("3"),
      upsert(row("3", "1", "7")),
    ]);
  });

  it("a record deletion supersedes the record's pending patches; later patches follow it", async () => {
    const { state, box } = harness();
    state.down = true;
    await box.enqueue({ type: "event", id: "x", event: { at: new Date(0), kind: "k" } });
    await box.enqueue({ type: "record", dpidHex: "a", patch: { state: "running" }, at: new Date(1) });
    await box.enqueue({ type: "record-delete", dpidHex: "a" });
    await box.enqueue({ type: "record", dpidHex: "a", patch: { state: "joined" }, at: new Date(2) });
    await box.enqueue({ type: "record", dpidHex: "a", patch: { vmName: "v" }, at: new Date(3) });
    expect(box.snapshot().slice(1)).toEqual([
      { type: "record-delete", dpidHex: "a" },
      { type: "record", dpidHex: "a", patch: { state: "joined", vmName: "v" }, at: new Date(3) },
    ]);
    expect(box.pendingPatch("a")).toEqual({ patch: { state: "joined", vmName: "v" }, at: new Date(3) });
  });

  it("drops a write MongoDB refuses, rejects its writer with a StoreError, and goes on", async () => {
    const errors: unknown[] = [];
    const applied: string[] = [];
    const box = new Outbox({
      ...fast,
      apply: async (op) => {
        if (op.type === "rfconfig-remove" && op.vmId === "13") throw new Error("E11000 something permanent");
        applied.push(op.type === "rfconfig-remove" ? op.vmId : "?");
      },
    });
    box.on("writeError", (e) => errors.push(e));
    const bad = box.enqueue({ type: "rfconfig-remove", vmId: "13" });
    const good = box.enqueue({ type: "rfconfig-remove", vmId: "14" });
    await expect(bad).rejects.toBeInstanceOf(StoreError);
    await expect(bad).rejects.toMatchObject({ operation: "outbox.rfconfig-remove" });
    expect(await good).toBe("written");
    expect(applied).toEqual(["14"]);
    expect(errors).toHaveLength(1);
    expect(box.stats()).toMatchObject({ failed: 1, written: 1, pending: 0 });
  });

  it("never runs two entries of one lane at once, and at most `concurrency` entries", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const lanes = new Set<string>();
    const order: string[] = [];
    const box = new Outbox({
      ...fast,
      concurrency: 3,
      apply: async (op) => {
        const ops = flat(op);
        const mine = ops.map((o) => (o.type === "record" || o.type === "record-delete" ? o.dpidHex : o.type));
        // A batch holds at most one write per lane.
        expect(new Set(mine).size).toBe(mine.length);
        for (const lane of mine) {
          expect(lanes.has(lane)).toBe(false);
          lanes.add(lane);
        }
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await tick(2);
        for (const o of ops)
          order.push(o.type === "record" ? `${o.dpidHex}:${String(o.patch.attempts)}` : o.type);
        for (const lane of mine) lanes.delete(lane);
        inFlight--;
      },
    });
    const all = [];
    for (let i = 0; i < 30; i++) {
      all.push(
        box.enqueue({ type: "record", dpidHex: `d${i % 4}`, patch: { attempts: i }, at: new Date(i) }),
      );
      all.push(box.enqueue({ type: "rfconfig-remove", vmId: String(i) }));
      // Deletions are never batched: with the record batch and rfconfig they fill the three slots.
      all.push(box.enqueue({ type: "record-delete", dpidHex: `x${i % 3}` }));
      await tick(0);
    }
    await Promise.all(all);
    expect(maxInFlight).toBe(3);
    // Per record, patches land in the order they were made.
    for (let d = 0; d < 4; d++) {
      const seq = order.filter((x) => x.startsWith(`d${d}:`)).map((x) => Number(x.split(":")[1]));
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
      expect(seq.at(-1)).toBe(28 + d - (d > 1 ? 4 : 0));
    }
  });

  it("batches record patches of distinct records and events that wait behind a batch in flight; a refused batch goes entry by entry", async () => {
    const calls: (OutboxOp | OutboxBatch)[] = [];
    let release!: () => void;
    const box = new Outbox({
      ...fast,
      apply: async (op) => {
        calls.push(op);
        if (calls.length === 1) await new Promise<void>((r) => (release = r));
        if (flat(op).some((o) => o.type === "record" && o.dpidHex === "bad")) throw new Error("refused");
      },
    });
    const at = new Date(0);
    const rec = (d: string, attempts: number) =>
      box.enqueue({ type: "record", dpidHex: d, patch: { attempts }, at });
    // A lone write goes at once, on its own.
    const first = rec("a", 1);
    await tick(0);
    // Meanwhile: patches of a (behind the one in flight), b, c, bad; two events; a deletion of d.
    const later = [rec("a", 2), rec("b", 1), rec("c", 1), rec("bad", 1)];
    const events = [0, 1, 2].map((i) =>
      box.enqueue({ type: "event", id: `e${i}`, event: { at, kind: "k" } }),
    );
    const del = box.enqueue({ type: "record-delete", dpidHex: "d" });
    await tick(0);
    release();
    expect(await first).toBe("written");
    expect(await Promise.all(events)).toEqual(["written", "written", "written"]);
    expect(await del).toBe("written");
    const out = await Promise.allSettled(later);
    expect(out.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected"]);
    const names = (op: OutboxOp | OutboxBatch) =>
      flat(op).map((o) =>
        o.type === "event" ? o.id : o.type === "record" ? `${o.dpidHex}:${String(o.patch.attempts)}` : o.type,
      );
    // One batch of the four patches (a's second patch waited for its first); e0 goes at once, e1 and e2
    // wait for it and go together; the refused batch is retried entry by entry, only the bad entry fails.
    const batches = calls.filter((c) => c.type === "batch").map(names);
    expect(batches).toContainEqual(["a:2", "b:1", "c:1", "bad:1"]);
    expect(batches).toContainEqual(["e1", "e2"]);
    const singles = calls
      .filter((c) => c.type !== "batch")
      .map(names)
      .flat();
    expect(singles).toEqual(
      expect.arrayContaining(["a:1", "e0", "record-delete", "a:2", "b:1", "c:1", "bad:1"]),
    );
    expect(box.stats()).toMatchObject({ failed: 1, pending: 0 });
  });

  it("holds record patches and events while hold() says so (up to maxHoldMs), not rfconfig writes", async () => {
    let holding = true;
    const calls: (OutboxOp | OutboxBatch)[] = [];
    const box = new Outbox({
      ...fast,
      maxHoldMs: 150,
      hold: () => holding,
      apply: (op) => {
        calls.push(op);
        return Promise.resolve();
      },
    });
    const at = new Date(0);
    const a = box.enqueue({ type: "record", dpidHex: "a", patch: { attempts: 1 }, at });
    const rf = box.enqueue({ type: "rfconfig-upsert", rows: [row("1", "1")] });
    const a2 = box.enqueue({ type: "record", dpidHex: "a", patch: { state: "running" }, at });
    expect(await rf).toBe("written");
    await tick(20);
    // Only the rfconfig write went; the record's two patches wait, merged into one.
    expect(calls.map((c) => c.type)).toEqual(["rfconfig-upsert"]);
    expect(box.pendingPatch("a")?.patch).toEqual({ attempts: 1, state: "running" });
    holding = false;
    box.resume();
    expect(await Promise.all([a, a2])).toEqual(["written", "written"]);
    expect(calls.slice(1)).toEqual([
      { type: "record", dpidHex: "a", patch: { attempts: 1, state: "running" }, at },
    ]);
    // Held at most maxHoldMs: a write made while hold() stays true still goes.
    holding = true;
    const t0 = performance.now();
    expect(await box.enqueue({ type: "event", id: "e1", event: { at, kind: "k" } })).toBe("written");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    box.close();
  });

  it("restores operations from a previous run in front of new ones; refuses writes after close", async () => {
    const { state, box } = harness({ concurrency: 1 });
    state.down = true;
    const p = box.enqueue({ type: "rfconfig-remove", vmId: "new" });
    box.restore([
      { type: "rfconfig-remove", vmId: "old1" },
      { type: "rfconfig-remove", vmId: "old2" },
    ]);
    expect(await p).toBe("queued");
    state.down = false;
    await box.drain(2_000);
    expect(state.applied.map((o) => (o.type === "rfconfig-remove" ? o.vmId : ""))).toEqual([
      "old1",
      "old2",
      "new",
    ]);
    box.close();
    await expect(box.enqueue({ type: "rfconfig-remove", vmId: "late" })).rejects.toBeInstanceOf(StoreError);
  });

  it("batches rfconfig upserts waiting back to back, up to a removal; a refused batch is retried entry by entry", async () => {
    const applied: OutboxOp[] = [];
    let gate!: () => void;
    const box = new Outbox({
      ...fast,
      apply: async (op) => {
        if (applied.length === 0) await new Promise<void>((r) => (gate = r));
        if (op.type === "rfconfig-upsert" && op.rows.some((r) => r.vm_id === "66"))
          throw new Error("refused");
        applied.push(...flat(op));
      },
    });
    const first = box.enqueue({ type: "rfconfig-upsert", rows: [row("1", "1")] });
    const rest = [2, 3, 4].map((vm) =>
      box.enqueue({ type: "rfconfig-upsert", rows: [row(String(vm), "1", String(vm))] }),
    );
    const removal = box.enqueue({ type: "rfconfig-remove", vmId: "9" });
    const after = [5, 66, 7].map((vm) =>
      box.enqueue({ type: "rfconfig-upsert", rows: [row(String(vm), "1", String(vm))] }),
    );
    await tick(1);
    gate();
    expect(await first).toBe("written");
    expect(await Promise.all(rest)).toEqual(["written", "written", "written"]);
    expect(await removal).toBe("written");
    const [r5, r66, r7] = await Promise.allSettled(after);
    expect([r5?.status, r66?.status, r7?.status]).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(applied).toEqual([
      { type: "rfconfig-upsert", rows: [row("1", "1")] },
      { type: "rfconfig-upsert", rows: [row("2", "1", "2"), row("3", "1", "3"), row("4", "1", "4")] },
      { type: "rfconfig-remove", vmId: "9" },
      { type: "rfconfig-upsert", rows: [row("5", "1", "5")] },
      { type: "rfconfig-upsert", rows: [row("7", "1", "7")] },
    ]);
    expect(box.stats()).toMatchObject({ failed: 1, written: 7 });
  });

  it("mergePatches merges switch field by field and lets later fields win", () => {
    expect(
      mergePatches(
        { state: "joined", switch: { peer: "a", version: 1 } },
        { state: "running", switch: { connected: true } },
      ),
    ).toEqual({
      state: "running",
      switch: { peer: "a", version: 1, connected: true },
    });
    expect(
      mergePatches({ lastError: { kind: "x", message: "m", at: new Date(0) } }, { lastError: null }),
    ).toEqual({ lastError: null });
    expect(rowKey(row("7", "2"))).toBe("7/2");
  });
});

/**
 * Model check: whatever the sequence of writes, outages and lost acknowledgements, once the outbox is
 * drained the fake database equals the same writes applied directly, in order, once each.
 */
describe("Outbox model check (fast-check)", () => {
  type Db = {
    records: Map<string, RecordPatch>;
    rows: Map<string, RfconfigRow>;
    events: Map<string, number>;
  };
  const empty = (): Db => ({ records: new Map(), rows: new Map(), events: new Map() });
  const applyTo = (db: Db, op: OutboxOp) => {
    switch (op.type) {
      case "record":
        db.records.set(op.dpidHex, mergePatches(db.records.get(op.dpidHex) ?? {}, op.patch));
        break;
      case "record-delete":
        db.records.delete(op.dpidHex);
        break;
      case "rfconfig-upsert":
        for (const r of op.rows) {
          for (const [k, v] of db.rows)
            if (v.dp_id === r.dp_id && v.dp_port === r.dp_port && k !== rowKey(r)) db.rows.delete(k);
          db.rows.set(rowKey(r), r);
        }
        break;
      case "rfconfig-remove":
        for (const [k, v] of db.rows) if (v.vm_id === op.vmId) db.rows.delete(k);
        break;
      case "event":
        // An insert with a fixed _id: a second insert is a duplicate-key error, i.e. a no-op.
        if (!db.events.has(op.id)) db.events.set(op.id, 1);
        break;
    }
  };

  const dpid = fc.constantFrom("a", "b", "c");
  const vm = fc.constantFrom("1", "2", "3");
  const port = fc.constantFrom("1", "2");
  const opArb: fc.Arbitrary<OutboxOp | "outage" | "recover"> = fc.oneof(
    fc.record({
      type: fc.constant("record" as const),
      dpidHex: dpid,
      patch: fc.record(
        {
          state: fc.constantFrom<VmRecord["state"][]>("joined", "running", "stopped"),
          attempts: fc.nat(9),
          switch: fc.record(
            { connected: fc.boolean(), version: fc.constantFrom(1, 4) },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: [] },
      ) as fc.Arbitrary<RecordPatch>,
      at: fc.constant(new Date(0)),
    }),
    fc.record({ type: fc.constant("record-delete" as const), dpidHex: dpid }),
    fc.record({
      type: fc.constant("rfconfig-upsert" as const),
      rows: fc
        .uniqueArray(
          fc.record({
            vm_id: vm,
            vm_port: port,
            ct_id: fc.constant("0"),
            dp_id: fc.constantFrom("5", "6"),
            dp_port: port,
          }),
          { minLength: 1, maxLength: 3, selector: (r) => rowKey(r) },
        )
        .filter((rs) => new Set(rs.map((r) => `${r.dp_id}/${r.dp_port}`)).size === rs.length),
    }),
    fc.record({ type: fc.constant("rfconfig-remove" as const), vmId: vm }),
    fc.constant("event" as const).map((type) => ({ type, id: "", event: { at: new Date(0), kind: "k" } })),
    fc.constant("outage" as const),
    fc.constant("recover" as const),
  );

  it("drained outbox == direct application, under outages and lost acknowledgements", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        async (script, concurrency, ackLoss) => {
          const db = empty();
          const model = empty();
          let isDown = false;
          let n = 0;
          const box = new Outbox({
            backoffMs: 1,
            backoffMaxMs: 4,
            writeWaitMs: 50,
            concurrency,
            apply: async (op) => {
              await tick(0);
              if (isDown) throw down();
              for (const o of flat(op)) applyTo(db, o);
              // The write happened but its acknowledgement is lost: the outbox will apply it again.
              if (ackLoss && n++ % 3 === 0) throw down();
            },
          });
          const writes: Promise<unknown>[] = [];
          let ev = 0;
          for (const step of script) {
            if (step === "outage") isDown = true;
            else if (step === "recover") isDown = false;
            else {
              const op = step.type === "event" ? { ...step, id: `e${ev++}` } : step;
              applyTo(model, op);
              writes.push(box.enqueue(op));
            }
            if (step !== "outage" && step !== "recover" && step.type === "event") await tick(0);
          }
          isDown = false;
          expect(await box.drain(5_000)).toBe(true);
          await Promise.all(writes);
          const byKey = <V>(m: Map<string, V>) => [...m].sort(([a], [b]) => a.localeCompare(b));
          expect(byKey(db.records)).toEqual(byKey(model.records));
          expect(byKey(db.rows)).toEqual(byKey(model.rows));
          expect([...db.events.keys()].sort()).toEqual([...model.events.keys()].sort());
          box.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});
