/**
 * The data plane against this machine's real Open vSwitch (userspace datapath): a dp0-like bridge and a
 * trunk bridge, patch pairs for two VMs with their tags in OVS, a new allocator reading the same tags back,
 * a packet from a tagged access port on a "remote" bridge traced through the trunk to the VM's dp0 port,
 * removal, and nothing of ours left. Every bridge and port made here is named rfbd* and removed in afterAll.
 */
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { OvsError } from "../../src/common/errors.js";
import { DataPlane, DATAPLANE_IDS, type DataPlaneTarget } from "../../src/provisioner/dataplane.js";
import { ovsVsctl } from "../../src/provisioner/ovs.js";
import { describeWith } from "../helpers/env.js";

const DP0 = "rfbd-dp0";
const TRUNK = "rfbd-trunk";
/** FAR stands for the remote host's bridge; a patch pair stands for the tunnel between it and TRUNK. */
const FAR = "rfbd-far";
const BRIDGES = [DP0, TRUNK, FAR];
const VMS = ["rfbdA", "rfbdB"];
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
