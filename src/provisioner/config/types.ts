/** The loaded, validated, frozen configuration and the VMs it resolves to. */
import type { HypervisorName, VmDescription } from "../../xmlgen/index.js";
import type { DatapathEntry, ParsedConfig, VmSettings } from "./schema.js";

/** HostConfig is one libvirt host with every default filled in. */
export interface HostConfig {
  /** Unique host name (used for pins and in records). */
  readonly name: string;
  /** libvirt connection URI (`qemu:///system`, `qemu+ssh://h/system`, `test+unix:///default`). */
  readonly uri: string;
  /** Most VMs placed on this host. */
  readonly maxVms: number;
  /** Memory for VMs, MiB; undefined: memory is not a placement limit. */
  readonly memoryMiB?: number;
  /** Concurrent `virsh start`s on this host. */
  readonly maxConcurrentStarts: number;
  /** Directory of per-VM disk overlays and copies. */
  readonly storageDir: string;
  /** Directory of serial console logs (`<name>.log`). */
  readonly consoleLogDir: string;
  /** Hypervisors this host runs (explicit, or derived from the URI scheme). */
  readonly hypervisors: readonly HypervisorName[];
  /** The storage pool of the VMs' disks on this host (type dir, target `storageDir`). */
  readonly pool: string;
  /** Where domain-read files (images, kernels, initrds) are found: at their paths, or as volumes of `pool`. */
  readonly images: "path" | "pool";
  /** Upload missing images into `pool` from their local paths (images: pool). */
  readonly upload: boolean;
  /** Memory the host keeps for itself, MiB (placement: reported free memory minus this). */
  readonly memoryReserveMiB: number;
  /** The cross-host data plane, when this host's data NICs reach RouteFlow's virtual switch by a trunk. */
  readonly dataPlane?: { readonly trunkBridge: string; readonly bridge?: string };
}

/** DatapathConfig is one `datapaths` entry with its dpid parsed. */
export type DatapathConfig = Readonly<DatapathEntry> & {
  /** The datapath id. */
  readonly dpid: bigint;
  /** The key as written in the file (`"0x5"`, `"5"`, ...). */
  readonly key: string;
};

/**
 * RfbootConfig is a validated configuration, deeply frozen. Sections are as documented in config/README.md;
 * `datapaths` is a list sorted by dpid (look VMs up with resolveDatapath, not by scanning).
 */
export type RfbootConfig = Readonly<
  Omit<ParsedConfig, "hosts" | "datapaths"> & {
    /** Where the config came from (file path or `<inline>`), for messages. */
    readonly source: string;
    readonly hosts: readonly HostConfig[];
    readonly datapaths: readonly DatapathConfig[];
  }
>;

/** ResolvedPort is one data port: guest eth`vmPort` <-> switch port `dpPort`. */
export interface ResolvedPort {
  /** Guest NIC number N of ethN (RouteFlow's vm_port). */
  readonly vmPort: number;
  /** OpenFlow port number on the switch (RouteFlow's dp_port). */
  readonly dpPort: number;
  /** The data NIC's MAC (RouteFlow's scheme, xmlgen routeflowDataMac). */
  readonly mac: string;
  /** Host-side device name (`rfvmA.1`; a hashed `rf<8 hex>.N` when `<name>.N` exceeds 15 characters). */
  readonly hostDev: string;
}

/** DiskKind says how a VM's disk is prepared on its host (see lifecycle). */
export type DiskKind = "overlay" | "copy" | "none";

/** ResolvedDisk is a VM's disk, host-independent. */
export interface ResolvedDisk {
  /** overlay: qcow2 overlay on `base`; copy: full copy of `base`; none: `base` used in place. */
  readonly kind: DiskKind;
  /** The base image. */
  readonly base: string;
  /** Format of the base image. */
  readonly baseFormat: "qcow2" | "raw";
  /** Format of the file the VM uses (overlay: qcow2; copy/none: the base's). */
  readonly format: "qcow2" | "raw";
  /** File name of the per-VM file inside the host's storageDir (kind none: undefined). */
  readonly fileName?: string;
}

/** DiskPlan is a VM's disk on one host: `path` is what the domain uses (and what to create for overlay/copy). */
export interface DiskPlan extends ResolvedDisk {
  readonly path: string;
}

/**
 * HostPaths are where one host has the files a VM's domain reads, when that is not at their configured
 * paths (a host with `images: pool` has them as volumes of its pool). Found by the provisioner on the host
 * before `define`; an absent key means the configured path. LXC's `boot.rootfs` is a directory, which no
 * volume can stand for: it is always the configured path on the host.
 */
export interface HostPaths {
  readonly kernel?: string;
  readonly initrd?: string;
  /** image is the base image (`disk.image`). */
  readonly image?: string;
}

/** VmPlan is everything needed to put one VM on one host. */
export interface VmPlan {
  /** The full xmlgen description (uuid stable, disk under storageDir, console log under consoleLogDir). */
  readonly description: VmDescription;
  /** The disk to prepare before `define`, if any. */
  readonly disk?: DiskPlan;
  /** The serial console log file on the VM's host, if logging is on (readiness reads it only without a console stream). */
  readonly consoleLog?: string;
}

/** VmSource says why a VM exists: listed in `datapaths`, or derived by the template policy. */
export type VmSource = "configured" | "template";

/**
 * ResolvedVm is one datapath's VM with defaults, profile, overrides and placeholders applied: all that
 * the provisioner needs, frozen. `describe`/`plan` give the host-specific parts.
 */
export interface ResolvedVm {
  readonly source: VmSource;
  readonly dpid: bigint;
  /** The dpid as 16 lower-case hex digits. */
  readonly dpidHex: string;
  readonly name: string;
  /** RouteFlow vm_id: eth0's MAC as a 48-bit integer. */
  readonly vmId: bigint;
  /** eth0's MAC (`02:a0:a0:a0:a0:a0`). */
  readonly vmMac: string;
  readonly hypervisor: HypervisorName;
  readonly vcpus: number;
  readonly memoryMiB: number;
  /** Data ports sorted by vmPort (one rfconfig row each). */
  readonly ports: readonly ResolvedPort[];
  /** Number of data NICs (eth1..N): the highest vmPort (a portMap may leave gaps). */
  readonly dataNics: number;
  /** Host name the VM is pinned to. */
  readonly hostPin?: string;
  /** The profile the VM inherits from. */
  readonly profile?: string;
  /** The merged settings (placeholders substituted). */
  readonly settings: VmSettings;
  readonly disk?: ResolvedDisk;
  /** describe builds the VM's xmlgen description for `host`, with the files the host has elsewhere at `paths`. */
  describe(host: HostConfig, paths?: HostPaths): VmDescription;
  /** plan builds the description plus the disk and console log paths for `host` (and `paths`, as describe). */
  plan(host: HostConfig, paths?: HostPaths): VmPlan;
}
