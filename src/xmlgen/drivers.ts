/**
 * Per-driver differences, all in one table, so that what sets the drivers apart is read in one place
 * rather than spread over if-branches in the renderer: which boot methods, arches, disks, NIC model,
 * features and console wiring each libvirt driver takes. validate.ts checks a description against its
 * row; build.ts renders from it. Adding a driver = adding a row here.
 */
import { ConfigError } from "../common/errors.js";
import {
  ARCHES,
  HYPERVISOR_NAMES,
  type Arch,
  type Boot,
  type Hypervisor,
  type HypervisorName,
} from "./model.js";

/** ConsoleWiring says how boot output is exposed (formatdomain "Consoles, serial, parallel & channel devices"). */
export type ConsoleWiring =
  /** ttyS0 is `<serial>` port 0 (a pty logged to a file, or a plain file); `<console>` aliases it. */
  | "serial"
  /** Xen PV has no emulated UART: the paravirtual console (`<console><target type='xen'/>`) carries it. */
  | "xen"
  /** LXC: the container's /dev/console is a host pty (`<console><target type='lxc'/>`); no serial port. */
  | "lxc";

/** DriverTraits is one row of DRIVERS. */
export interface DriverTraits {
  /** `<domain type='...'>`. */
  readonly domainType: "kvm" | "qemu" | "lxc" | "xen" | "test";
  /** `<os><type>...</type>`: `hvm` full virtualisation, `exe` container, `xen` paravirtualised. */
  readonly osType: "hvm" | "exe" | "xen";
  /** Boot methods this driver can do. */
  readonly boots: readonly Boot["type"][];
  /** Guest architectures the schema/driver accept. */
  readonly arches: readonly Arch[];
  /** Allowed machine types; undefined: any `[A-Za-z0-9_.-]+` (qemu's `pc`, `q35`, ...). */
  readonly machines?: readonly string[];
  /** Disk bus and target prefix (`vd` -> vda, vdb, ...); undefined: the driver takes no disks. */
  readonly disk?: { readonly bus: "virtio" | "xen" | "scsi" | "ide" | "sata"; readonly prefix: string };
  /** Whether `<filesystem type='mount'>` is supported. */
  readonly filesystems: boolean;
  /** Default NIC `<model type='...'>`; undefined: no model element (driver default). */
  readonly nicModel?: string;
  /** `<features>` children (all empty elements). */
  readonly features: readonly string[];
  readonly console: ConsoleWiring;
}

const X86: readonly Arch[] = ["x86_64", "i686"];

/**
 * DRIVERS maps each hypervisor name to its traits.
 * - kvm/qemu: virtio disks (vdX) and NICs, ACPI+APIC; kernel or disk boot.
 * - lxc: `exe` + `<init>`, root filesystem as a mount, no disks, no NIC model (veth pairs).
 * - xen-pv: `xen` os type (machine xenpv), xvdX disks on the xen bus, PV console; kernel or pygrub-style
 *   bootloader; x86 only (schema `ostypexen`).
 * - xen-hvm: `hvm` (machine xenfv), xvdX disks, ACPI+APIC+PAE, emulated serial.
 * - test: libvirt's mock driver; accepts anything schema-valid; virtio like qemu so documents look alike.
 */
export const DRIVERS: { readonly [K in HypervisorName]: DriverTraits } = {
  kvm: {
    domainType: "kvm",
    osType: "hvm",
    boots: ["disk", "kernel"],
    arches: ARCHES,
    disk: { bus: "virtio", prefix: "vd" },
    filesystems: false,
    nicModel: "virtio",
    features: ["acpi", "apic"],
    console: "serial",
  },
  qemu: {
    domainType: "qemu",
    osType: "hvm",
    boots: ["disk", "kernel"],
    arches: ARCHES,
    disk: { bus: "virtio", prefix: "vd" },
    filesystems: false,
    nicModel: "virtio",
    features: ["acpi", "apic"],
    console: "serial",
  },
  lxc: {
    domainType: "lxc",
    osType: "exe",
    boots: ["init"],
    arches: ARCHES,
    filesystems: true,
    features: [],
    console: "lxc",
  },
  "xen-pv": {
    domainType: "xen",
    osType: "xen",
    boots: ["kernel", "bootloader"],
    arches: X86,
    machines: ["xenpv"],
    disk: { bus: "xen", prefix: "xvd" },
    filesystems: false,
    features: [],
    console: "xen",
  },
  "xen-hvm": {
    domainType: "xen",
    osType: "hvm",
    boots: ["disk", "kernel"],
    arches: X86,
    machines: ["xenfv"],
    disk: { bus: "xen", prefix: "xvd" },
    filesystems: false,
    features: ["acpi", "apic", "pae"],
    console: "serial",
  },
  test: {
    domainType: "test",
    osType: "hvm",
    boots: ["disk", "kernel"],
    arches: ARCHES,
    disk: { bus: "virtio", prefix: "vd" },
    filesystems: false,
    nicModel: "virtio",
    features: ["acpi", "apic"],
    console: "serial",
  },
};

/** hypervisorFromName parses `kvm`, `qemu`, `lxc`, `xen-pv`, `xen-hvm` or `test`; ConfigError otherwise. */
export function hypervisorFromName(name: string, path = "hypervisor"): Hypervisor {
  switch (name) {
    case "kvm":
    case "qemu":
    case "lxc":
    case "test":
      return { type: name };
    case "xen-pv":
      return { type: "xen", mode: "pv" };
    case "xen-hvm":
      return { type: "xen", mode: "hvm" };
  }
  throw new ConfigError(`unknown hypervisor (want one of ${HYPERVISOR_NAMES.join(", ")})`, path, name);
}

/** hypervisorName is the inverse of hypervisorFromName. */
export function hypervisorName(h: Hypervisor): HypervisorName {
  return h.type === "xen" ? `xen-${h.mode}` : h.type;
}

/** driverOf returns the DRIVERS row of a hypervisor. */
export function driverOf(h: Hypervisor): DriverTraits {
  return DRIVERS[hypervisorName(h)];
}

/** diskTargetName gives the default target of the `index`-th disk: prefix + a, b, ..., z, aa, ab, ... */
export function diskTargetName(prefix: string, index: number): string {
  let s = "";
  let i = index;
  do {
    s = String.fromCharCode(97 + (i % 26)) + s;
    i = Math.floor(i / 26) - 1;
  } while (i >= 0);
  return prefix + s;
}
