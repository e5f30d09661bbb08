/**
 * fast-check arbitraries for VmDescription: every driver with every boot method, disk source, interface
 * type and console wiring its DRIVERS row allows, with hostile free text and paths. Shared by the unit
 * property tests and the virt-xml-validate integration test.
 */
import fc from "fast-check";
import {
  HYPERVISOR_NAMES,
  LIFECYCLE_ACTIONS,
  CRASH_ACTIONS,
  hypervisorFromName,
  type Boot,
  type Disk,
  type Filesystem,
  type HypervisorName,
  type Interface,
  type VmDescription,
} from "../../../src/xmlgen/index.js";
import { DRIVERS } from "../../../src/xmlgen/drivers.js";

/** HOSTILE are fragments that break naive XML building (quotes, markup, CDATA end, entities, line ends). */
export const HOSTILE = [
  '"',
  "'",
  "<",
  ">",
  "&",
  "]]>",
  "<![CDATA[",
  "-->",
  "&amp;",
  "&#13;",
  "\n",
  "\r",
  "\r\n",
  "\t",
  " ",
  "\u2028",
  "é",
  "😀",
  "</domain>",
  "${x}",
] as const;

/** xmlText: strings made of XML 1.0 characters, biased towards HOSTILE fragments. */
export const xmlText: fc.Arbitrary<string> = fc
  .array(fc.oneof(fc.constantFrom(...HOSTILE), fc.string({ maxLength: 8, unit: "grapheme" })), {
    maxLength: 8,
  })
  .map((parts) => parts.join(""))
  .filter((s) => /^[\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u.test(s));

/** singleLine: xmlText without line breaks and non-empty (libvirt's `<title>`). */
export const singleLine: fc.Arbitrary<string> = xmlText
  .map((s) => s.replace(/[\r\n]/g, " "))
  .filter((s) => s.length > 0);

const segment = fc
  .array(
    fc.oneof(
      fc.constantFrom("'", '"', "<", ">", "&", "]]>", " ", "é", "a", "b", "-", "_", "."),
      fc.stringMatching(/^[A-Za-z0-9]{1,6}$/),
    ),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  .map((p) => p.join(""))
  .filter((s) => s !== "." && s !== "..");

/** absPath: absolute paths whose segments carry quotes, markup characters and spaces. */
export const absPath: fc.Arbitrary<string> = fc
  .array(segment, { minLength: 1, maxLength: 4 })
  .map((s) => "/" + s.join("/"));

/** devName: a host device name (<= 15 chars) that libvirt does not reserve. */
export const devName = fc
  .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/)
  .filter((s) => !/^(vnet|vif|macvtap|macvlan)/.test(s));

/** uniqueMacs: `n` distinct unicast, non-zero MACs. */
export function uniqueMacs(min: number, max: number): fc.Arbitrary<string[]> {
  return fc
    .uniqueArray(fc.bigInt({ min: 1n, max: (1n << 48n) - 1n }), { minLength: min, maxLength: max })
    .map((xs) =>
      xs.map((x) => {
        const v = x & ~(1n << 40n); // clear the multicast bit (bit 0 of the first byte)
        return (v === 0n ? 2n : v).toString(16).padStart(12, "0").match(/../g)!.join(":");
      }),
    )
    .filter((ms) => new Set(ms).size === ms.length);
}

function bootArb(kinds: readonly Boot["type"][]): fc.Arbitrary<Boot> {
  return fc.constantFrom(...kinds).chain((k): fc.Arbitrary<Boot> => {
    switch (k) {
      case "disk":
        return fc.constant({ type: "disk" });
      case "kernel":
        return fc.record(
          { type: fc.constant("kernel" as const), kernel: absPath, initrd: absPath, cmdline: xmlText },
          { requiredKeys: ["type", "kernel"] },
        );
      case "init":
        return fc.record(
          { type: fc.constant("init" as const), init: absPath, args: fc.array(xmlText, { maxLength: 4 }) },
          { requiredKeys: ["type", "init"] },
        );
      case "bootloader":
        return fc.record(
          { type: fc.constant("bootloader" as const), bootloader: absPath, args: xmlText },
          { requiredKeys: ["type", "bootloader"] },
        );
    }
  });
}

const diskArb: fc.Arbitrary<Disk> = fc.record(
  {
    source: fc.oneof(
      fc.record({
        type: fc.constant("file" as const),
        path: absPath,
        format: fc.constantFrom("raw" as const, "qcow2" as const),
      }),
      fc
        .record({
          type: fc.constant("overlay" as const),
          path: absPath,
          backing: fc.record({ path: absPath, format: fc.constantFrom("raw" as const, "qcow2" as const) }),
        })
        .filter((o) => o.path !== o.backing.path),
      fc.record({ type: fc.constant("block" as const), dev: absPath }),
    ),
    readonly: fc.boolean(),
  },
  { requiredKeys: ["source"] },
);

function interfacesArb(lxc: boolean): fc.Arbitrary<Interface[]> {
  return uniqueMacs(0, 6).chain((macs) =>
    fc
      .tuple(
        ...macs.map((mac) =>
          fc.oneof(
            fc.record(
              {
                type: fc.constant("bridge" as const),
                bridge: devName,
                mac: fc.constant(mac),
                virtualport: fc.constant({ type: "openvswitch" as const }),
                vlan: fc.record({ tag: fc.integer({ min: 1, max: 4094 }) }),
                target: devName,
                ...(lxc ? {} : { model: fc.constantFrom("virtio", "e1000", "rtl8139") }),
              },
              { requiredKeys: ["type", "bridge", "mac"] },
            ),
            fc.record(
              {
                type: fc.constant("network" as const),
                network: fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/),
                mac: fc.constant(mac),
                target: devName,
                ...(lxc ? {} : { model: fc.constantFrom("virtio", "e1000") }),
              },
              { requiredKeys: ["type", "network", "mac"] },
            ),
          ),
        ),
      )
      .map((nics) => {
        // Host device names must be unique within a VM: drop repeated targets.
        const seen = new Set<string>();
        return nics.map((nic) => {
          // A VLAN tag exists only on an Open vSwitch port.
          let n = nic;
          if (n.type === "bridge" && n.vlan !== undefined && n.virtualport === undefined) {
            const { vlan: _v, ...rest } = n;
            n = rest;
          }
          if (n.target === undefined) return n;
          if (seen.has(n.target)) {
            const { target: _t, ...rest } = n;
            return rest as Interface;
          }
          seen.add(n.target);
          return n;
        });
      }),
  );
}

const filesystemsArb: fc.Arbitrary<Filesystem[]> = fc
  .uniqueArray(
    fc.record(
      { type: fc.constant("mount" as const), source: absPath, target: absPath, readonly: fc.boolean() },
      { requiredKeys: ["type", "source", "target"] },
    ),
    {
      maxLength: 3,
      selector: (f) => f.target,
    },
  )
  .chain((fs) =>
    fc
      .boolean()
      .map((root) =>
        root
          ? [
              { type: "mount" as const, source: "/var/lib/rfboot/guest/rootfs-lxc", target: "/" },
              ...fs.filter((f) => f.target !== "/"),
            ]
          : fs,
      ),
  );

const cpusetArb = fc
  .array(
    fc.oneof(
      fc.nat(63).map(String),
      fc.tuple(fc.nat(31), fc.nat(31)).map(([a, b]) => `${a}-${a + b}`),
    ),
    { minLength: 1, maxLength: 3 },
  )
  .chain((items) =>
    fc.option(fc.nat(63)).map((ex) => [...items, ...(ex === null ? [] : [`^${ex}`])].join(",")),
  );

/** vmFor: VM descriptions for one driver, covering every option its DRIVERS row allows. */
export function vmFor(h: HypervisorName): fc.Arbitrary<VmDescription> {
  const drv = DRIVERS[h];
  const lxc = drv.osType === "exe";
  const machines = drv.machines ?? ["pc", "q35", "pc-i440fx-7.2"];
  return fc
    .record(
      {
        name: fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/),
        uuid: fc.uuid(),
        title: singleLine,
        description: xmlText,
        arch: fc.constantFrom(...drv.arches),
        machine: lxc ? fc.constant(undefined) : fc.constantFrom(...machines),
        memoryMiB: fc.integer({ min: 16, max: 65536 }),
        currentFraction: fc.double({ min: 0.1, max: 1, noNaN: true }),
        vcpus: fc.integer({ min: 1, max: 64 }),
        cpuset: cpusetArb,
        lifecycle: fc.record(
          {
            onPoweroff: fc.constantFrom(...LIFECYCLE_ACTIONS),
            onReboot: fc.constantFrom(...LIFECYCLE_ACTIONS),
            onCrash: fc.constantFrom(...CRASH_ACTIONS),
          },
          { requiredKeys: [] },
        ),
        autostart: fc.boolean(),
        boot: bootArb(drv.boots),
        disks: drv.disk ? fc.array(diskArb, { maxLength: 4 }) : fc.constant([]),
        filesystems: drv.filesystems ? filesystemsArb : fc.constant([]),
        interfaces: interfacesArb(lxc),
        console: fc.record({ logFile: absPath, pty: fc.boolean() }, { requiredKeys: [] }),
        emulator: absPath,
      },
      { requiredKeys: ["name", "arch", "memoryMiB", "vcpus", "boot", "interfaces"] },
    )
    .map((r): VmDescription => {
      const { currentFraction, machine, disks, filesystems, ...rest } = r;
      const withDisk =
        rest.boot.type === "disk" && (disks ?? []).length === 0
          ? [
              {
                source: {
                  type: "file" as const,
                  path: "/var/lib/rfboot/images/base.img",
                  format: "raw" as const,
                },
              },
            ]
          : (disks ?? []);
      return {
        ...rest,
        hypervisor: hypervisorFromName(h),
        ...(machine !== undefined ? { machine } : {}),
        ...(currentFraction !== undefined
          ? { currentMemoryMiB: Math.max(1, Math.floor(rest.memoryMiB * currentFraction)) }
          : {}),
        ...(withDisk.length > 0 ? { disks: withDisk } : {}),
        ...(filesystems && filesystems.length > 0 ? { filesystems } : {}),
      };
    });
}

/** anyVm: a description for any driver. */
export const anyVm: fc.Arbitrary<VmDescription> = fc.constantFrom(...HYPERVISOR_NAMES).chain(vmFor);
