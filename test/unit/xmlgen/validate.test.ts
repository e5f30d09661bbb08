/** validateVmDescription: one case per failure, each a ConfigError naming the field path and the value. */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/common/errors.js";
import {
  buildDomainXml,
  hypervisorFromName,
  validateVmDescription,
  type VmDescription,
} from "../../../src/xmlgen/index.js";
import { SAMPLES } from "./samples.js";

const base = SAMPLES.qemu;
const lxc = SAMPLES.lxc;

// Cases set deliberately ill-typed values (numbers for names, unknown tags): the clone is untyped.
/* eslint-disable @typescript-eslint/no-explicit-any */
/** with builds a copy of `vm` with `edit` applied to a deep clone (values may be deliberately ill-typed). */
function with_(vm: VmDescription, edit: (v: Record<string, any>) => void): VmDescription {
  const c = structuredClone(vm) as Record<string, any>;
  edit(c);
  return c as VmDescription;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

function rejects(vm: VmDescription, path: string, value: unknown, message?: RegExp): void {
  let err: unknown;
  try {
    buildDomainXml(vm);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ConfigError at ${path}`).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  expect(ce.path).toBe(path);
  expect(ce.value).toEqual(value);
  expect(ce.message.startsWith(`${path}: `)).toBe(true);
  if (message) expect(ce.message).toMatch(message);
}

describe("validateVmDescription rejects", () => {
  const cases: [string, VmDescription, string, unknown, RegExp?][] = [
    ["an empty name", with_(base, (v) => (v.name = "")), "vm.name", "", /empty/],
    ["a name with a space", with_(base, (v) => (v.name = "rf vm")), "vm.name", "rf vm", /A-Z a-z 0-9 _ \. -/],
    ["a name with a quote", with_(base, (v) => (v.name = "a'b")), "vm.name", "a'b"],
    ["a name with a slash", with_(base, (v) => (v.name = "a/b")), "vm.name", "a/b"],
    ["a name starting with -", with_(base, (v) => (v.name = "-rf")), "vm.name", "-rf"],
    [
      "a name of 65 characters",
      with_(base, (v) => (v.name = "a".repeat(65))),
      "vm.name",
      "a".repeat(65),
      /64/,
    ],
    ["a non-string name", with_(base, (v) => (v.name = 5)), "vm.name", 5, /string/],
    ["a malformed uuid", with_(base, (v) => (v.uuid = "1234")), "vm.uuid", "1234", /uuid/],
    [
      "an all-zero uuid",
      with_(base, (v) => (v.uuid = "00000000-0000-0000-0000-000000000000")),
      "vm.uuid",
      "00000000-0000-0000-0000-000000000000",
    ],
    [
      "an unknown hypervisor",
      with_(base, (v) => (v.hypervisor = { type: "vmware" })),
      "vm.hypervisor.type",
      "vmware",
    ],
    [
      "xen without a mode",
      with_(base, (v) => (v.hypervisor = { type: "xen" })),
      "vm.hypervisor.mode",
      undefined,
    ],
    [
      "an arch xen pv cannot run",
      with_(SAMPLES["xen-pv"], (v) => (v.arch = "aarch64")),
      "vm.arch",
      "aarch64",
    ],
    ["a bad machine type", with_(base, (v) => (v.machine = "pc q35")), "vm.machine", "pc q35"],
    ["a machine type on lxc", with_(lxc, (v) => (v.machine = "pc")), "vm.machine", "pc"],
    ["a zero memory", with_(base, (v) => (v.memoryMiB = 0)), "vm.memoryMiB", 0, /integer/],
    ["a fractional memory", with_(base, (v) => (v.memoryMiB = 1.5)), "vm.memoryMiB", 1.5],
    [
      "currentMemory above memory",
      with_(base, (v) => (v.currentMemoryMiB = 256)),
      "vm.currentMemoryMiB",
      256,
      /exceed/,
    ],
    ["zero vcpus", with_(base, (v) => (v.vcpus = 0)), "vm.vcpus", 0],
    ["a bad cpuset", with_(base, (v) => (v.cpuset = "0-a")), "vm.cpuset", "0-a"],
    ["a reversed cpuset range", with_(base, (v) => (v.cpuset = "3-1")), "vm.cpuset", "3-1", /reversed/],
    [
      "a bad lifecycle action",
      with_(base, (v) => (v.lifecycle = { onReboot: "coredump-restart" })),
      "vm.lifecycle.onReboot",
      "coredump-restart",
    ],
    ["a title with a newline", with_(base, (v) => (v.title = "a\nb")), "vm.title", "a\nb", /single line/],
    [
      "a description with NUL",
      with_(base, (v) => (v.description = "a\u0000b")),
      "vm.description",
      "a\u0000b",
      /XML 1\.0/,
    ],
    [
      "a cmdline with ESC",
      with_(base, (v) => (v.boot.cmdline = "console=ttyS0\u001b[0m")),
      "vm.boot.cmdline",
      "console=ttyS0\u001b[0m",
      /XML 1\.0/,
    ],
    [
      "a cmdline with a lone surrogate",
      with_(base, (v) => (v.boot.cmdline = "a\uD800")),
      "vm.boot.cmdline",
      "a\uD800",
    ],
    [
      "an lxc init arg with U+FFFE",
      with_(lxc, (v) => (v.boot.args = ["ok", "x\uFFFE"])),
      "vm.boot.args[1]",
      "x\uFFFE",
    ],
    [
      "a relative kernel path",
      with_(base, (v) => (v.boot.kernel = "vmlinuz")),
      "vm.boot.kernel",
      "vmlinuz",
      /absolute/,
    ],
    [
      "a kernel path with ..",
      with_(base, (v) => (v.boot.kernel = "/var/lib/../../etc/shadow")),
      "vm.boot.kernel",
      "/var/lib/../../etc/shadow",
      /\.\./,
    ],
    [
      "a path with a newline",
      with_(base, (v) => (v.boot.initrd = "/a\nb")),
      "vm.boot.initrd",
      "/a\nb",
      /control/,
    ],
    [
      "a boot method the driver lacks",
      with_(base, (v) => (v.boot = { type: "init", init: "/init" })),
      "vm.boot.type",
      "init",
      /not supported by hypervisor qemu/,
    ],
    [
      "disk boot without a disk",
      with_(base, (v) => (v.boot = { type: "disk" })),
      "vm.boot.type",
      "disk",
      /at least one disk/,
    ],
    [
      "a disk on lxc",
      with_(lxc, (v) => (v.disks = [{ source: { type: "file", path: "/a.img", format: "raw" } }])),
      "vm.disks",
      "1 disk(s)",
    ],
    [
      "a bad disk format",
      with_(SAMPLES.kvm, (v) => (v.disks[0].source = { type: "file", path: "/a", format: "vmdk" })),
      "vm.disks[0].source.format",
      "vmdk",
    ],
    [
      "an overlay on itself",
      with_(SAMPLES.kvm, (v) => (v.disks[0].source.backing.path = v.disks[0].source.path)),
      "vm.disks[0].source.backing.path",
      "/var/lib/rfboot/images/rfvmA.qcow2",
    ],
    [
      "a block device path with ..",
      with_(SAMPLES["xen-pv"], (v) => (v.disks[1].source.dev = "/dev/../sda")),
      "vm.disks[1].source.dev",
      "/dev/../sda",
    ],
    [
      "a duplicate disk target",
      with_(SAMPLES["xen-pv"], (v) => {
        v.disks[0].target = "xvdb";
        v.disks[1].target = "xvdb";
      }),
      "vm.disks[1].target",
      "xvdb",
      /duplicate/,
    ],
    [
      "a bad disk target",
      with_(SAMPLES.kvm, (v) => (v.disks[0].target = "vda1")),
      "vm.disks[0].target",
      "vda1",
    ],
    [
      "a filesystem on qemu",
      with_(base, (v) => (v.filesystems = [{ type: "mount", source: "/a", target: "/" }])),
      "vm.filesystems",
      "1 filesystem(s)",
    ],
    [
      "a relative filesystem source",
      with_(lxc, (v) => (v.filesystems[0].source = "rootfs")),
      "vm.filesystems[0].source",
      "rootfs",
    ],
    [
      "a duplicate filesystem target",
      with_(lxc, (v) => v.filesystems.push({ type: "mount", source: "/b", target: "/" })),
      "vm.filesystems[1].target",
      "/",
      /duplicate/,
    ],
    [
      "a multicast MAC",
      with_(base, (v) => (v.interfaces[2].mac = "03:b2:b2:b2:b2:b2")),
      "vm.interfaces[2].mac",
      "03:b2:b2:b2:b2:b2",
      /unicast/,
    ],
    [
      "a broadcast MAC",
      with_(base, (v) => (v.interfaces[0].mac = "ff:ff:ff:ff:ff:ff")),
      "vm.interfaces[0].mac",
      "ff:ff:ff:ff:ff:ff",
      /unicast/,
    ],
    [
      "a malformed MAC",
      with_(base, (v) => (v.interfaces[1].mac = "02:b1:b1:b1:b1")),
      "vm.interfaces[1].mac",
      "02:b1:b1:b1:b1",
    ],
    [
      "a MAC with markup",
      with_(base, (v) => (v.interfaces[1].mac = "02:b1:b1:b1:b1:b1'/><x")),
      "vm.interfaces[1].mac",
      "02:b1:b1:b1:b1:b1'/><x",
    ],
    [
      "the all-zero MAC",
      with_(base, (v) => (v.interfaces[1].mac = "00:00:00:00:00:00")),
      "vm.interfaces[1].mac",
      "00:00:00:00:00:00",
    ],
    [
      "a duplicate MAC (case-insensitive)",
      with_(base, (v) => (v.interfaces[3].mac = "02:B1:B1:B1:B1:B1")),
      "vm.interfaces[3].mac",
      "02:b1:b1:b1:b1:b1",
      /duplicate MAC \(also interfaces\[1\]\)/,
    ],
    [
      "a duplicate host device",
      with_(base, (v) => (v.interfaces[3].target = "rfvmB.1")),
      "vm.interfaces[3].target",
      "rfvmB.1",
      /duplicate host device/,
    ],
    [
      "a host device longer than 15",
      with_(base, (v) => (v.interfaces[1].target = "rfvm-abcdefgh.10")),
      "vm.interfaces[1].target",
      "rfvm-abcdefgh.10",
      /IFNAMSIZ/,
    ],
    [
      "a reserved host device prefix",
      with_(base, (v) => (v.interfaces[1].target = "vnet7")),
      "vm.interfaces[1].target",
      "vnet7",
      /reserved/,
    ],
    [
      "a bridge name with a space",
      with_(base, (v) => (v.interfaces[1].bridge = "dp 0")),
      "vm.interfaces[1].bridge",
      "dp 0",
    ],
    [
      "a network name with a quote",
      with_(base, (v) => (v.interfaces[0].network = "def'ault")),
      "vm.interfaces[0].network",
      "def'ault",
    ],
    [
      "a bad NIC model",
      with_(base, (v) => (v.interfaces[0].model = "virtio'/>")),
      "vm.interfaces[0].model",
      "virtio'/>",
    ],
    [
      "a NIC model on lxc",
      with_(lxc, (v) => (v.interfaces[0].model = "virtio")),
      "vm.interfaces[0].model",
      "virtio",
      /veth/,
    ],
    [
      "an unknown virtualport",
      with_(base, (v) => (v.interfaces[1].virtualport = { type: "802.1Qbh" })),
      "vm.interfaces[1].virtualport.type",
      "802.1Qbh",
    ],
    [
      "a VLAN tag of 0",
      with_(base, (v) => (v.interfaces[1].vlan = { tag: 0 })),
      "vm.interfaces[1].vlan.tag",
      0,
      /1\.\.4094/,
    ],
    [
      "a VLAN tag of 4095",
      with_(base, (v) => (v.interfaces[1].vlan = { tag: 4095 })),
      "vm.interfaces[1].vlan.tag",
      4095,
    ],
    [
      "a VLAN tag that is not an integer",
      with_(base, (v) => (v.interfaces[1].vlan = { tag: "7" })),
      "vm.interfaces[1].vlan.tag",
      "7",
    ],
    [
      "a VLAN tag on a bridge without the Open vSwitch virtualport",
      with_(base, (v) => {
        delete v.interfaces[1].virtualport;
        v.interfaces[1].vlan = { tag: 7 };
      }),
      "vm.interfaces[1].vlan",
      { tag: 7 },
      /openvswitch/,
    ],
    [
      "an unknown interface type",
      with_(base, (v) => (v.interfaces[1].type = "direct")),
      "vm.interfaces[1].type",
      "direct",
    ],
    [
      "a relative console log",
      with_(base, (v) => (v.console = { logFile: "rfvmB.log" })),
      "vm.console.logFile",
      "rfvmB.log",
    ],
    ["a non-list interfaces", with_(base, (v) => (v.interfaces = "eth0")), "vm.interfaces", "eth0"],
  ];
  for (const [what, vm, path, value, message] of cases) {
    it(`${what} (${path})`, () => rejects(vm, path, value, message));
  }

  it("prefixes the field path given by the caller", () => {
    expect(() =>
      validateVmDescription(
        with_(base, (v) => (v.vcpus = -1)),
        "vms.rfvmB",
      ),
    ).toThrow(/^vms\.rfvmB\.vcpus: /);
  });
});

describe("validateVmDescription normalises", () => {
  it("derives the uuid from the name when absent and lower-cases a given one", () => {
    const a = validateVmDescription(base);
    expect(a.uuid).toBe(validateVmDescription(structuredClone(base)).uuid);
    const b = validateVmDescription({ ...base, uuid: "5E3C8A5B-6A52-4D39-9C0C-2B1D3B6F7A10" });
    expect(b.uuid).toBe("5e3c8a5b-6a52-4d39-9c0c-2b1d3b6f7a10");
  });

  it("lower-cases MACs and assigns disk targets per driver, skipping explicit ones", () => {
    const vm = validateVmDescription({
      ...SAMPLES["xen-hvm"],
      interfaces: [{ type: "bridge", bridge: "xenbr0", mac: "02:AB:CD:EF:00:01" }],
      disks: [
        { source: { type: "file", path: "/a", format: "raw" } },
        { source: { type: "file", path: "/b", format: "raw" }, target: "xvda" },
        { source: { type: "file", path: "/c", format: "raw" } },
      ],
    });
    expect(vm.interfaces[0]!.mac).toBe("02:ab:cd:ef:00:01");
    expect(vm.disks!.map((d) => d.target)).toEqual(["xvdb", "xvda", "xvdc"]);
  });

  it("parses every hypervisor name and refuses others", () => {
    expect(hypervisorFromName("xen-pv")).toEqual({ type: "xen", mode: "pv" });
    expect(() => hypervisorFromName("vbox")).toThrow(
      /unknown hypervisor.*kvm, qemu, lxc, xen-pv, xen-hvm, test/,
    );
  });
});
