import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  place,
  placeAll,
  PlacementError,
  type HostCapacity,
  type KnownPlacement,
} from "../../../src/provisioner/placement.js";

const H = (name: string, maxVms = 4, memoryMiB = 1024, reachable = true): HostCapacity => ({
  name,
  maxVms,
  memoryMiB,
  reachable,
});
const P = (vm: string, host: string, memoryMiB = 128, running = true): KnownPlacement => ({
  vm,
  host,
  memoryMiB,
  running,
});

describe("place (scenarios)", () => {
  const cases: {
    name: string;
    hosts: HostCapacity[];
    known: KnownPlacement[];
    req: { vm: string; memoryMiB: number; pin?: string };
    want: { host: string; reason: string; previous?: string; skipped?: Record<string, string> } | RegExp;
  }[] = [
    {
      name: "empty hosts: first by name",
      hosts: [H("b"), H("a")],
      known: [],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "a", reason: "least-loaded" },
    },
    {
      name: "least loaded by count",
      hosts: [H("a"), H("b")],
      known: [P("x", "a")],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "b", reason: "least-loaded" },
    },
    {
      name: "memory ratio counts",
      hosts: [H("a", 10, 1000), H("b", 10, 4000)],
      known: [P("x", "a", 800), P("y", "b", 500), P("z", "b", 500)],
      req: { vm: "v", memoryMiB: 200 },
      want: { host: "b", reason: "least-loaded" },
    },
    {
      name: "stays where defined even if another host is emptier",
      hosts: [H("a"), H("b")],
      known: [P("x", "a"), P("v", "a", 128, false)],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "a", reason: "existing" },
    },
    {
      name: "stays where defined when that host is full",
      hosts: [H("a", 1), H("b")],
      known: [P("x", "a"), P("v", "a", 128, false)],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "a", reason: "existing" },
    },
    {
      name: "prefers the host where it runs when defined twice",
      hosts: [H("a"), H("b")],
      known: [P("v", "a", 128, false), P("v", "b", 128, true)],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "b", reason: "existing" },
    },
    {
      name: "re-placed when its host is unreachable",
      hosts: [H("a", 4, 1024, false), H("b")],
      known: [P("v", "a")],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "b", reason: "re-placed", previous: "a", skipped: { a: "unreachable" } },
    },
    {
      name: "re-placed when its host is no longer configured",
      hosts: [H("b")],
      known: [P("v", "gone")],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "b", reason: "re-placed", previous: "gone" },
    },
    {
      name: "pin honoured",
      hosts: [H("a"), H("b")],
      known: [],
      req: { vm: "v", memoryMiB: 128, pin: "b" },
      want: { host: "b", reason: "pinned" },
    },
    {
      name: "pin overrides existing placement",
      hosts: [H("a"), H("b")],
      known: [P("v", "a")],
      req: { vm: "v", memoryMiB: 128, pin: "b" },
      want: { host: "b", reason: "pinned", previous: "a" },
    },
    {
      name: "pin to unknown host",
      hosts: [H("a")],
      known: [],
      req: { vm: "v", memoryMiB: 128, pin: "zz" },
      want: /pinned to host zz, which is not configured/,
    },
    {
      name: "pin to full host",
      hosts: [H("a", 1)],
      known: [P("x", "a")],
      req: { vm: "v", memoryMiB: 128, pin: "a" },
      want: /pinned to host a, which is full \(1\/1 VMs\)/,
    },
    {
      name: "no room anywhere",
      hosts: [H("a", 1), H("b", 4, 100), H("c", 4, 1024, false)],
      known: [P("x", "a")],
      req: { vm: "v", memoryMiB: 128 },
      want: /no host has room for VM v \(128 MiB\): a: full \(1\/1 VMs\); b: not enough memory \(0 \+ 128 > 100 MiB\); c: unreachable/,
    },
    {
      name: "stopped VMs do not count",
      hosts: [H("a", 1)],
      known: [P("x", "a", 128, false)],
      req: { vm: "v", memoryMiB: 128 },
      want: { host: "a", reason: "least-loaded" },
    },
    { name: "no hosts", hosts: [], known: [], req: { vm: "v", memoryMiB: 1 }, want: /no hosts configured/ },
  ];
  it.each(cases)("$name", ({ hosts, known, req, want }) => {
    if (want instanceof RegExp) {
      expect(() => place(req, hosts, known)).toThrow(PlacementError);
      expect(() => place(req, hosts, known)).toThrow(want);
    } else {
      expect(place(req, hosts, known)).toEqual({ vm: req.vm, ...want });
    }
  });
});

/** R gives a host the memory report of a probe: available MiB, reserve, what each VM held then, total. */
const R = (
  h: HostCapacity,
  availableMiB: number,
  reserveMiB = 256,
  held: Record<string, number> = {},
  totalMiB?: number,
): HostCapacity => ({
  ...h,
  reported: {
    availableMiB,
    reserveMiB,
    heldMiB: new Map(Object.entries(held)),
    ...(totalMiB !== undefined ? { totalMiB } : {}),
  },
});

describe("place (reported memory)", () => {
  it("skips a host whose report leaves no room although its configured limit does, and says why", () => {
    const d = place({ vm: "v", memoryMiB: 128 }, [R(H("a", 4, 4096), 180), H("b", 4, 4096)], []);
    expect(d).toEqual({
      vm: "v",
      host: "b",
      reason: "least-loaded",
      skipped: { a: "host reports 180 MiB available (reserve 256 MiB): 0 + 128 > 0 MiB" },
    });
  });

  it("memory held by rfboot's VMs at the probe is given back: they count in the load in full", () => {
    // 300 available + 512 held by x (which the load counts at 512) - 256 reserve = 556: x + 40 fit.
    const hosts = [R(H("a", 4, 4096), 300, 256, { x: 512, other: 2048 })];
    expect(place({ vm: "v", memoryMiB: 40 }, hosts, [P("x", "a", 512)]).host).toBe("a");
    expect(() => place({ vm: "v", memoryMiB: 64 }, hosts, [P("x", "a", 512)])).toThrow(
      "a: host reports 300 MiB available (reserve 256 MiB, 512 MiB held by rfboot's VMs): 512 + 64 > 556 MiB",
    );
  });

  it("a VM holding more than it counts (qemu's overhead) gives back only its count", () => {
    // x counts 512 and held 700 at the probe: 300 + 512 - 256 = 556 of room, not 744.
    const hosts = [R(H("a", 4, 4096), 300, 256, { x: 700 })];
    expect(() => place({ vm: "v", memoryMiB: 64 }, hosts, [P("x", "a", 512)])).toThrow(/512 \+ 64 > 556 MiB/);
  });

  it("a VM placed since the probe holds nothing there: it counts in full against what was available", () => {
    const hosts = [R(H("a", 8, 4096), 256 + 300), H("b", 2, 4096)];
    const { decisions, errors } = placeAll(
      [1, 2, 3, 4, 5].map((i) => ({ vm: `v${i}`, memoryMiB: 128 })),
      hosts,
      [],
    );
    // 300 MiB of room on a (scores: a 128/300 then 256/300, b 1/2 then 2/2): a, b, a, b; v5 fits nowhere.
    expect(decisions.map((d) => d.host)).toEqual(["a", "b", "a", "b"]);
    expect(errors.map((e) => e.reasons)).toEqual([
      {
        a: "host reports 556 MiB available (reserve 256 MiB): 256 + 128 > 300 MiB",
        b: "full (2/2 VMs)",
      },
    ]);
  });

  it("the room is capped by the host's memory size and by memoryMiB", () => {
    expect(() => place({ vm: "v", memoryMiB: 600 }, [R(H("a", 4, 4096), 9000, 0, {}, 512)], [])).toThrow(
      "a: host reports 9000 MiB available of 512 MiB (reserve 0 MiB): 0 + 600 > 512 MiB",
    );
    expect(() => place({ vm: "v", memoryMiB: 600 }, [R(H("a", 4, 500), 9000, 0)], [])).toThrow(
      "a: not enough memory (0 + 600 > 500 MiB)",
    );
  });

  it("the fuller host by reported room loses a tie of configured load", () => {
    const hosts = [R(H("a", 8, 8192), 256 + 1024), R(H("b", 8, 8192), 256 + 4096)];
    expect(place({ vm: "v", memoryMiB: 512 }, hosts, []).host).toBe("b");
  });

  it("a pinned VM is refused on a host whose report leaves no room", () => {
    expect(() => place({ vm: "v", memoryMiB: 128, pin: "a" }, [R(H("a"), 100)], [])).toThrow(
      "VM v is pinned to host a, which has no room: host reports 100 MiB available (reserve 256 MiB): 0 + 128 > 0 MiB",
    );
  });
});

describe("placeAll / properties", () => {
  const hostsArb = fc.uniqueArray(
    fc.record({
      name: fc.constantFrom("a", "b", "c", "d"),
      maxVms: fc.integer({ min: 1, max: 6 }),
      memoryMiB: fc.integer({ min: 128, max: 2048 }),
      reachable: fc.boolean(),
    }),
    { selector: (h) => h.name, minLength: 1, maxLength: 4 },
  );
  const reqsArb = fc.uniqueArray(
    fc.record({
      vm: fc.constantFrom(...Array.from({ length: 30 }, (_, i) => `vm${i}`)),
      memoryMiB: fc.integer({ min: 16, max: 512 }),
    }),
    { selector: (r) => r.vm, maxLength: 30 },
  );

  it("never places over capacity; a burst fills hosts evenly", () => {
    fc.assert(
      fc.property(hostsArb, reqsArb, (hosts, reqs) => {
        const { decisions, errors } = placeAll(reqs, hosts, []);
        expect(decisions.length + errors.length).toBe(reqs.length);
        for (const h of hosts) {
          const mine = decisions.filter((d) => d.host === h.name);
          if (!h.reachable) expect(mine).toHaveLength(0);
          expect(mine.length).toBeLessThanOrEqual(h.maxVms);
          const mem = mine.reduce((s, d) => s + reqs.find((r) => r.vm === d.vm)!.memoryMiB, 0);
          expect(mem).toBeLessThanOrEqual(h.memoryMiB);
        }
        // A rejection means no reachable host had room at that moment.
        for (const e of errors) expect(Object.keys(e.reasons).length).toBe(hosts.length);
      }),
      { numRuns: 300 },
    );
  });

  it("a burst never takes more than a host reports (available - reserve), whatever its configured limit", () => {
    const reportedArb = fc.tuple(
      hostsArb,
      fc.array(fc.integer({ min: 0, max: 2048 }), { minLength: 4, maxLength: 4 }),
    );
    fc.assert(
      fc.property(reportedArb, reqsArb, ([hosts, avail], reqs) => {
        const withReports: HostCapacity[] = hosts.map((h, i) => (i % 2 === 0 ? R(h, avail[i]!, 128) : h));
        const { decisions } = placeAll(reqs, withReports, []);
        for (const h of withReports) {
          if (!h.reported) continue;
          const mem = decisions
            .filter((d) => d.host === h.name)
            .reduce((s, d) => s + reqs.find((r) => r.vm === d.vm)!.memoryMiB, 0);
          expect(mem).toBeLessThanOrEqual(Math.max(0, h.reported.availableMiB - 128));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("stable: placing again with the first result as known placements changes nothing (a restart)", () => {
    fc.assert(
      fc.property(hostsArb, reqsArb, (hosts, reqs) => {
        const first = placeAll(reqs, hosts, []).decisions;
        const known = first.map((d) => ({
          vm: d.vm,
          host: d.host,
          memoryMiB: reqs.find((r) => r.vm === d.vm)!.memoryMiB,
          running: true,
        }));
        const again = placeAll([...reqs].reverse(), hosts, known).decisions;
        for (const d of first)
          expect(again.find((x) => x.vm === d.vm)).toEqual({ vm: d.vm, host: d.host, reason: "existing" });
      }),
      { numRuns: 300 },
    );
  });
});
