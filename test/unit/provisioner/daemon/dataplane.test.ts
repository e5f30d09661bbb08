/**
 * The daemon with a data-plane host, on fakes: the VM's data NICs are defined on the host's bridge with
 * their tags, after their patch pairs exist here; OVS down fails the ensure with its kind and defines
 * nothing; a hot-plugged NIC gets its pair and tag, a detached one loses its pair; a host without a data
 * plane keeps today's XML and never asks Open vSwitch.
 */
import { afterEach, describe, expect, it } from "vitest";
import { FakeOvs } from "../fake-ovs.js";
import { settle } from "./fakes.js";
import { joinAndSettle, rig, uri, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const DATA_PLANE = { 1: "dataPlane: { trunkBridge: trunk0, bridge: br-vms }" };

/** nics lists `[bridge, vlan tag, device]` of each data NIC in a domain's document on host 1. */
function nics(x: Rig, vm: string): [string, string | undefined, string][] {
  const xml = x.libvirt.host(uri(1)).domains.get(vm)?.xml ?? "";
  const blocks = xml.match(/<interface [\s\S]*?<\/interface>/g) ?? [];
  return blocks
    .slice(1)
    .map((b) => [
      /<source bridge="([^"]+)"/.exec(b)?.[1] ?? "",
      /<tag id="(\d+)"/.exec(b)?.[1],
      /<target dev="([^"]+)"/.exec(b)?.[1] ?? "",
    ]);
}

describe("a data-plane host", () => {
  it("defines the VM's data NICs on the host's bridge with their tags, after their patch pairs exist", async () => {
    const ovs = new FakeOvs(["dp0", "trunk0"]);
    const definesAtPair: number[] = [];
    ovs.beforeAdd = () => {
      definesAtPair.push(r!.libvirt.argsOf(uri(1), "define").length);
      return Promise.resolve();
    };
    r = await rig({ hostExtra: DATA_PLANE, ovs });
    await joinAndSettle(r, 1n, [1, 2]);
    await joinAndSettle(r, 2n, [1, 2]);
    expect(r.seen.failed).toEqual([]);
    expect(nics(r, "rfvm1")).toEqual([
      ["br-vms", "1", "rfvm1.1"],
      ["br-vms", "2", "rfvm1.2"],
    ]);
    expect(nics(r, "rfvm2")).toEqual([
      ["br-vms", "3", "rfvm2.1"],
      ["br-vms", "4", "rfvm2.2"],
    ]);
    expect(definesAtPair).toEqual([0, 0, 1, 1]);
    expect(ovs.on("dp0")).toEqual(["rfvm1.1", "rfvm1.2", "rfvm2.1", "rfvm2.2"]);
    expect(ovs.on("trunk0")).toEqual(["rfvm1.1t", "rfvm1.2t", "rfvm2.1t", "rfvm2.2t"]);
  });

  it("Open vSwitch down: the ensure fails with kind ovs-unreachable and nothing is defined", async () => {
    const ovs = new FakeOvs(["dp0", "trunk0"]);
    ovs.down = true;
    r = await rig({ hostExtra: DATA_PLANE, ovs });
    await joinAndSettle(r, 1n, [1, 2]);
    expect(r.seen.failed).toHaveLength(1);
    expect(r.seen.failed[0]!.error.message).toMatch(/database connection failed/);
    expect((await r.store.getRecord("0000000000000001"))?.lastError?.kind).toBe("ovs-unreachable");
    expect(r.libvirt.argsOf(uri(1), "define")).toEqual([]);
  });

  it("a port added later gets its pair and its tag in the hot-plugged NIC; a deleted one loses its pair", async () => {
    const ovs = new FakeOvs(["dp0", "trunk0"]);
    r = await rig({
      hostExtra: DATA_PLANE,
      ovs,
      extra:
        "policies: { leave: { action: keep }, unknownDatapath: { action: template, template: { dataPorts: switch } }, portDeleted: { action: detach } }\nreadiness: { consoleMarker: null }",
    });
    await joinAndSettle(r, 0x42n, [1, 2]);
    const vm = r.seen.ensured[0]!.vm;
    r.switches.port(0x42n, "add", 3);
    await settle();
    await r.daemon.idle();
    expect(nics(r, vm).map((n) => n[1])).toEqual(["1", "2", "3"]);
    expect(ovs.tagOf(`${vm}.3t`)).toBe(3);
    r.switches.port(0x42n, "delete", 2);
    await settle();
    await r.daemon.idle();
    expect(ovs.on("dp0")).toEqual([`${vm}.1`, `${vm}.3`]);
    expect(nics(r, vm).map((n) => n[2])).toEqual([`${vm}.1`, `${vm}.3`]);
  });

  it("a host without a data plane: NICs on dp0 untagged, Open vSwitch never asked", async () => {
    const ovs = new FakeOvs();
    ovs.down = true;
    r = await rig({ ovs });
    await joinAndSettle(r, 1n, [1, 2]);
    expect(r.seen.failed).toEqual([]);
    expect(nics(r, "rfvm1")).toEqual([
      ["dp0", undefined, "rfvm1.1"],
      ["dp0", undefined, "rfvm1.2"],
    ]);
    expect(ovs.calls).toEqual([]);
  });
});
