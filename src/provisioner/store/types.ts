/** Store data model: RouteFlow's `rfconfig` rows and rfboot's own per-datapath VM records, events and leases. */

/**
 * RfconfigRow is one row of RouteFlow's `rfconfig` collection: one VM data port wired to one switch port.
 * Every field is a canonical decimal string (RouteFlow queries with `str(v)`; see shared/routeflow/README.md).
 */
export interface RfconfigRow {
  readonly vm_id: string;
  readonly vm_port: string;
  readonly ct_id: string;
  readonly dp_id: string;
  readonly dp_port: string;
}

/** RFCONFIG_FIELDS lists the `rfconfig` fields in RouteFlow's column order (rftestNconfig.csv). */
export const RFCONFIG_FIELDS = ["vm_id", "vm_port", "ct_id", "dp_id", "dp_port"] as const;

/** VM_STATES are the lifecycle states of a record, in rough lifecycle order. */
export const VM_STATES = [
  "joined",
  "placing",
  "defining",
  "starting",
  "running",
  "ready",
  "stopped",
  "suspended",
  "prewarmed",
  "missing",
  "failed",
  "left",
] as const;

/** VmState is one of VM_STATES. */
export type VmState = (typeof VM_STATES)[number];

/** SwitchInfo is what the controller learnt about the datapath's OpenFlow session. */
export interface SwitchInfo {
  /** peer is the switch's `address:port` as seen by rfboot. */
  readonly peer: string;
  /** version is the negotiated OpenFlow wire version (1 = 1.0, 4 = 1.3). */
  readonly version: number;
  readonly connected: boolean;
}

/** RecordPort is one switch port and, when mapped, the VM interface wired to it. */
export interface RecordPort {
  /** dpPort is the OpenFlow port number. */
  readonly dpPort: number;
  /** vmPort is the guest interface number (`eth1` -> 1), when this port is mapped. */
  readonly vmPort?: number;
  readonly name?: string;
  readonly hwAddr?: string;
}

/** LastError records the most recent failure for a VM: its kind (e.g. a VirshErrorKind), message and time. */
export interface LastError {
  readonly kind: string;
  readonly message: string;
  readonly at: Date;
}

/**
 * PrewarmImage is a managed-save image made ahead of a switch's first join: its next start restores it.
 */
export interface PrewarmImage {
  /** at is when the image was saved. */
  readonly at: Date;
  /** host is the libvirt host holding the image (the VM's join must go there to restore it). */
  readonly host: string;
  /** fingerprint is the VM config the image was booted from (an image of another config is stale). */
  readonly fingerprint: string;
  /** imageMiB is the image's size as the disk budget counts it (the guest's memoryMiB). */
  readonly imageMiB: number;
}

/**
 * PrewarmBoot marks a VM that a prewarm is booting now, ahead of its switch: the record's state (`starting`,
 * `running`, `ready`) is that boot's, not a switch's. Cleared when the prewarm ends (saved, cancelled, failed,
 * or left to a switch that joined meanwhile).
 */
export interface PrewarmBoot {
  /** since is when the prewarm began booting the VM. */
  readonly since: Date;
  /** host is the libvirt host it boots on (where its image will be). */
  readonly host: string;
}

/**
 * VmRecord is rfboot's document for one datapath and its VM in `<prefix>vms`; `_id` is the dpid as 16 hex
 * digits so that one datapath can never have two records.
 */
export interface VmRecord {
  readonly _id: string;
  /** dpidHex is the datapath id as 16 lower-case hex digits (same as `_id`). */
  readonly dpidHex: string;
  /** dpid is the datapath id as a decimal string, as RouteFlow stores `dp_id`. */
  readonly dpid: string;
  readonly vmName?: string;
  /** vmId is RouteFlow's vm_id: the eth0 MAC read as a 48-bit integer, decimal string. */
  readonly vmId?: string;
  /** vmMac is the same vm_id as a MAC (`02:a0:a0:a0:a0:a0`). */
  readonly vmMac?: string;
  /** host names the libvirt host (config key) the VM is defined on. */
  readonly host?: string;
  readonly hypervisor?: string;
  readonly uuid?: string;
  readonly state: VmState;
  readonly createdAt?: Date;
  readonly joinedAt?: Date;
  readonly definedAt?: Date;
  readonly startedAt?: Date;
  readonly readyAt?: Date;
  readonly leftAt?: Date;
  /** updatedAt is the time of the latest patch (rfboot's clock when the change happened, not when flushed). */
  readonly updatedAt: Date;
  readonly switch?: SwitchInfo;
  readonly ports?: readonly RecordPort[];
  readonly lastError?: LastError | null;
  /** configFingerprint identifies the VM config the domain was defined from (changes trigger a redefine). */
  readonly configFingerprint?: string;
  readonly attempts?: number;
  /** prewarm is the VM's prewarm save image (policies.prewarm); null or absent: it has none. */
  readonly prewarm?: PrewarmImage | null;
  /**
   * prewarming: a prewarm is booting the VM now (policies.prewarm); null or absent: none is. Beside `prewarm`
   * rather than in it: `prewarm` says whether an image exists, and a boot in progress has none yet.
   */
  readonly prewarming?: PrewarmBoot | null;
  /** owner is the rfboot instance that wrote the record last. */
  readonly owner?: string;
}

/**
 * RecordPatch is a partial update of a VmRecord: each present field is `$set`; `switch` merges field by field;
 * `lastError: null` clears the error. `_id`, `dpid`, `dpidHex`, `createdAt` and `updatedAt` are the store's.
 */
export type RecordPatch = {
  -readonly [
    K in Exclude<keyof VmRecord, "_id" | "dpid" | "dpidHex" | "createdAt" | "updatedAt" | "switch">
  ]?: VmRecord[K];
} & { switch?: Partial<SwitchInfo> };

/** StoreEvent is one entry of the event log (`<prefix>events`). */
export interface StoreEvent {
  readonly at: Date;
  /** dpid is the datapath id as 16 hex digits, when the event concerns one. */
  readonly dpid?: string;
  readonly vm?: string;
  /** kind is a short machine-readable tag: `join`, `leave`, `boot`, `ready`, `error` ... */
  readonly kind: string;
  readonly detail?: string;
}

/** StoredEvent is a StoreEvent read back, with its id (ObjectId hex) and the writing instance. */
export interface StoredEvent extends StoreEvent {
  readonly id: string;
  readonly owner?: string;
}

/** Lease is the current holder of a dpid (the latest generation of its lease documents). */
export interface Lease {
  readonly dpidHex: string;
  readonly owner: string;
  readonly expiresAt: Date;
  /** generation counts takeovers: each change of holder inserts a new generation document. */
  readonly generation: number;
}

/** WriteOutcome tells a writer whether its change reached MongoDB or waits in the outbox. */
export type WriteOutcome = "written" | "queued";

/** PortRegisterSeen is one PortRegister observed on RouteFlow's `rfclient<->rfserver` channel. */
export interface PortRegisterSeen {
  readonly vmId: string;
  readonly vmPort: string;
  readonly hwAddress: string;
  /** at is the ObjectId time of the message (second precision). */
  readonly at: Date;
  readonly messageId: string;
}
