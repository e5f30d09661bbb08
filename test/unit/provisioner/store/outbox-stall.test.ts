/**
 * Outbox stall guard (MongoDB outage): an apply whose promise never settles (the driver lost the
 * operation when the server was killed) must not block its lane or the whole outbox for ever.
 */
import { describe, expect, it } from "vitest";
import { Outbox, type OutboxOp } from "../../../../src/provisioner/store/outbox.js";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("Outbox stall guard", () => {
  it("retries an apply that never settles and keeps the order of its lane", async () => {
    const applied: OutboxOp[] = [];
    let calls = 0;
    const stalled: OutboxOp[] = [];
    const box = new Outbox({
      backoffMs: 5,
      backoffMaxMs: 20,
      writeWaitMs: 50,
      stallMs: 100,
      apply: (op) => {
        calls++;
        // The first attempt is lost (never settles); later ones succeed.
        if (calls === 1) return new Promise<void>(() => undefined);
        if (op.type === "batch") applied.push(...op.ops);
        else applied.push(op);
        return Promise.resolve();
      },
    });
    box.on("stalled", (op: OutboxOp) => stalled.push(op));
    const at = new Date(0);
    const first = box.enqueue({ type: "record", dpidHex: "a", patch: { state: "starting" }, at });
    await tick(10);
    const second = box.enqueue({ type: "record", dpidHex: "a", patch: { state: "running" }, at });
    expect(await first).toBe("queued");
    expect(await second).toBe("queued");
    expect(await box.drain(2000)).toBe(true);
    expect(stalled).toHaveLength(1);
    // One write with the merged patch, the later state last: nothing lost, nothing reordered.
    expect(applied).toEqual([{ type: "record", dpidHex: "a", patch: { state: "running" }, at }]);
    expect(box.stats()).toMatchObject({ pending: 0, failed: 0, online: true });
  });

  it("a late settlement of the abandoned apply changes nothing", async () => {
    let release: (() => void) | undefined;
    let calls = 0;
    const box = new Outbox({
      backoffMs: 5,
      backoffMaxMs: 20,
      writeWaitMs: 50,
      stallMs: 50,
      apply: () => {
        calls++;
        if (calls === 1) return new Promise<void>((r) => (release = r));
        return Promise.resolve();
      },
    });
    void box.enqueue({
      type: "event",
      id: "0123456789abcdef01234567",
      event: { at: new Date(0), kind: "x" },
    });
    expect(await box.drain(2000)).toBe(true);
    const before = box.stats();
    release?.();
    await tick(20);
    expect(box.stats()).toEqual(before);
    expect(before.written).toBe(1);
  });
});
