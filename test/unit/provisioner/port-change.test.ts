/**
 * planPortChange: a switch port added or deleted after the join, mapped to a data NIC and an `rfconfig`
 * row exactly as the join laid the VM out (configured dataPorts/portMap; template ports by rank), with the
 * deleted-port policy. The NIC document is the element of the VM's own domain XML.
 */
import { describe, expect, it } from "vitest";
import {
  findConfiguredVm,
  parseConfig,
  resolveDatapath,
  type RfbootConfig,
} from "../../../src/provisioner/config/index.js";
import { rfconfigRows } from "../../../src/provisioner/mapping.js";
import { dataNicOf, planPortChange, type PortChangeEvent } from "../../../src/provisioner/port-change.js";
import { buildDomainXml } from "../../../src/xmlgen/index.js";

const add = (no: number): PortChangeEvent => ({ reason: "add", port: { no } });
const del = (no: number): PortChangeEvent => ({ reason: "delete", port: { no } });

const CONFIGURED = `
datapaths:
  "0x5": { name: rfvmA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }
  "0x6":
    name: rfvmB
    vmId: "02:b0:b0:b0:b0:b0"
    portMap: [{ vmPort: 1, dpPort: 7 }, { vmPort: 2, dpPort: 40 }]
`;

function template(extra = "", policy = ""): RfbootConfig {
  return parseConfig(`
policies:
  unknownDatapath:
    action: template
    template: { name: "rfvm-{dpid}", maxDataPorts: 4${extra} }
${policy}
`);
}

function plan(config: RfbootConfig, dpid: bigint, ports: number[], event: PortChangeEvent) {
  const vm = resolveDatapath(config, dpid, ports)!;
  return { vm, change: planPortChange({ config, vm, host: config.hosts[0]!, event }) };
}

describe("planPortChange: configured VMs", () => {
  const config = parseConfig(CONFIGURED);
  const host = config.hosts[0]!;

  it("a port inside dataPorts is its ethN already: attach (ensure) with RouteFlow's MAC, device and row", () => {
    const vm = findConfiguredVm(config, "rfvmA")!;
    const c = planPortChange({ config, vm, host, event: add(2) });
    expect(c).toMatchObject({ action: "attach", existing: true, vm });
    if (c.action !== "attach") return;
    expect(c.nic).toMatchObject({ vmPort: 2, mac: "02:a2:a2:a2:a2:a2", hostDev: "rfvmA.2" });
    expect(c.row).toEqual({ vm_id: "2888912904352", vm_port: "2", ct_id: "0", dp_id: "5", dp_port: "2" });
    expect(rfconfigRows(vm)).toContainEqual(c.row);
    expect(c.nic.xml).toBe(
      [
        '<interface type="bridge">',
        '  <mac address="02:a2:a2:a2:a2:a2"/>',
        '  <source bridge="dp0"/>',
        '  <virtualport type="openvswitch"/>',
        '  <target dev="rfvmA.2"/>',
        '  <model type="virtio"/>',
        "</interface>",
        "",
      ].join("\n"),
    );
    // The very element the domain XML defines the VM with.
    expect(buildDomainXml(vm.describe(host))).toContain(c.nic.xml.replace(/^/gm, "    ").trimEnd());
  });

  it("follows a portMap: switch port 40 is eth2", () => {
    const vm = findConfiguredVm(config, "rfvmB")!;
    const c = planPortChange({ config, vm, host, event: add(40) });
    expect(c).toMatchObject({
      action: "attach",
      nic: { vmPort: 2, mac: "02:b2:b2:b2:b2:b2", hostDev: "rfvmB.2" },
      row: { vm_port: "2", dp_port: "40", dp_id: "6" },
    });
  });

  it("a port outside dataPorts or portMap has no NIC", () => {
    const c = planPortChange({ config, vm: findConfiguredVm(config, "rfvmA")!, host, event: add(3) });
    expect(c).toEqual({
      action: "none",
      reason: "unmapped",
      message:
        "port 3 of datapath 0000000000000005 added: no NIC for it in rfvmA (not in the VM's dataPorts or portMap)",
    });
  });

  it("modify changes nothing", () => {
    const c = planPortChange({
      config,
      vm: findConfiguredVm(config, "rfvmA")!,
      host,
      event: { reason: "modify", port: { no: 1 } },
    });
    expect(c).toMatchObject({ action: "none", reason: "modify" });
  });
});

describe("planPortChange: template VMs (dataPorts: switch, ports by rank)", () => {
  it("a port above every mapped one is the next ethN: a new NIC and row, and the VM with it", () => {
    const config = template();
    const { vm, change } = plan(config, 0x2an, [1, 2], add(9));
    expect(vm.ports.map((p) => [p.vmPort, p.dpPort])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(change.action).toBe("attach");
    if (change.action !== "attach") return;
    expect(change.existing).toBe(false);
    expect(change.vm.ports.map((p) => [p.vmPort, p.dpPort])).toEqual([
      [1, 1],
      [2, 2],
      [3, 9],
    ]);
    // vm_id 02:00:00:00:00:2a is not RouteFlow's pattern: the data MAC is the hashed one, as at join.
    expect(change.nic).toEqual(dataNicOf(change.vm, config.hosts[0]!, 3));
    expect(change.nic.mac).toBe(change.vm.ports[2]!.mac);
    expect(change.nic.hostDev).toBe("rfvm-2a.3");
    expect(change.row).toEqual({
      vm_id: "2199023255594",
      vm_port: "3",
      ct_id: "0",
      dp_id: "42",
      dp_port: "9",
    });
    expect(change.message).toBe("port 9 of datapath 000000000000002a added: new NIC eth3 of rfvm-2a");
    // Exactly what a join with the new port list would lay out.
    expect(rfconfigRows(change.vm)).toEqual(rfconfigRows(resolveDatapath(config, 0x2an, [1, 2, 9])!));
  });

  it("a port below a mapped one would renumber: next-join, with the layout that join will define", () => {
    const { change } = plan(template(), 0x2an, [1, 5], add(3));
    expect(change.action).toBe("next-join");
    if (change.action !== "next-join") return;
    expect(change.vm.ports.map((p) => [p.vmPort, p.dpPort])).toEqual([
      [1, 1],
      [2, 3],
      [3, 5],
    ]);
    expect(change.message).toMatch(/would become eth2 of rfvm-2a and renumber the NICs after it/);
  });

  it("reserved ports (OFPP_LOCAL), ports beyond maxDataPorts, and a fixed dataPorts count map to nothing", () => {
    expect(plan(template(), 0x2an, [1], add(0xfffe)).change).toMatchObject({
      action: "none",
      reason: "unmapped",
    });
    expect(plan(template(), 0x2an, [1, 2, 3, 4], add(5)).change).toMatchObject({ action: "none" });
    const fixed = template(", dataPorts: 2");
    expect(plan(fixed, 0x2an, [1, 2, 3], add(3)).change).toMatchObject({
      action: "none",
      reason: "unmapped",
    });
    expect(plan(fixed, 0x2an, [1], add(2)).change).toMatchObject({ action: "attach", existing: true });
  });

  it("an lxc template renders the NIC without a model (veth pair)", () => {
    const config = parseConfig(`
hosts: [{ name: l, uri: "lxc:///system" }]
policies:
  unknownDatapath:
    action: template
    template:
      name: "lx{dpid}"
      hypervisor: lxc
      boot: { type: init, init: /init, rootfs: /var/lib/rfboot/guest/rootfs-lxc }
`);
    const { change } = plan(config, 0x7n, [1], add(2));
    expect(change.action).toBe("attach");
    if (change.action !== "attach") return;
    expect(change.nic.xml).not.toContain("<model");
    expect(change.nic.xml).toContain('<target dev="lx7.2"/>');
  });
});

describe("planPortChange: deleted ports (policies.portDeleted.action)", () => {
  it("keep (default): NIC and row stay, named in the message", () => {
    const { change } = plan(template(), 0x2an, [1, 2], del(2));
    expect(change).toMatchObject({
      action: "keep",
      nic: { vmPort: 2, hostDev: "rfvm-2a.2" },
      row: { vm_port: "2", dp_port: "2" },
    });
    expect(change.message).toMatch(/kept \(policies\.portDeleted\.action: keep, as RouteFlow does\)/);
  });

  it("detach: that NIC, then exactly that row", () => {
    const config = parseConfig(`${CONFIGURED}\npolicies: { portDeleted: { action: detach } }\n`);
    const vm = findConfiguredVm(config, "rfvmB")!;
    const c = planPortChange({ config, vm, host: config.hosts[0]!, event: del(7) });
    expect(c).toMatchObject({
      action: "detach",
      nic: { vmPort: 1, mac: "02:b1:b1:b1:b1:b1", hostDev: "rfvmB.1" },
      row: { vm_id: String(0x02b0b0b0b0b0n), vm_port: "1", ct_id: "0", dp_id: "6", dp_port: "7" },
    });
    expect(c.message).toBe(
      "port 7 of datapath 0000000000000006 deleted: detaching NIC eth1 (02:b1:b1:b1:b1:b1) of rfvmB and removing its rfconfig row (policies.portDeleted.action: detach)",
    );
  });

  it("a deleted port that had no NIC: nothing", () => {
    const { change } = plan(template("", "  portDeleted: { action: detach }"), 0x2an, [1], del(3));
    expect(change).toMatchObject({ action: "none", reason: "unmapped" });
  });
});

describe("dataNicOf", () => {
  it("refuses eth0 and NICs the VM does not have", () => {
    const config = parseConfig(CONFIGURED);
    const vm = findConfiguredVm(config, "rfvmA")!;
    expect(() => dataNicOf(vm, config.hosts[0]!, 0)).toThrow(/no data NIC eth0 \(it has eth1\.\.eth2\)/);
    expect(() => dataNicOf(vm, config.hosts[0]!, 3)).toThrow(RangeError);
  });
});
