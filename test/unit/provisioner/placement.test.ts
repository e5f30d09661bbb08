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
    want: { host: string; reason: string; previous?: string } | RegExp;
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
      want: { host: "b", reason: "re-placed", previous: "a" },
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
