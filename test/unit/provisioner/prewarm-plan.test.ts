/**
 * The prewarm plan: order (config or recent), placement as a join would place, disk and memory budgets,
 * fresh images kept where they are, stale ones made again, those booting now counted, connected/running/
 * suspended VMs left out.
 */
import { describe, expect, it } from "vitest";
import { configHash, parseConfig, resolveDatapath } from "../../../src/provisioner/config/index.js";
import type { HostCapacity } from "../../../src/provisioner/placement.js";
import {
  bootMemoryBudget,
  prewarmFingerprint,
  prewarmImageStatus,
  prewarmPlan,
} from "../../../src/provisioner/prewarm-plan.js";
import type { VmRecord } from "../../../src/provisioner/store/index.js";

/** configOf builds a config with VMs keyed (in this order) by the given dpids, 256 MiB each. */
function configOf(opts: {
  dpids: string[];
  prewarm?: string;
  hosts?: string;
  extra?: Record<string, string>;
}) {
  const hosts =
    opts.hosts ??
    `
  - { name: h1, uri: "test:///default", maxVms: 8 }
  - { name: h2, uri: "test+unix:///h2", maxVms: 8 }`;
  const dps = opts.dpids
    .map((d, i) => {
      const mac = `02:a0:a0:a0:a0:${(i + 1).toString(16).padStart(2, "0")}`;
      return `  "${d}": { name: vm${i + 1}, vmId: "${mac}", dataPorts: 1${opts.extra?.[d] ?? ""} }`;
    })
    .join("\n");
  return parseConfig(
    `
hosts:${hosts}
defaults: { hypervisor: test, memoryMiB: 256 }
policies:
  prewarm: ${opts.prewarm ?? "{ enabled: true }"}
datapaths:
${dps}
`,
    { format: "yaml", source: "prewarm-plan.test" },
  );
}

const up = (name: string, extra: Partial<HostCapacity> = {}): HostCapacity => ({
  name,
  maxVms: 8,
  memoryMiB: Number.POSITIVE_INFINITY,
  reachable: true,
  ...extra,
});

const hex = (d: string) => BigInt(d).toString(16).padStart(16, "0");

function record(dpid: string, r: Partial<VmRecord>): [string, VmRecord] {
  const h = hex(dpid);
  return [
    h,
    { _id: h, dpidHex: h, dpid: BigInt(dpid).toString(), state: "stopped", updatedAt: new Date(0), ...r },
  ];
}

describe("prewarmPlan", () => {
  it("keeps the config's order, not the dpid order, and spreads VMs as a burst of joins would", () => {
    const config = configOf({ dpids: ["0x9", "0x2", "0x5"] });
    const plan = prewarmPlan(config, [up("h1"), up("h2")], new Map(), new Set());
    expect(plan.order.map((e) => [e.vm, e.host, e.image])).toEqual([
      ["vm1", "h1", "none"],
      ["vm2", "h2", "none"],
      ["vm3", "h1", "none"],
    ]);
    expect(plan.leftOut).toEqual([]);
    expect(plan.perHost).toEqual({
      h1: { bootMemoryMiB: 0, imagesMiB: 512, images: 2, diskBudgetMiB: 8192 },
      h2: { bootMemoryMiB: 0, imagesMiB: 256, images: 1, diskBudgetMiB: 8192 },
    });
  });

  it("recent: most recently joined first, never-joined ones after in config order", () => {
    const config = configOf({ dpids: ["0x1", "0x2", "0x3", "0x4"], prewarm: "{ order: recent }" });
    const records = new Map([
      record("0x2", { joinedAt: new Date(1000) }),
      record("0x4", { joinedAt: new Date(5000) }),
    ]);
    const plan = prewarmPlan(config, [up("h1")], records, new Set());
    expect(plan.order.map((e) => e.vm)).toEqual(["vm4", "vm2", "vm1", "vm3"]);
  });

  it("leaves out connected switches, running VMs and VMs the leave policy suspended", () => {
    const config = configOf({ dpids: ["0x1", "0x2", "0x3", "0x4"] });
    const records = new Map([
      record("0x2", { state: "ready", host: "h1", vmName: "vm2" }),
      record("0x3", { state: "suspended", host: "h2", vmName: "vm3" }),
    ]);
    const plan = prewarmPlan(config, [up("h1"), up("h2")], records, new Set([hex("0x1")]));
    expect(plan.order.map((e) => e.vm)).toEqual(["vm4"]);
    expect(plan.leftOut).toEqual([
      { dpidHex: hex("0x1"), vm: "vm1", reason: "switch connected" },
      { dpidHex: hex("0x2"), vm: "vm2", reason: "VM ready" },
      { dpidHex: hex("0x3"), vm: "vm3", reason: "suspended by the leave policy: its next start restores" },
    ]);
    // The running vm2 counts on h1 as a join would count it: vm4 goes to the emptier h2.
    expect(plan.order[0]?.host).toBe("h2");
  });

  it("keeps a fresh image on its host and marks one of another config stale (made again)", () => {
    const config = configOf({ dpids: ["0x1", "0x2"] });
    const vm1 = resolveDatapath(config, 1n)!;
    const image = (fingerprint: string, host: string) => ({
      at: new Date(1),
      host,
      fingerprint,
      imageMiB: 256,
    });
    const records = new Map([
      record("0x1", {
        state: "prewarmed",
        host: "h2",
        vmName: "vm1",
        prewarm: image(prewarmFingerprint(vm1), "h2"),
      }),
      record("0x2", { state: "prewarmed", host: "h2", vmName: "vm2", prewarm: image("old", "h2") }),
    ]);
    expect(prewarmImageStatus(vm1, records.get(hex("0x1")))).toBe("fresh");
    expect(prewarmFingerprint(vm1)).toBe(configHash(vm1));
    const plan = prewarmPlan(config, [up("h1"), up("h2")], records, new Set());
    expect(plan.order).toEqual([
      { dpidHex: hex("0x1"), vm: "vm1", host: "h2", memoryMiB: 256, image: "fresh" },
      // Defined on h2 (its stale image and disk are there): it stays there, as a join keeps it.
      { dpidHex: hex("0x2"), vm: "vm2", host: "h2", memoryMiB: 256, image: "stale" },
    ]);
    expect(plan.perHost.h2).toMatchObject({ imagesMiB: 512, images: 2 });
  });

  it("applies the disk budget per host: a full host sends new images elsewhere, then leaves them out", () => {
    const config = configOf({ dpids: ["0x1", "0x2", "0x3", "0x4", "0x5"], prewarm: "{ diskMiB: 600 }" });
    const plan = prewarmPlan(config, [up("h1"), up("h2")], new Map(), new Set());
    expect(plan.order.map((e) => [e.vm, e.host])).toEqual([
      ["vm1", "h1"],
      ["vm2", "h2"],
      ["vm3", "h1"],
      ["vm4", "h2"],
    ]);
    expect(plan.leftOut).toEqual([
      { dpidHex: hex("0x5"), vm: "vm5", reason: "disk budget (600 MiB) full on h1" },
    ]);
    expect(plan.perHost.h1).toEqual({ bootMemoryMiB: 0, imagesMiB: 512, images: 2, diskBudgetMiB: 600 });
  });

  it("fresh images take their room first, whatever their place in the order", () => {
    const config = configOf({
      dpids: ["0x1", "0x2"],
      prewarm: "{ diskMiB: 256 }",
      hosts: `\n  - { name: h1, uri: "test:///default" }`,
    });
    const vm2 = resolveDatapath(config, 2n)!;
    const records = new Map([
      record("0x2", {
        state: "prewarmed",
        host: "h1",
        vmName: "vm2",
        prewarm: { at: new Date(1), host: "h1", fingerprint: prewarmFingerprint(vm2), imageMiB: 256 },
      }),
    ]);
    const plan = prewarmPlan(config, [up("h1")], records, new Set());
    expect(plan.order.map((e) => [e.vm, e.image])).toEqual([["vm2", "fresh"]]);
    expect(plan.leftOut).toEqual([
      { dpidHex: hex("0x1"), vm: "vm1", reason: "disk budget (256 MiB) full on h1" },
    ]);
  });

  it("a VM a prewarm boots now (`prewarming`) is planned booting on its host, its image counted first", () => {
    const config = configOf({
      dpids: ["0x1", "0x2"],
      prewarm: "{ diskMiB: 256, concurrency: 2 }",
      hosts: `\n  - { name: h1, uri: "test:///default" }`,
    });
    // vm2 boots for prewarm (its record reads `running`, as a VM a switch asked for would): not left out as
    // running, and its coming image takes the budget vm1 would otherwise get.
    const records = new Map([
      record("0x2", {
        state: "running",
        host: "h1",
        vmName: "vm2",
        prewarming: { since: new Date(1), host: "h1" },
      }),
    ]);
    const plan = prewarmPlan(config, [up("h1")], records, new Set());
    expect(plan.order.map((e) => [e.vm, e.host, e.image])).toEqual([["vm2", "h1", "booting"]]);
    expect(plan.leftOut).toEqual([
      { dpidHex: hex("0x1"), vm: "vm1", reason: "disk budget (256 MiB) full on h1" },
    ]);
    expect(plan.perHost.h1).toMatchObject({ imagesMiB: 256, images: 1 });
    // Without the mark the same record is a running VM: left out, its room free.
    const [, running] = record("0x2", { state: "running", host: "h1", vmName: "vm2" });
    const plain = prewarmPlan(config, [up("h1")], new Map([[hex("0x2"), running]]), new Set());
    expect(plain.order.map((e) => [e.vm, e.image])).toEqual([["vm1", "none"]]);
    expect(plain.leftOut.map((l) => [l.vm, l.reason])).toEqual([["vm2", "VM running"]]);
  });

  it("a pinned VM whose host's disk budget is full is left out, not moved", () => {
    const config = configOf({
      dpids: ["0x1", "0x2"],
      prewarm: "{ diskMiB: 256 }",
      extra: { "0x2": ", host: h1" },
    });
    const plan = prewarmPlan(config, [up("h1"), up("h2")], new Map(), new Set());
    expect(plan.order.map((e) => [e.vm, e.host])).toEqual([["vm1", "h1"]]);
    expect(plan.leftOut.map((l) => l.reason)).toEqual(["disk budget (256 MiB) full on h1"]);
  });

  it("diskMiB 0 is no limit; a placement failure is left out with placement's reasons", () => {
    const config = configOf({ dpids: ["0x1", "0x2", "0x3"], prewarm: "{ diskMiB: 0 }" });
    const plan = prewarmPlan(
      config,
      [up("h1", { maxVms: 1 }), up("h2", { maxVms: 1 })],
      new Map(),
      new Set(),
    );
    expect(plan.order.map((e) => e.host)).toEqual(["h1", "h2"]);
    expect(plan.leftOut).toHaveLength(1);
    expect(plan.leftOut[0]?.reason).toMatch(/^no host: no host has room for VM vm3 .*h1: full \(1\/1 VMs\)/);
  });

  it("a VM larger than the host's boot memory budget is left out; the budget is the host's memory when 0", () => {
    const small = configOf({ dpids: ["0x1"], prewarm: "{ memoryMiB: 128 }" });
    const plan = prewarmPlan(small, [up("h1"), up("h2")], new Map(), new Set());
    expect(plan.leftOut).toEqual([
      { dpidHex: hex("0x1"), vm: "vm1", reason: "memory budget (128 MiB) on h1 below the VM's 256 MiB" },
    ]);
    expect(plan.perHost.h1?.bootMemoryMiB).toBe(128);
    const config = configOf({ dpids: ["0x1"] });
    expect(bootMemoryBudget(config, up("h1", { memoryMiB: 2048 }))).toBe(2048);
    const reported = up("h1", { reported: { availableMiB: 1000, reserveMiB: 200, heldMiB: new Map() } });
    expect(bootMemoryBudget(config, reported)).toBe(800);
    expect(bootMemoryBudget(config, up("h1"))).toBe(Number.POSITIVE_INFINITY);
  });

  it("leaves out LXC VMs: libvirt's LXC driver cannot save a container", () => {
    const config = configOf({
      dpids: ["0x1", "0x2"],
      extra: { "0x2": ", hypervisor: lxc, boot: { type: init, init: /sbin/init, rootfs: /srv/rootfs }" },
      hosts: `\n  - { name: h1, uri: "lxc:///system" }\n  - { name: h2, uri: "test+unix:///h2" }`,
    });
    const plan = prewarmPlan(config, [up("h1"), up("h2")], new Map(), new Set());
    expect(plan.order.map((e) => e.vm)).toEqual(["vm1"]);
    expect(plan.leftOut).toEqual([
      {
        dpidHex: hex("0x2"),
        vm: "vm2",
        reason: "lxc: libvirt cannot save this driver's domains (managedsave)",
      },
    ]);
  });

  it("an image whose host is unreachable is left out (the image is only there)", () => {
    const config = configOf({ dpids: ["0x1"] });
    const vm1 = resolveDatapath(config, 1n)!;
    const records = new Map([
      record("0x1", {
        state: "prewarmed",
        host: "h2",
        vmName: "vm1",
        prewarm: { at: new Date(1), host: "h2", fingerprint: prewarmFingerprint(vm1), imageMiB: 256 },
      }),
    ]);
    const plan = prewarmPlan(config, [up("h1"), up("h2", { reachable: false })], records, new Set());
    expect(plan.order).toEqual([]);
    expect(plan.leftOut).toEqual([{ dpidHex: hex("0x1"), vm: "vm1", reason: "image host h2 unreachable" }]);
  });
});
