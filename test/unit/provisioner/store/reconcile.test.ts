/** reconcile: records vs `virsh list --all` on every host, as tables of cases. */
import { describe, expect, it } from "vitest";
import {
  observedState,
  reconcile,
  type ConfiguredVm,
  type DomainListing,
  type ReconcileAction,
} from "../../../../src/provisioner/store/reconcile.js";
import type { VmRecord, VmState } from "../../../../src/provisioner/store/types.js";

const T = new Date("2024-01-01T00:00:00Z");
const UA = "00000000-0000-4000-8000-00000000000a";
const UB = "00000000-0000-4000-8000-00000000000b";

function rec(dpid: string, name: string, state: VmState, extra: Partial<VmRecord> = {}): VmRecord {
  return {
    _id: dpid,
    dpidHex: dpid,
    dpid: BigInt(`0x${dpid}`).toString(),
    vmName: name,
    state,
    updatedAt: T,
    ...(["joined", "placing", "defining"].includes(state) ? {} : { definedAt: T }),
    ...extra,
  };
}
const dom = (host: string, name: string, state: string, uuid?: string): DomainListing => ({
  host,
  name,
  state,
  ...(uuid ? { uuid } : {}),
});

const D5 = "0000000000000005";
const D6 = "0000000000000006";
const D7 = "0000000000000007";

interface Case {
  name: string;
  records: VmRecord[];
  hosts: Record<string, DomainListing[]>;
  configured?: ConfiguredVm[];
  want: ReconcileAction[];
}

const cases: Case[] = [
  {
    name: "adopt: the record says running on h1 and h1 runs it",
    records: [rec(D5, "rfvmA", "running", { host: "h1", uuid: UA })],
    hosts: { h1: [dom("h1", "rfvmA", "running", UA)] },
    want: [{ type: "adopt", dpidHex: D5, name: "rfvmA", host: "h1", uuid: UA, observed: "running" }],
  },
  {
    name: "adopt: ready is a running VM; left fits a stopped one",
    records: [rec(D5, "rfvmA", "ready", { host: "h1" }), rec(D6, "rfvmB", "left", { host: "h1" })],
    hosts: { h1: [dom("h1", "rfvmA", "running"), dom("h1", "rfvmB", "shut off")] },
    want: [
      { type: "adopt", dpidHex: D5, name: "rfvmA", host: "h1", observed: "running" },
      { type: "adopt", dpidHex: D6, name: "rfvmB", host: "h1", observed: "stopped" },
    ],
  },
  {
    name: "repair: the record says starting, the domain runs (rfboot died between start and record)",
    records: [rec(D5, "rfvmA", "starting", { host: "h1", uuid: UA })],
    hosts: { h1: [dom("h1", "rfvmA", "running", UA)] },
    want: [
      {
        type: "repair",
        dpidHex: D5,
        name: "rfvmA",
        host: "h1",
        uuid: UA,
        observed: "running",
        patch: { state: "running" },
        reasons: ["state starting -> running"],
      },
    ],
  },
  {
    name: "repair: running in the record, shut off in reality, on another host, another uuid",
    records: [rec(D5, "rfvmA", "running", { host: "h1", uuid: UA })],
    hosts: { h1: [], h2: [dom("h2", "rfvmA", "shut off", UB)] },
    want: [
      {
        type: "repair",
        dpidHex: D5,
        name: "rfvmA",
        host: "h2",
        uuid: UB,
        observed: "stopped",
        patch: { state: "stopped", host: "h2", uuid: UB },
        reasons: ["state running -> stopped", "host h1 -> h2", `uuid ${UA} -> ${UB}`],
      },
    ],
  },
  {
    name: "repair: a record marked missing whose domain came back",
    records: [rec(D5, "rfvmA", "missing", { host: "h1" })],
    hosts: { h1: [dom("h1", "rfvmA", "paused")] },
    want: [
      {
        type: "repair",
        dpidHex: D5,
        name: "rfvmA",
        host: "h1",
        observed: "suspended",
        patch: { state: "suspended" },
        reasons: ["state missing -> suspended"],
      },
    ],
  },
  {
    name: "mark missing: the domain is on no host; records that never had one are left alone",
    records: [
      rec(D5, "rfvmA", "running", { host: "h1" }),
      rec(D6, "rfvmB", "joined"),
      rec(D7, "rfvmC", "missing", { host: "h1" }),
    ],
    hosts: { h1: [dom("h1", "other", "running")] },
    want: [{ type: "mark-missing", dpidHex: D5, name: "rfvmA", patch: { state: "missing" } }],
  },
  {
    name: "unreachable: the record's host was not listed, nothing is concluded",
    records: [rec(D5, "rfvmA", "running", { host: "h9" })],
    hosts: { h1: [] },
    want: [{ type: "unreachable", dpidHex: D5, name: "rfvmA", host: "h9" }],
  },
  {
    name: "orphan: a configured VM's domain with no record is adopted into a new record",
    records: [],
    hosts: { h1: [dom("h1", "rfvmA", "running", UA), dom("h1", "unrelated", "running")] },
    configured: [
      { dpidHex: D5, name: "rfvmA" },
      { dpidHex: D6, name: "rfvmB" },
    ],
    want: [
      {
        type: "orphan",
        dpidHex: D5,
        name: "rfvmA",
        host: "h1",
        uuid: UA,
        observed: "running",
        patch: { vmName: "rfvmA", host: "h1", state: "running", uuid: UA },
      },
    ],
  },
  {
    name: "duplicate: one VM defined on two hosts; the recorded uuid wins, the other is reported",
    records: [rec(D5, "rfvmA", "running", { host: "h2", uuid: UB })],
    hosts: { h1: [dom("h1", "rfvmA", "running", UA)], h2: [dom("h2", "rfvmA", "shut off", UB)] },
    want: [
      {
        type: "repair",
        dpidHex: D5,
        name: "rfvmA",
        host: "h2",
        uuid: UB,
        observed: "stopped",
        patch: { state: "stopped" },
        reasons: ["state running -> stopped"],
      },
      { type: "duplicate", dpidHex: D5, name: "rfvmA", host: "h1", uuid: UA, keptHost: "h2" },
    ],
  },
  {
    name: "duplicate orphan: without a record, the running copy is adopted",
    records: [],
    hosts: { h1: [dom("h1", "rfvmA", "shut off")], h2: [dom("h2", "rfvmA", "running")] },
    configured: [{ dpidHex: D5, name: "rfvmA" }],
    want: [
      {
        type: "orphan",
        dpidHex: D5,
        name: "rfvmA",
        host: "h2",
        observed: "running",
        patch: { vmName: "rfvmA", host: "h2", state: "running" },
      },
      { type: "duplicate", dpidHex: D5, name: "rfvmA", host: "h1", keptHost: "h2" },
    ],
  },
  {
    name: "conflict: two records name one VM; the lower dpid keeps the domain",
    records: [rec(D6, "rfvmA", "running", { host: "h1" }), rec(D5, "rfvmA", "running", { host: "h1" })],
    hosts: { h1: [dom("h1", "rfvmA", "running")] },
    want: [
      { type: "adopt", dpidHex: D5, name: "rfvmA", host: "h1", observed: "running" },
      { type: "conflict", dpidHex: D6, name: "rfvmA", otherDpidHex: D5 },
    ],
  },
  {
    name: "a configured VM with a record is never an orphan too",
    records: [rec(D5, "rfvmA", "running", { host: "h1" })],
    hosts: { h1: [dom("h1", "rfvmA", "running")] },
    configured: [{ dpidHex: D5, name: "rfvmA" }],
    want: [{ type: "adopt", dpidHex: D5, name: "rfvmA", host: "h1", observed: "running" }],
  },
];

describe("reconcile", () => {
  it.each(cases)("$name", ({ records, hosts, configured, want }) => {
    expect(reconcile(records, hosts, configured)).toEqual(want);
    // Also through a Map, and idempotent after applying the patches.
    expect(reconcile(records, new Map(Object.entries(hosts)), configured)).toEqual(want);
  });

  it("applying the actions then reconciling again yields only adopts (no duplicates, nothing lost)", () => {
    for (const c of cases) {
      const byId = new Map(c.records.map((r) => [r._id, r]));
      for (const a of reconcile(c.records, c.hosts, c.configured)) {
        if (a.type === "repair" || a.type === "mark-missing") {
          byId.set(a.dpidHex, { ...byId.get(a.dpidHex)!, ...a.patch } as VmRecord);
        } else if (a.type === "orphan") {
          byId.set(a.dpidHex, { ...rec(a.dpidHex, a.name, "running"), ...a.patch } as VmRecord);
        }
      }
      const again = reconcile([...byId.values()], c.hosts, c.configured);
      expect(
        again.filter((a) => a.type === "repair" || a.type === "orphan" || a.type === "mark-missing"),
        c.name,
      ).toEqual([]);
      // Every domain is claimed at most once.
      const adopted = again.filter((a) => a.type === "adopt").map((a) => (a.type === "adopt" ? a.name : ""));
      expect(new Set(adopted).size).toBe(adopted.length);
    }
  });

  it.each([
    ["running", "running"],
    ["idle", "running"],
    ["in shutdown", "running"],
    ["shut off", "stopped"],
    ["paused", "suspended"],
    ["pmsuspended", "suspended"],
    ["crashed", "failed"],
    ["Running ", "running"],
    ["dying", undefined],
  ])("observedState(%j) = %j", (virsh, want) => {
    expect(observedState(virsh)).toBe(want);
  });
});
