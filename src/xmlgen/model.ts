/**
 * The typed VM description xmlgen turns into libvirt domain XML. It mirrors libvirt's elements, so a
 * reader of libvirt's documentation finds each field where the element is: optional element ->
 * optional field, repeated -> array, variants -> tagged unions whose `type` becomes the XML
 * `type='...'`. Reference: https://libvirt.org/formatdomain.html (section names cited per field).
 *
 * Units: memory is in MiB everywhere (emitted as `unit='MiB'`). Paths are absolute host paths.
 * Interfaces are listed in guest order: the first one is the guest's eth0 (RouteFlow management NIC,
 * its MAC is the RouteFlow vm_id), the following ones are eth1..N (RouteFlow data NICs).
 */

/** HYPERVISOR_NAMES lists the driver names accepted on the command line and in config (`xen-pv`, ...). */
export const HYPERVISOR_NAMES = ["kvm", "qemu", "lxc", "xen-pv", "xen-hvm", "test"] as const;

/** HypervisorName is one of HYPERVISOR_NAMES. */
export type HypervisorName = (typeof HYPERVISOR_NAMES)[number];

/**
 * Hypervisor selects the libvirt driver (`<domain type='...'>`) and, for Xen, the guest ABI
 * (`<os><type>xen</type>` for paravirtualised, `hvm` for fully virtualised; formatdomain "BIOS bootloader").
 */
export type Hypervisor =
  | { readonly type: "kvm" }
  | { readonly type: "qemu" }
  | { readonly type: "lxc" }
  | { readonly type: "xen"; readonly mode: "pv" | "hvm" }
  | { readonly type: "test" };

/** ARCHES lists the guest architectures the model accepts (`<os><type arch='...'>`). */
export const ARCHES = ["x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"] as const;

/** Arch is one of ARCHES. */
export type Arch = (typeof ARCHES)[number];

/** LIFECYCLE_ACTIONS lists libvirt's on_poweroff / on_reboot values (formatdomain "Events configuration"). */
export const LIFECYCLE_ACTIONS = ["destroy", "restart", "preserve", "rename-restart"] as const;

/** LifecycleAction is one of LIFECYCLE_ACTIONS. */
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];

/** CRASH_ACTIONS lists libvirt's on_crash values: the lifecycle actions plus the core-dump variants. */
export const CRASH_ACTIONS = [...LIFECYCLE_ACTIONS, "coredump-destroy", "coredump-restart"] as const;

/** CrashAction is one of CRASH_ACTIONS. */
export type CrashAction = (typeof CRASH_ACTIONS)[number];

/** Lifecycle maps to `<on_poweroff>`, `<on_reboot>`, `<on_crash>`; an absent field is omitted (libvirt default). */
export interface Lifecycle {
  readonly onPoweroff?: LifecycleAction;
  readonly onReboot?: LifecycleAction;
  readonly onCrash?: CrashAction;
}

/**
 * Boot is how the guest starts (formatdomain "Operating system booting"):
 * - `disk`: BIOS/firmware boots the first disk (`<boot dev='hd'/>`); qemu, kvm, xen hvm, test.
 * - `kernel`: direct kernel boot (`<kernel>`, `<initrd>`, `<cmdline>`); qemu, kvm, xen pv/hvm, test.
 * - `init`: container boot (`<init>` + `<initarg>`s); lxc only.
 * - `bootloader`: a host-side bootloader such as pygrub (`<bootloader>`); xen pv only.
 */
export type Boot =
  | { readonly type: "disk" }
  | { readonly type: "kernel"; readonly kernel: string; readonly initrd?: string; readonly cmdline?: string }
  | { readonly type: "init"; readonly init: string; readonly args?: readonly string[] }
  | { readonly type: "bootloader"; readonly bootloader: string; readonly args?: string };

/** DiskFormat is the image format given to libvirt's `<driver type='...'>` / `<format type='...'>`. */
export type DiskFormat = "raw" | "qcow2";

/**
 * DiskSource is where a disk's bytes live (formatdomain "Hard drives, floppy disks, CDROMs"):
 * - `file`: an image file in `format`;
 * - `overlay`: a qcow2 copy-on-write overlay at `path` on top of `backing` (emitted as `<backingStore>`);
 * - `block`: a host block device.
 */
export type DiskSource =
  | { readonly type: "file"; readonly path: string; readonly format: DiskFormat }
  | {
      readonly type: "overlay";
      readonly path: string;
      readonly backing: { readonly path: string; readonly format: DiskFormat };
    }
  | { readonly type: "block"; readonly dev: string };

/**
 * Disk is one `<disk device='disk'>`. `target` (e.g. `vda`) and bus default per driver (virtio `vdX` for
 * kvm/qemu, `xvdX` for xen, ...), in list order; set them only to override.
 */
export interface Disk {
  readonly source: DiskSource;
  readonly target?: string;
  readonly readonly?: boolean;
}

/**
 * Filesystem is one `<filesystem type='mount'>` (formatdomain "Filesystems"): a host directory mounted
 * in the guest. For lxc, the one with `target: "/"` is the container's root filesystem.
 */
export interface Filesystem {
  readonly type: "mount";
  readonly source: string;
  readonly target: string;
  readonly readonly?: boolean;
}

/** VirtualPort is `<virtualport type='openvswitch'/>`: libvirt adds the host device to an OVS bridge. */
export interface VirtualPort {
  readonly type: "openvswitch";
}

/** VLAN_TAG_MIN, VLAN_TAG_MAX bound an 802.1Q VLAN id (0 and 4095 are reserved by IEEE 802.1Q). */
export const VLAN_TAG_MIN = 1;
export const VLAN_TAG_MAX = 4094;

/**
 * Vlan is `<vlan><tag id='T'/></vlan>` (formatdomain "Setting VLAN tag"): one tag makes the NIC's switch port
 * an access port of VLAN `tag`. libvirt applies it on a bridge interface only when the bridge is Open vSwitch
 * (`virtualport`); a Linux bridge refuses the domain at start, so validation requires the virtualport.
 */
export interface Vlan {
  readonly tag: number;
}

/**
 * Interface is one `<interface>` (formatdomain "Network interfaces"), in guest order (first = eth0):
 * - `bridge`: attach to a host bridge; with `virtualport` that bridge is an Open vSwitch bridge
 *   (RouteFlow's `dp0`), plugged by libvirt itself at start and unplugged at stop;
 * - `network`: attach to a libvirt virtual network by name.
 * `target` is the host-side device name (RouteFlow: `<vmname>.<N>`); when absent libvirt picks `vnetN`.
 * `model` overrides the per-driver NIC model (virtio for qemu/kvm).
 */
export type Interface =
  | {
      readonly type: "bridge";
      readonly bridge: string;
      readonly mac: string;
      readonly virtualport?: VirtualPort;
      /** An access VLAN on the Open vSwitch port (needs `virtualport`). */
      readonly vlan?: Vlan;
      readonly target?: string;
      readonly model?: string;
    }
  | {
      readonly type: "network";
      readonly network: string;
      readonly mac: string;
      readonly target?: string;
      readonly model?: string;
    };

/**
 * Console says how boot output can be watched. `logFile`: the first serial port (guest ttyS0) writes to
 * this host file (`<serial type='file'>`; lxc has no serial port and ignores it, use the pty or a file the
 * init writes). `pty`: add a `<console type='pty'>` for `virsh console` (default true).
 */
export interface Console {
  readonly logFile?: string;
  readonly pty?: boolean;
}

/**
 * VmDescription is everything xmlgen needs to build one `<domain>`.
 * `uuid` may be omitted: it is then derived from `name` with stableUuid, so `virsh define` is an upsert.
 * `autostart` is a hint for the provisioner (`virsh autostart`); it is not part of the domain XML.
 */
export interface VmDescription {
  /** Domain name: 1..64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`. */
  readonly name: string;
  readonly uuid?: string;
  /** One-line `<title>` (no newline); free text, escaped. */
  readonly title?: string;
  /** `<description>`: free text, escaped. */
  readonly description?: string;
  readonly hypervisor: Hypervisor;
  readonly arch: Arch;
  /** Machine type such as `pc` or `q35` (qemu/kvm/xen hvm); omitted: libvirt's default. */
  readonly machine?: string;
  /** `<memory unit='MiB'>`: maximum memory. */
  readonly memoryMiB: number;
  /** `<currentMemory unit='MiB'>`: memory at boot; <= memoryMiB; omitted: equal to memoryMiB. */
  readonly currentMemoryMiB?: number;
  readonly vcpus: number;
  /** Host CPUs the vcpus may run on, libvirt's cpuset syntax (`0-3,^2`). */
  readonly cpuset?: string;
  readonly lifecycle?: Lifecycle;
  readonly autostart?: boolean;
  readonly boot: Boot;
  readonly disks?: readonly Disk[];
  readonly filesystems?: readonly Filesystem[];
  readonly interfaces: readonly Interface[];
  readonly console?: Console;
  /** Emulator binary (`<devices><emulator>`); omitted: libvirt's default for the arch/machine. */
  readonly emulator?: string;
}
