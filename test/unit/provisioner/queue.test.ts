import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ActionQueue, QueueCore, type ActionClass } from "../../../src/provisioner/queue.js";

type Act = { want: "up" | "down"; host: string };
const classify = (a: Act): ActionClass => ({ host: a.host, limited: a.want === "up" });
const core = (limit = 2, windowMs = 0) =>
  new QueueCore<string, Act>({ classify, hostLimit: () => limit, windowMs });
const up = (host = "h1"): Act => ({ want: "up", host });
const down = (host = "h1"): Act => ({ want: "down", host });

describe("QueueCore", () => {
  it("runs in FIFO order of first submission", () => {
    const q = core(10);
    q.submit("a", up(), 0);
    q.submit("b", up(), 1);
    q.submit("c", up(), 2);
    expect(q.take(3).map((i) => i.key)).toEqual(["a", "b", "c"]);
  });
  it("up, down, up of one key while it waits = one pending 'up' (latest wins), keeping its place", () => {
    const q = core(1);
    q.submit("x", up(), 0); // takes the only slot
    expect(q.take(0).map((i) => i.key)).toEqual(["x"]);
    q.submit("a", up(), 1);
    q.submit("b", up(), 2);
    expect(q.submit("a", down(), 3)).toMatchObject({ coalesced: true, replaced: up() });
    expect(q.submit("a", up(), 4).coalesced).toBe(true);
    expect(q.size).toEqual({ pending: 2, running: 1 });
    q.done("x");
    const next = q.take(5);
    expect(next.map((i) => [i.key, i.action.want, i.coalesced])).toEqual([["a", "up", 2]]);
  });
  it("a key never runs twice at once: a new action waits behind the running one", () => {
    const q = core(5);
    q.submit("a", up(), 0);
    q.take(0);
    expect(q.submit("a", down(), 1).queuedBehindRunning).toBe(true);
    expect(q.take(1)).toEqual([]);
    q.done("a");
    expect(q.take(2).map((i) => i.action.want)).toEqual(["down"]);
  });
  it("limits concurrent starts per host; stops are not limited", () => {
    const q = core(2);
    for (const k of ["a", "b", "c"]) q.submit(k, up(), 0);
    q.submit("d", down(), 0);
    expect(q.take(0).map((i) => i.key)).toEqual(["a", "b", "d"]);
    expect(q.hostLoad("h1")).toBe(2);
    q.done("d");
    expect(q.take(1)).toEqual([]);
    q.done("a");
    expect(q.take(2).map((i) => i.key)).toEqual(["c"]);
  });
  it("a full host does not block another host (no head-of-line blocking)", () => {
    const q = core(1);
    q.submit("a", up("h1"), 0);
    q.submit("b", up("h1"), 0);
    q.submit("c", up("h2"), 0);
    expect(q.take(0).map((i) => i.key)).toEqual(["a", "c"]);
  });
  it("window: an action waits until its key has been quiet for windowMs", () => {
    const q = core(5, 100);
    q.submit("a", up(), 0);
    q.submit("a", down(), 50);
    expect(q.take(120)).toEqual([]);
    expect(q.nextEligibleAt(120)).toBe(150);
    q.submit("a", up(), 140);
    expect(q.take(200)).toEqual([]);
    expect(q.take(240).map((i) => [i.key, i.action.want, i.coalesced])).toEqual([["a", "up", 2]]);
  });
  it("cancel drops a pending action", () => {
    const q = core();
    q.submit("a", up(), 0);
    expect(q.cancel("a")).toEqual(up());
    expect(q.take(0)).toEqual([]);
  });
  it("property: never over a host limit, never two per key, and each key's last action is the last executed", () => {
    const op = fc.oneof(
      fc.record({
        t: fc.constant("submit" as const),
        key: fc.constantFrom("a", "b", "c", "d", "e"),
        want: fc.constantFrom("up", "down") as fc.Arbitrary<"up" | "down">,
        host: fc.constantFrom("h1", "h2"),
      }),
      fc.record({ t: fc.constant("finish" as const), n: fc.nat(4) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.integer({ min: 1, max: 3 }), (ops, limit) => {
        const q = core(limit);
        const running: { key: string; act: Act }[] = [];
        const lastSubmitted = new Map<string, Act>();
        const lastExecuted = new Map<string, Act>();
        const check = () => {
          for (const i of q.take(0)) {
            expect(running.some((r) => r.key === i.key)).toBe(false);
            running.push({ key: i.key, act: i.action });
            lastExecuted.set(i.key, i.action);
          }
          for (const h of ["h1", "h2"]) {
            const starts = running.filter((r) => r.act.host === h && r.act.want === "up").length;
            expect(starts).toBeLessThanOrEqual(limit);
            expect(q.hostLoad(h)).toBe(starts);
          }
        };
        for (const o of ops) {
          if (o.t === "submit") {
            const a = { want: o.want, host: o.host };
            q.submit(o.key, a, 0);
            lastSubmitted.set(o.key, a);
          } else if (running.length > 0) {
            const [r] = running.splice(o.n % running.length, 1);
            q.done(r!.key);
          }
          check();
        }
        while (running.length > 0) {
          q.done(running.shift()!.key);
          check();
        }
        expect(q.size).toEqual({ pending: 0, running: 0 });
        expect(lastExecuted).toEqual(lastSubmitted);
      }),
      { numRuns: 300 },
    );
  });
});

describe("ActionQueue", () => {
  function deferred() {
    let resolve!: () => void;
    const p = new Promise<void>((r) => (resolve = r));
    return { p, resolve };
  }
  it("coalesces a flap while a start runs into one follow-up, and reports superseded submissions", async () => {
    const gates: ReturnType<typeof deferred>[] = [];
    const ran: string[] = [];
    const q = new ActionQueue<string, Act, string>({
      classify,
      hostLimit: () => 1,
      handler: async (key, a) => {
        ran.push(`${key}:${a.want}`);
        const g = deferred();
        gates.push(g);
        await g.p;
        return `${key}:${a.want}:ok`;
      },
    });
    const first = q.submit("a", up());
    const s2 = q.submit("a", down());
    const s3 = q.submit("a", up());
    expect(await s2).toEqual({ status: "superseded" });
    expect(ran).toEqual(["a:up"]);
    gates[0]!.resolve();
    expect(await first).toEqual({ status: "done", result: "a:up:ok" });
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual(["a:up", "a:up"]);
    gates[1]!.resolve();
    expect(await s3).toEqual({ status: "done", result: "a:up:ok" });
    await q.idle();
  });
  it("per-host start limit holds with real promises; failures resolve as failed", async () => {
    let live = 0;
    let peak = 0;
    const q = new ActionQueue<string, Act>({
      classify,
      hostLimit: () => 3,
      handler: async (key) => {
        live++;
        peak = Math.max(peak, live);
        await new Promise((r) => setTimeout(r, 2));
        live--;
        if (key === "k7") throw new Error("boom");
        return key;
      },
    });
    const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => q.submit(`k${i}`, up())));
    expect(peak).toBe(3);
    expect(outs.filter((o) => o.status === "done")).toHaveLength(19);
    expect(outs[7]).toMatchObject({ status: "failed" });
  });
  it("close cancels pending submissions", async () => {
    const q = new ActionQueue<string, Act>({
      classify,
      hostLimit: () => 1,
      handler: () => new Promise(() => undefined),
    });
    void q.submit("a", up());
    const b = q.submit("b", up());
    q.close();
    expect(await b).toEqual({ status: "cancelled" });
  });
});
