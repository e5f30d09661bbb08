/** viewUnderDriver: a VM shown under another driver, with what that driver cannot take derived or left out. */
import { describe, expect, it } from "vitest";
import { findConfiguredVm, parseConfig, viewUnderDriver } from "../../../../src/provisioner/config/index.js";
import { HYPERVISOR_NAMES, buildDomainXml } from "../../../../src/xmlgen/index.js";

const YAML = `
hosts: [{ name: q, uri: "qemu:///system" }]
defaults:
  machine: q35
  emulator: /usr/bin/qemu-system-x86_64
  network: { nicModel: e1000 }
  disk: { image: /img/base.qcow2 }
  boot: { type: disk }
datapaths:
  "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }
`;

describe("viewUnderDriver", () => {
  const c = parseConfig(YAML);
  const vm = findConfiguredVm(c, "a")!;

  it.each(HYPERVISOR_NAMES.map((h) => [h]))("renders %s", (hv) => {
    const v = viewUnderDriver(c, vm, hv);
    expect(v.vm.hypervisor).toBe(hv);
    expect(buildDomainXml(v.vm.describe(v.host))).toMatch(/^<domain type=/);
  });

  it("says what it changed for each driver, and where the VM would run", () => {
    expect(viewUnderDriver(c, vm, "kvm").notes).toEqual(["host q would run it"]);
    const pv = viewUnderDriver(c, vm, "xen-pv").notes.join("\n");
    expect(pv).toMatch(/xen-pv cannot boot the first disk .*; using bootloader \/usr\/bin\/pygrub, assumed/);
    expect(pv).toMatch(/machine q35 is left out \(xen-pv takes xenpv\)/);
    expect(pv).toMatch(/emulator \/usr\/bin\/qemu-system-x86_64 is left out/);
    expect(pv).toMatch(
      /no configured host runs xen-pv VMs \(to run it, add a host whose URI serves xen-pv \(like xen:\/\/\/system\)/,
    );
    const lxc = viewUnderDriver(c, vm, "lxc").notes.join("\n");
    expect(lxc).toMatch(/using init \/sbin\/init in rootfs \/var\/lib\/rfboot\/rootfs\/a, assumed/);
    expect(lxc).toMatch(/lxc takes no disks/);
    expect(lxc).toMatch(/NIC model e1000 is left out/);
    expect(lxc).toMatch(/machine q35 is left out \(lxc takes no machine type\)/);
  });
});
