/**
 * One NIC as a standalone `<interface>` document (for `virsh attach-device` / `detach-device`): golden per
 * driver kind where the element differs (qemu/kvm/test carry the virtio model, lxc veth pairs none), and
 * byte for byte the element the full domain XML holds, so hot-plug and define can never disagree on a MAC,
 * host device or bridge.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/common/errors.js";
import {
  buildDomainXml,
  buildInterfaceXml,
  HYPERVISOR_NAMES,
  type VmDescription,
} from "../../../src/xmlgen/index.js";
import { FIXTURES, SAMPLES } from "./samples.js";

const UPDATE = process.env.RFBOOT_UPDATE_GOLDEN === "1";

/** interfaceBlocks cuts each `<interface>` element out of a domain document and moves it to column 0. */
function interfaceBlocks(domainXml: string): string[] {
  const blocks = domainXml.match(/^ {4}<interface [^\n]*\n(?: {6}[^\n]*\n)*? {4}<\/interface>\n/gm) ?? [];
  return blocks.map((b) =>
    b
      .split("\n")
      .map((l) => l.slice(4))
      .join("\n"),
  );
}

describe("buildInterfaceXml", () => {
  const golden: [string, VmDescription, number][] = [
    ["qemu", SAMPLES.qemu, 2],
    ["lxc", SAMPLES.lxc, 2],
  ];
  for (const [name, vm, index] of golden) {
    it(`${name}: ${vm.name} eth${index} matches test/fixtures/xmlgen/interface/${name}.xml byte for byte`, () => {
      const xml = buildInterfaceXml(vm, index);
      const file = join(FIXTURES, "interface", `${name}.xml`);
      if (UPDATE) writeFileSync(file, xml);
      expect(xml).toBe(readFileSync(file, "utf8"));
    });
  }

  it("carries RouteFlow's data NIC layout: MAC 02:bN:.., host device <vm>.N, OVS bridge dp0", () => {
    expect(buildInterfaceXml(SAMPLES.qemu, 3)).toBe(
      [
        '<interface type="bridge">',
        '  <mac address="02:b3:b3:b3:b3:b3"/>',
        '  <source bridge="dp0"/>',
        '  <virtualport type="openvswitch"/>',
        '  <target dev="rfvmB.3"/>',
        '  <model type="virtio"/>',
        "</interface>",
        "",
      ].join("\n"),
    );
  });

  it("puts a VLAN tag between <source> and <virtualport>, where libvirt's dumpxml has it", () => {
    const nic = { ...SAMPLES.qemu.interfaces[3]!, bridge: "br-vms", vlan: { tag: 17 } };
    const vm: VmDescription = { ...SAMPLES.qemu, interfaces: [...SAMPLES.qemu.interfaces.slice(0, 3), nic] };
    expect(buildInterfaceXml(vm, 3)).toBe(
      [
        '<interface type="bridge">',
        '  <mac address="02:b3:b3:b3:b3:b3"/>',
        '  <source bridge="br-vms"/>',
        "  <vlan>",
        '    <tag id="17"/>',
        "  </vlan>",
        '  <virtualport type="openvswitch"/>',
        '  <target dev="rfvmB.3"/>',
        '  <model type="virtio"/>',
        "</interface>",
        "",
      ].join("\n"),
    );
  });

  for (const h of HYPERVISOR_NAMES) {
    it(`${h}: every NIC's document is exactly its element in the full domain XML`, () => {
      const vm = SAMPLES[h];
      const blocks = interfaceBlocks(buildDomainXml(vm));
      expect(blocks).toHaveLength(vm.interfaces.length);
      blocks.forEach((b, i) => expect(buildInterfaceXml(vm, i)).toBe(b));
    });
  }

  it("kvm and test render a data NIC like qemu (virtio); xen like lxc (no model)", () => {
    const strip = (s: string) => s.replace(/rfvm[A-Z1]/g, "VM").replace(/02:[0-9a-f:]+/g, "MAC");
    const sameNic = (h: keyof typeof SAMPLES) => strip(buildInterfaceXml(SAMPLES[h], 1));
    expect(sameNic("kvm")).toBe(sameNic("qemu"));
    expect(buildInterfaceXml(SAMPLES.test, 1)).toContain('<model type="virtio"/>');
    expect(sameNic("xen-pv")).toBe(sameNic("lxc"));
  });

  it("validates the whole description first: a bad or duplicate MAC is a ConfigError at its path", () => {
    const bad: VmDescription = {
      ...SAMPLES.qemu,
      interfaces: [SAMPLES.qemu.interfaces[0]!, { ...SAMPLES.qemu.interfaces[1]!, mac: "03:00:00:00:00:01" }],
    };
    expect(() => buildInterfaceXml(bad, 1)).toThrow(ConfigError);
    expect(() => buildInterfaceXml(bad, 1)).toThrow(/vm\.interfaces\[1\]\.mac: must be a unicast MAC/);
    const dup: VmDescription = {
      ...SAMPLES.lxc,
      interfaces: [SAMPLES.lxc.interfaces[0]!, { ...SAMPLES.lxc.interfaces[1]!, mac: "02:c0:c0:c0:c0:c0" }],
    };
    expect(() => buildInterfaceXml(dup, 1)).toThrow(/vm\.interfaces\[1\]\.mac: duplicate MAC/);
    const badDev: VmDescription = {
      ...SAMPLES.qemu,
      interfaces: [{ ...SAMPLES.qemu.interfaces[1]!, target: "a<b" }],
    };
    expect(() => buildInterfaceXml(badDev, 0)).toThrow(/vm\.interfaces\[0\]\.target/);
  });

  it("refuses an index with no NIC (negative, fractional, past the end) naming the count", () => {
    for (const i of [-1, 0.5, 4, Number.NaN]) {
      try {
        buildInterfaceXml(SAMPLES.qemu, i);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).message).toMatch(/no such NIC: the VM has 4 \(indexes 0\.\.3; 0 = eth0\)/);
        expect((e as ConfigError).value).toBe(i);
      }
    }
  });
});
