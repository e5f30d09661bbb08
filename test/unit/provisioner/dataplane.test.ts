/**
 * The data plane across hosts, on an in-memory Open vSwitch: a tag per (host, VM, vmPort), the lowest free
 * on its trunk, read back by a new instance, reused after removal; patch pairs made once, moved with the VM,
 * pruned with its NICs; clear errors for OVS down and missing bridges; allocation serialized per trunk.
 */
import { describe, expect, it } from "vitest";
import { OvsError } from "../../../src/common/errors.js";
import { findConfiguredVm, parseConfig } from "../../../src/provisioner/config/index.js";
import {
  DATAPLANE_IDS,
  DataPlane,
  dataNicsOf,
  dataPlaneFingerprint,
  trunkPortName,
  withVlanTags,
  type DataPlaneTarget,
} from "../../../src/provisioner/dataplane.js";
import { dataNicOf } from "../../../src/provisioner/port-change.js";
import { buildDomainXml, validateVmDescription } from "../../../src/xmlgen/index.js";
import { FakeOvs } from "./fake-ovs.js";

const T1: DataPlaneTarget = { host: "far", trunkBridge: "trunk0", dataBridge: "dp0" };
const nics = (vm: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ vmPort: i + 1, hostDev: `${vm}.${i + 1}` }));

function lab(): { ovs: FakeOvs; dp: DataPlane } {
  const ovs = new FakeOvs(["dp0", "trunk0", "trunk1"]);
  return { ovs, dp: new DataPlane({ ovs }) };
}

describe("DataPlane.link", () => {
  it("gives each NIC the lowest free tag and a patch pair: trunk end tagged, dp0 end named like the device", async () => {
    const { ovs, dp } = lab();
    const a = await dp.link(T1, "rfvmA", nics("rfvmA", 2));
    const b = await dp.link(T1, "rfvmB", nics("rfvmB", 2));
    expect(a.map((l) => l.tag)).toEqual([1, 2]);
    expect(b.map((l) => l.tag)).toEqual([3, 4]);
    expect(ovs.on("dp0")).toEqual(["rfvmA.1", "rfvmA.2", "rfvmB.1", "rfvmB.2"]);
    expect(ovs.on("trunk0")).toEqual(["rfvmA.1t", "rfvmA.2t", "rfvmB.1t", "rfvmB.2t"]);
    expect(ovs.ports.get("rfvmA.2t")).toEqual({
      bridge: "trunk0",
      name: "rfvmA.2t",
      tag: 2,
      peer: "rfvmA.2",
      externalIds: {
        [DATAPLANE_IDS.role]: "trunk",
        [DATAPLANE_IDS.host]: "far",
        [DATAPLANE_IDS.vm]: "rfvmA",
        [DATAPLANE_IDS.vmPort]: "2",
        [DATAPLANE_IDS.bridge]: "trunk0",
        [DATAPLANE_IDS.peer]: "rfvmA.2",
      },
    });
    // The dp0 end is an untagged port: RouteFlow sees the VM's frames as they left the guest.
    expect(ovs.ports.get("rfvmA.2")).toMatchObject({ bridge: "dp0", peer: "rfvmA.2t" });
    expect(ovs.tagOf("rfvmA.2")).toBeUndefined();
    expect(a[1]).toEqual({
      vmPort: 2,
      hostDev: "rfvmA.2",
      tag: 2,
      host: "far",
      trunkBridge: "trunk0",
      trunkPort: "rfvmA.2t",
      dataBridge: "dp0",
    });
  });

  it("is stable: again, or from a new instance (a restarted rfboot), the same tags and no port removed", async () => {
    const { ovs, dp } = lab();
    await dp.link(T1, "rfvmA", nics("rfvmA", 3));
    await dp.link(T1, "rfvmB", nics("rfvmB", 1));
    const before = structuredClone([...ovs.ports.entries()]);
    const again = await new DataPlane({ ovs }).link(T1, "rfvmA", nics("rfvmA", 3), { prune: true });
    expect(again.map((l) => l.tag)).toEqual([1, 2, 3]);
    expect(await new DataPlane({ ovs }).link(T1, "rfvmB", nics("rfvmB", 1))).toMatchObject([{ tag: 4 }]);
    expect([...ovs.ports.entries()]).toEqual(before);
    expect(ovs.calls).not.toContain("deletePorts");
  });

  it("reuses the tags of a removed VM, lowest first, and steers clear of tags other ports of the trunk use", async () => {
    const { ovs, dp } = lab();
    ovs.ports.set("uplink", { bridge: "trunk0", name: "uplink", tag: 2, externalIds: {} });
    expect((await dp.link(T1, "rfvmA", nics("rfvmA", 2))).map((l) => l.tag)).toEqual([1, 3]);
    expect((await dp.link(T1, "rfvmB", nics("rfvmB", 1))).map((l) => l.tag)).toEqual([4]);
    expect(await dp.unlink("rfvmA")).toBe(4);
    expect(ovs.on("dp0")).toEqual(["rfvmB.1"]);
    expect((await dp.link(T1, "rfvmC", nics("rfvmC", 3))).map((l) => l.tag)).toEqual([1, 3, 5]);
    expect(ovs.ports.get("uplink")).toEqual({ bridge: "trunk0", name: "uplink", tag: 2, externalIds: {} });
  });

  it("a NIC added later keeps the others' tags; prune removes NICs the VM no longer has; unlink by port", async () => {
    const { ovs, dp } = lab();
    await dp.link(T1, "rfvmA", nics("rfvmA", 2));
    await dp.link(T1, "rfvmB", nics("rfvmB", 1));
    // Hot-plug of eth3 alone: eth1 and eth2 stay.
    expect(await dp.link(T1, "rfvmA", [{ vmPort: 3, hostDev: "rfvmA.3" }])).toMatchObject([{ tag: 4 }]);
    expect(ovs.on("trunk0")).toContain("rfvmA.1t");
    // The VM now has eth1 only.
    await dp.link(T1, "rfvmA", nics("rfvmA", 1), { prune: true });
    expect(ovs.on("dp0")).toEqual(["rfvmA.1", "rfvmB.1"]);
    await dp.link(T1, "rfvmA", nics("rfvmA", 2));
    expect(ovs.tagOf("rfvmA.2t")).toBe(2);
    expect(await dp.unlink("rfvmA", [2])).toBe(2);
    expect(ovs.on("dp0")).toEqual(["rfvmA.1", "rfvmB.1"]);
    expect(await dp.unlink("rfvmA", [2])).toBe(0);
  });

  it("moves with the VM: a placement on another host or trunk removes the old pair before making the new", async () => {
    const { ovs, dp } = lab();
    await dp.link(T1, "rfvmA", nics("rfvmA", 2));
    const t2 = { host: "other", trunkBridge: "trunk1", dataBridge: "dp0" };
    const moved = await dp.link(t2, "rfvmA", nics("rfvmA", 2), { prune: true });
    expect(moved.map((l) => [l.trunkBridge, l.tag])).toEqual([
      ["trunk1", 1],
      ["trunk1", 2],
    ]);
    expect(ovs.on("trunk0")).toEqual([]);
    expect(ovs.on("trunk1")).toEqual(["rfvmA.1t", "rfvmA.2t"]);
    expect(ovs.ports.get("rfvmA.1")?.externalIds[DATAPLANE_IDS.host]).toBe("other");
    // Another host on the same trunk is another placement too: a new tag, the old one freed.
    await dp.link(T1, "rfvmB", nics("rfvmB", 1));
    const t3 = { host: "third", trunkBridge: "trunk0", dataBridge: "dp0" };
    expect(await dp.link(t3, "rfvmB", nics("rfvmB", 1), { prune: true })).toMatchObject([{ tag: 1 }]);
    expect(ovs.ports.get("rfvmB.1t")?.externalIds[DATAPLANE_IDS.host]).toBe("third");
  });

  it("repairs a half-made pair (one end deleted by hand) with the tag it had", async () => {
    const { ovs, dp } = lab();
    await dp.link(T1, "rfvmA", nics("rfvmA", 2));
    ovs.ports.delete("rfvmA.2");
    expect((await dp.link(T1, "rfvmA", nics("rfvmA", 2))).map((l) => l.tag)).toEqual([1, 2]);
    expect(ovs.ports.get("rfvmA.2")).toMatchObject({ bridge: "dp0", peer: "rfvmA.2t" });
  });

  it("serializes allocation per trunk: VMs linked at once never share a tag", async () => {
    const { ovs, dp } = lab();
    ovs.beforeAdd = () => new Promise((r) => setTimeout(r, 1));
    const all = await Promise.all(
      ["A", "B", "C", "D"].map((v) => dp.link(T1, `rfvm${v}`, nics(`rfvm${v}`, 2))),
    );
    const tags = all.flat().map((l) => l.tag);
    expect(new Set(tags).size).toBe(8);
    expect([...tags].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("Open vSwitch down: an OvsError `unreachable` saying what to start", async () => {
    const { ovs, dp } = lab();
    ovs.down = true;
    const err = await dp.link(T1, "rfvmA", nics("rfvmA", 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OvsError);
    expect((err as OvsError).kind).toBe("unreachable");
    expect((err as OvsError).message).toMatch(/database connection failed/);
  });

  it("a missing trunk or data bridge: `bridge-missing` naming the bridge, its role and the host, and the fix", async () => {
    const ovs = new FakeOvs(["dp0"]);
    const dp = new DataPlane({ ovs });
    const e1 = (await dp.link(T1, "rfvmA", nics("rfvmA", 1)).catch((e: unknown) => e)) as OvsError;
    expect(e1).toBeInstanceOf(OvsError);
    expect(e1.kind).toBe("bridge-missing");
    expect(e1.message).toMatch(/^trunk bridge trunk0 \(hosts\[far\]\.dataPlane\.trunkBridge\)/);
    expect(e1.message).toMatch(/tunnel from host far/);
    expect(e1.message).toMatch(/ovs-vsctl add-br trunk0 -- set bridge trunk0 datapath_type=netdev/);
    const ovs2 = new FakeOvs(["trunk0"]);
    const e2 = (await new DataPlane({ ovs: ovs2 })
      .link(T1, "rfvmA", nics("rfvmA", 1))
      .catch((e: unknown) => e)) as OvsError;
    expect(e2.kind).toBe("bridge-missing");
    expect(e2.message).toMatch(/^data bridge dp0 \(RouteFlow's virtual switch, network\.data\.bridge\)/);
    expect(ovs2.ports.size).toBe(0);
  });

  it("a link that fails (target trunk missing) leaves the VM's earlier pairs whole", async () => {
    const { ovs, dp } = lab();
    await dp.link(T1, "rfvmA", nics("rfvmA", 2));
    const before = structuredClone([...ovs.ports.entries()]);
    const moved = { host: "other", trunkBridge: "nowhere", dataBridge: "dp0" };
    const err = await dp.link(moved, "rfvmA", nics("rfvmA", 2), { prune: true }).catch((e: unknown) => e);
    expect((err as OvsError).kind).toBe("bridge-missing");
    expect([...ovs.ports.entries()]).toEqual(before);
  });

  it("never turns a port it did not make into a patch port (a libvirt device of a local copy of the VM)", async () => {
    const { ovs, dp } = lab();
    ovs.ports.set("rfvmA.2", { bridge: "dp0", name: "rfvmA.2", externalIds: {} });
    const err = (await dp.link(T1, "rfvmA", nics("rfvmA", 2)).catch((e: unknown) => e)) as OvsError;
    expect(err).toBeInstanceOf(OvsError);
    expect(err.kind).toBe("port-exists");
    expect(err.message).toMatch(/^port rfvmA\.2 on bridge dp0 is not a data-plane patch port of rfvmA/);
    expect(ovs.ports.get("rfvmA.2")).toEqual({ bridge: "dp0", name: "rfvmA.2", externalIds: {} });
    expect(ovs.on("trunk0")).toEqual([]);
  });

  it("runs out of tags with a clear error once 1..4094 are taken on the trunk", async () => {
    const { ovs, dp } = lab();
    for (let t = 1; t <= 4094; t++)
      ovs.ports.set(`x${t}`, { bridge: "trunk0", name: `x${t}`, tag: t, externalIds: {} });
    const err = (await dp.link(T1, "rfvmA", nics("rfvmA", 1)).catch((e: unknown) => e)) as OvsError;
    expect(err).toBeInstanceOf(OvsError);
    expect(err.message).toMatch(/no free VLAN tag on trunk bridge trunk0 \(host far\)/);
  });
});

describe("trunk end names", () => {
  it("are the device plus t, or a hashed rf<8 hex>.<n>t past 15 characters; never a VM device's name", () => {
    expect(trunkPortName("rfvmA.1")).toBe("rfvmA.1t");
    expect(trunkPortName("rfvm-0123.12")).toBe("rfvm-0123.12t");
    const long = trunkPortName("rf0123abcd.200");
    expect(long).toMatch(/^rf[0-9a-f]{8}\.200t$/);
    expect(long.length).toBeLessThanOrEqual(15);
    expect(trunkPortName("rf0123abcd.200")).toBe(long);
    expect(trunkPortName("rf0123abce.200")).not.toBe(long);
    for (const n of ["rfvmA.1t", long]) expect(n).not.toMatch(/\.\d+$/);
  });
});

const CONFIG = `
hosts:
  - { name: here, uri: "qemu:///system" }
  - name: far
    uri: "qemu+ssh://far.example/system"
    dataPlane: { trunkBridge: trunk0, bridge: br-vms }
  - name: near
    uri: "qemu+ssh://near.example/system"
    dataPlane: { trunkBridge: trunk1 }
datapaths:
  "0x5": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }
`;

describe("a VM placed on a data-plane host", () => {
  const config = parseConfig(CONFIG);
  const vm = findConfiguredVm(config, "rfvmA")!;
  const host = (n: string) => config.hosts.find((h) => h.name === n)!;

  it("its data NICs land on the host's bridge (dataPlane.bridge, default network.data.bridge)", () => {
    expect(
      vm
        .describe(host("far"))
        .interfaces.slice(1)
        .map((n) => n.type === "bridge" && n.bridge),
    ).toEqual(["br-vms", "br-vms"]);
    expect(
      vm
        .describe(host("near"))
        .interfaces.slice(1)
        .map((n) => n.type === "bridge" && n.bridge),
    ).toEqual(["dp0", "dp0"]);
    // A host without a data plane: today's layout, untouched.
    expect(vm.describe(host("here"))).toEqual(vm.describe(config.hosts[0]!));
    expect(dataNicsOf(vm.describe(host("here")))).toEqual(nics("rfvmA", 2));
  });

  it("forPlacement links and tags the NICs; the domain XML carries <vlan><tag>; moving away unlinks", async () => {
    const { ovs, dp } = lab();
    const placed = await dp.forPlacement(config, vm, host("far"), vm.describe(host("far")));
    expect(placed.links.map((l) => [l.hostDev, l.tag, l.trunkBridge, l.dataBridge])).toEqual([
      ["rfvmA.1", 1, "trunk0", "dp0"],
      ["rfvmA.2", 2, "trunk0", "dp0"],
    ]);
    const xml = buildDomainXml(placed.description);
    expect(xml).toContain(
      '<source bridge="br-vms"/>\n      <vlan>\n        <tag id="2"/>\n      </vlan>\n      <virtualport type="openvswitch"/>\n      <target dev="rfvmA.2"/>',
    );
    expect(validateVmDescription(placed.description).interfaces[0]).not.toHaveProperty("vlan");
    // To another data-plane host: the pairs follow.
    await dp.forPlacement(config, vm, host("near"), vm.describe(host("near")));
    expect(ovs.on("trunk0")).toEqual([]);
    expect(ovs.on("trunk1")).toEqual(["rfvmA.1t", "rfvmA.2t"]);
    // To a host without a data plane: the dp0 names are free again for libvirt's own devices.
    const local = await dp.forPlacement(config, vm, host("here"), vm.describe(host("here")));
    expect(local).toEqual({ description: vm.describe(host("here")), links: [] });
    expect(ovs.ports.size).toBe(0);
  });

  it("placed on a host without a data plane while Open vSwitch is down: the VM still starts (cleanup is best effort)", async () => {
    const { ovs, dp } = lab();
    ovs.down = true;
    const d = vm.describe(host("here"));
    expect(await dp.forPlacement(config, vm, host("here"), d)).toEqual({ description: d, links: [] });
    expect(ovs.calls).toEqual(["findPorts"]);
  });

  it("a config without any data-plane host never calls Open vSwitch", async () => {
    const plain = parseConfig(
      `datapaths:\n  "0x5": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }\n`,
    );
    const ovs = new FakeOvs();
    ovs.down = true;
    const v = findConfiguredVm(plain, "rfvmA")!;
    const d = v.describe(plain.hosts[0]!);
    expect(await new DataPlane({ ovs }).forPlacement(plain, v, plain.hosts[0]!, d)).toEqual({
      description: d,
      links: [],
    });
    expect(ovs.calls).toEqual([]);
  });

  it("taggedNic: a hot-plugged NIC gets its pair and its tag in the <interface> document", async () => {
    const { ovs, dp } = lab();
    await dp.forPlacement(config, vm, host("far"), vm.describe(host("far")));
    ovs.ports.delete("rfvmA.2t");
    ovs.ports.delete("rfvmA.2");
    const nic = await dp.taggedNic(vm, host("far"), dataNicOf(vm, host("far"), 2));
    expect(nic.xml).toContain('<vlan>\n    <tag id="2"/>\n  </vlan>');
    expect(ovs.on("dp0")).toEqual(["rfvmA.1", "rfvmA.2"]);
    const plainNic = dataNicOf(vm, host("here"), 2);
    expect(await dp.taggedNic(vm, host("here"), plainNic)).toBe(plainNic);
  });

  it("the fingerprint changes with the tags and is the config's own without links", () => {
    const links = [
      {
        vmPort: 1,
        hostDev: "rfvmA.1",
        tag: 1,
        host: "far",
        trunkBridge: "trunk0",
        trunkPort: "rfvmA.1t",
        dataBridge: "dp0",
      },
    ];
    expect(dataPlaneFingerprint("abc", [])).toBe("abc");
    expect(dataPlaneFingerprint("abc", links)).toMatch(/^[0-9a-f]{64}$/);
    expect(dataPlaneFingerprint("abc", links)).not.toBe(
      dataPlaneFingerprint("abc", [{ ...links[0]!, tag: 9 }]),
    );
    const d = vm.describe(host("far"));
    expect(withVlanTags(d, [])).toBe(d);
  });
});
