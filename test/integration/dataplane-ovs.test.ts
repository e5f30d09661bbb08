/**
 * The data plane against this machine's real Open vSwitch (userspace datapath): a dp0-like bridge and a
 * trunk bridge, patch pairs for two VMs with their tags in OVS, a new allocator reading the same tags back,
 * a packet from a tagged access port on a "remote" bridge traced through the trunk to the VM's dp0 port,
 * removal, and nothing of ours left; then a real libvirt domain built from a data-plane host's description,
 * whose NICs libvirt plugs into the host's bridge with rfboot's tags, its frames entering dp0 through the
 * NIC's own port. Every bridge, port and domain made here is named rfbd* and removed in afterAll.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { OvsError } from "../../src/common/errors.js";
import { findConfiguredVm, parseConfig } from "../../src/provisioner/config/index.js";
import { DataPlane, DATAPLANE_IDS, type DataPlaneTarget } from "../../src/provisioner/dataplane.js";
import { ovsVsctl } from "../../src/provisioner/ovs.js";
import { buildDomainXml } from "../../src/xmlgen/index.js";
import { describeWith } from "../helpers/env.js";

const DP0 = "rfbd-dp0";
const TRUNK = "rfbd-trunk";
/** FAR stands for the remote host's bridge; a patch pair stands for the tunnel between it and TRUNK. */
const FAR = "rfbd-far";
const BRIDGES = [DP0, TRUNK, FAR];
const VMS = ["rfbdA", "rfbdB", "rfbdV"];
const ENV = { LC_ALL: "C" };

async function vsctl(...args: string[]): Promise<string> {
  return (await execa("ovs-vsctl", ["--timeout=10", ...args], { env: ENV })).stdout;
}

async function ports(bridge: string): Promise<string[]> {
  return (await vsctl("list-ports", bridge)).split("\n").filter(Boolean).sort();
}

async function ours(): Promise<string[]> {
  const out: string[] = [];
  for (const vm of VMS) {
    const found = await vsctl(
      "--bare",
      "--columns=name",
      "find",
      "port",
      `external_ids:${DATAPLANE_IDS.vm}="${vm}"`,
    );
    out.push(...found.split("\n").filter(Boolean));
  }
  return out.sort();
}

async function cleanUp(): Promise<void> {
  await execa("virsh", ["-c", "qemu:///system", "destroy", "rfbdV"], { env: ENV, reject: false });
  for (const p of await ours().catch(() => []))
    await execa("ovs-vsctl", ["--if-exists", "del-port", p], { reject: false });
  for (const b of BRIDGES) await execa("ovs-vsctl", ["--if-exists", "del-br", b], { reject: false });
}

describeWith(["ovs", "root"], "the data plane on a real Open vSwitch", () => {
  const target: DataPlaneTarget = { host: "far", trunkBridge: TRUNK, dataBridge: DP0 };
  const nics = (vm: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({ vmPort: i + 1, hostDev: `${vm}.${i + 1}` }));

  beforeAll(async () => {
    await cleanUp();
    for (const b of BRIDGES) await vsctl("add-br", b, "--", "set", "bridge", b, "datapath_type=netdev");
    // The "tunnel": FAR's uplink is a trunk (no tag), as a VXLAN port would be.
    await vsctl(
      "add-port",
      FAR,
      "rfbd-far-up",
      "--",
      "set",
      "interface",
      "rfbd-far-up",
      "type=patch",
      "options:peer=rfbd-tr-up",
      "--",
      "add-port",
      TRUNK,
      "rfbd-tr-up",
      "--",
      "set",
      "interface",
      "rfbd-tr-up",
      "type=patch",
      "options:peer=rfbd-far-up",
    );
    // The VM's NIC on the remote host: an access port of the tag libvirt would set (tag filled in below).
    await vsctl("add-port", FAR, "rfbd-nic", "--", "set", "interface", "rfbd-nic", "type=internal");
  }, 60_000);

  afterAll(async () => {
    await cleanUp();
    const left = (await vsctl("list-br")).split("\n").filter((b) => b.startsWith("rfbd"));
    expect(left).toEqual([]);
    expect(await ours()).toEqual([]);
  }, 60_000);

  it("links two VMs, a restarted allocator reads the same tags, traffic goes tag -> dp0 port, removal leaves nothing", async () => {
    const dp = new DataPlane({ ovs: ovsVsctl() });
    const a = await dp.link(target, "rfbdA", nics("rfbdA", 2), { prune: true });
    const b = await dp.link(target, "rfbdB", nics("rfbdB", 1), { prune: true });
    expect(a.map((l) => l.tag)).toEqual([1, 2]);
    expect(b.map((l) => l.tag)).toEqual([3]);
    expect(await ports(DP0)).toEqual(["rfbdA.1", "rfbdA.2", "rfbdB.1"]);
    expect(await ports(TRUNK)).toEqual(["rfbd-tr-up", "rfbdA.1t", "rfbdA.2t", "rfbdB.1t"]);
    expect(await vsctl("get", "port", "rfbdA.2t", "tag")).toBe("2");
    expect(await vsctl("get", "interface", "rfbdA.2", "options:peer")).toBe("rfbdA.2t");
    expect(await vsctl("get", "port", "rfbdA.2t", `external_ids:${DATAPLANE_IDS.vmPort}`)).toBe('"2"');
    // OVS gives each dp0 end an OpenFlow port: RouteFlow sees one port per VM NIC.
    const show = (await execa("ovs-ofctl", ["show", DP0], { env: ENV })).stdout;
    for (const p of ["rfbdA.1", "rfbdA.2", "rfbdB.1"])
      expect(show).toMatch(new RegExp(`\\d+\\(${p.replace(".", "\\.")}\\)`));

    // A restarted rfboot: a new allocator, the same tags, nothing rebuilt.
    const uuid = await vsctl("get", "port", "rfbdA.1t", "_uuid");
    const again = new DataPlane({ ovs: ovsVsctl() });
    expect((await again.link(target, "rfbdA", nics("rfbdA", 2), { prune: true })).map((l) => l.tag)).toEqual([
      1, 2,
    ]);
    expect((await again.link(target, "rfbdB", nics("rfbdB", 1), { prune: true })).map((l) => l.tag)).toEqual([
      3,
    ]);
    expect(await vsctl("get", "port", "rfbdA.1t", "_uuid")).toBe(uuid);

    // A frame the guest sends on eth2 (an access port of tag 2 on the remote bridge) enters dp0 through
    // rfbdA.2: dp0 matches on in_port, as RouteFlow's controller does, and nothing else of dp0 matches.
    const ofport = (await vsctl("get", "interface", "rfbdA.2", "ofport")).trim();
    expect(ofport).toMatch(/^\d+$/);
    await vsctl("set", "bridge", DP0, "fail_mode=secure");
    await execa("ovs-ofctl", ["add-flow", DP0, "priority=100,in_port=rfbdA.2,actions=drop"], { env: ENV });
    await vsctl("set", "port", "rfbd-nic", "tag=2");
    const trace = async (tag: number) => {
      await vsctl("set", "port", "rfbd-nic", `tag=${tag}`);
      const flow = "in_port=rfbd-nic,dl_src=02:a2:a2:a2:a2:a2,dl_dst=ff:ff:ff:ff:ff:ff";
      return (await execa("ovs-appctl", ["ofproto/trace", FAR, flow], { env: ENV })).stdout;
    };
    const t2 = await trace(2);
    expect(t2).toContain(`bridge("${DP0}")`);
    expect(t2).toMatch(
      new RegExp(`bridge\\("${DP0}"\\)\\n-+\\n 0\\. in_port=${ofport}, priority 100\\n\\s+drop`),
    );
    // Tag 3 is rfbdB's eth1: the frame enters dp0 elsewhere, so rfbdA.2's flow does not match it.
    expect(await trace(3)).not.toMatch(new RegExp(`in_port=${ofport}, priority 100`));

    // Removal: one NIC, then the VMs; the trunk keeps only the tunnel.
    expect(await dp.unlink("rfbdA", [2])).toBe(2);
    expect(await ports(DP0)).toEqual(["rfbdA.1", "rfbdB.1"]);
    expect(await dp.unlink("rfbdA")).toBe(2);
    expect(await dp.unlink("rfbdB")).toBe(2);
    expect(await ports(DP0)).toEqual([]);
    expect(await ports(TRUNK)).toEqual(["rfbd-tr-up"]);
    expect(await ours()).toEqual([]);
  }, 60_000);

  it("a missing trunk bridge is an OvsError `bridge-missing` naming it and its host; the VM's pair stays whole", async () => {
    const dp = new DataPlane({ ovs: ovsVsctl() });
    await dp.link(target, "rfbdA", nics("rfbdA", 1));
    const before = await ours();
    expect(before).toEqual(["rfbdA.1", "rfbdA.1t"]);
    const err = (await dp
      .link({ ...target, trunkBridge: "rfbd-none" }, "rfbdA", nics("rfbdA", 1), { prune: true })
      .catch((e: unknown) => e)) as OvsError;
    expect(err).toBeInstanceOf(OvsError);
    expect(err.kind).toBe("bridge-missing");
    expect(err.message).toMatch(/^trunk bridge rfbd-none \(hosts\[far\]\.dataPlane\.trunkBridge\)/);
    expect(await ours()).toEqual(before);
    expect(await dp.unlink("rfbdA")).toBe(2);
    expect(await ours()).toEqual([]);
  });
});

describeWith(
  ["ovs", "libvirt", "root"],
  "libvirt plugs a data-plane VM's NICs into the host's bridge with rfboot's tags",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "rfbd-"));
    beforeAll(async () => {
      await cleanUp();
      for (const b of BRIDGES) await vsctl("add-br", b, "--", "set", "bridge", b, "datapath_type=netdev");
      await vsctl(
        "add-port",
        FAR,
        "rfbd-far-up",
        "--",
        "set",
        "interface",
        "rfbd-far-up",
        "type=patch",
        "options:peer=rfbd-tr-up",
        "--",
        "add-port",
        TRUNK,
        "rfbd-tr-up",
        "--",
        "set",
        "interface",
        "rfbd-tr-up",
        "type=patch",
        "options:peer=rfbd-far-up",
      );
    }, 60_000);
    afterAll(async () => {
      await cleanUp();
      rmSync(dir, { recursive: true, force: true });
      expect(await ours()).toEqual([]);
    }, 60_000);

    it("the domain's data NICs are access ports of their tags on the host's bridge; a frame of eth2 enters dp0 on rfbdV.2", async () => {
      const config = parseConfig(`
hosts:
  - { name: far, uri: "qemu:///system", dataPlane: { trunkBridge: ${TRUNK}, bridge: ${FAR} } }
defaults: { hypervisor: qemu, memoryMiB: 64, network: { data: { bridge: ${DP0} } }, console: { log: false } }
datapaths:
  "0x5": { name: rfbdV, vmId: "02:d0:d0:d0:d0:d0", dataPorts: 2 }
`);
      const vm = findConfiguredVm(config, "rfbdV")!;
      const host = config.hosts[0]!;
      const placed = await new DataPlane({ ovs: ovsVsctl() }).forPlacement(
        config,
        vm,
        host,
        vm.describe(host),
      );
      expect(placed.links.map((l) => [l.hostDev, l.tag])).toEqual([
        ["rfbdV.1", 1],
        ["rfbdV.2", 2],
      ]);
      // An empty disk, readable by QEMU's user (the temp dir is private by default).
      const disk = join(dir, "empty.img");
      writeFileSync(disk, Buffer.alloc(1024 * 1024));
      chmodSync(dir, 0o755);
      // One Open vSwitch plays both machines here, and port names are unique in it: the NICs' devices on the
      // "remote" bridge get other names than their dp0 ends (on two machines both are rfbdV.N). The guest
      // needs no OS: SeaBIOS finding nothing to boot is enough for libvirt to plug the NICs.
      const description = {
        ...placed.description,
        boot: { type: "disk" as const },
        disks: [{ source: { type: "file" as const, path: disk, format: "raw" as const } }],
        interfaces: placed.description.interfaces.map((n, i) =>
          i === 0
            ? {
                ...n,
                type: "bridge" as const,
                bridge: FAR,
                virtualport: { type: "openvswitch" as const },
                target: "rfbdVr.0",
              }
            : { ...n, target: `rfbdVr.${i}` },
        ),
      };
      const file = join(dir, "rfbdV.xml");
      writeFileSync(file, buildDomainXml(description));
      await execa("virsh", ["-c", "qemu:///system", "create", file], { env: ENV, timeout: 60_000 });
      expect(await vsctl("get", "port", "rfbdVr.1", "tag")).toBe("1");
      expect(await vsctl("get", "port", "rfbdVr.2", "tag")).toBe("2");
      const ofport = (await vsctl("get", "interface", "rfbdV.2", "ofport")).trim();
      await vsctl("set", "bridge", DP0, "fail_mode=secure");
      await execa("ovs-ofctl", ["add-flow", DP0, "priority=100,in_port=rfbdV.2,actions=drop"], { env: ENV });
      const trace = (
        await execa(
          "ovs-appctl",
          ["ofproto/trace", FAR, "in_port=rfbdVr.2,dl_src=02:d2:d2:d2:d2:d2,dl_dst=ff:ff:ff:ff:ff:ff"],
          { env: ENV },
        )
      ).stdout;
      expect(trace).toMatch(
        new RegExp(`bridge\\("${DP0}"\\)\\n-+\\n 0\\. in_port=${ofport}, priority 100\\n\\s+drop`),
      );
      await execa("virsh", ["-c", "qemu:///system", "destroy", "rfbdV"], { env: ENV, timeout: 60_000 });
      expect(await ports(FAR)).toEqual(["rfbd-far-up"]);
    }, 120_000);
  },
);
