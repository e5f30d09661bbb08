/**
 * The config as a declared table (as faucet's `conf.py` does): every key's type and default live here,
 * in one zod schema; unknown keys are rejected everywhere (`strictObject`). config/README.md documents
 * each key; config/example.yaml shows every one of them.
 */
import { z } from "zod";
import {
  ARCHES,
  CRASH_ACTIONS,
  HYPERVISOR_NAMES,
  LIFECYCLE_ACTIONS,
  MAX_DATA_PORTS,
} from "../../xmlgen/index.js";
import {
  COLLECTION_PREFIX_RE,
  DEV_RE,
  IDENT_RE,
  MONGO_DB_NAME_RE,
  NETWORK_RE,
  VM_NAME_RE,
  hostProblem,
  libvirtUriProblem,
  mongoUriProblem,
  pathProblem,
  regexProblem,
  textProblem,
} from "./checks.js";
import { parseVmId, vmIdProblemText } from "./ids.js";

/** checked builds a string schema whose extra rule is `problem` (undefined = fine, else the message). */
function checked(problem: (s: string) => string | undefined) {
  return z.string().superRefine((s, ctx) => {
    const p = problem(s);
    if (p !== undefined) ctx.addIssue({ code: "custom", message: p });
  });
}

/** matching builds a string schema that must match `re`, with a readable message. */
function matching(re: RegExp, message: string) {
  return checked((s) => (re.test(s) ? undefined : message));
}

const NAME_MSG = "may contain only A-Z a-z 0-9 _ . - (1..64 characters, not starting with . or -)";

/** vmName: a libvirt domain name. */
export const vmNameSchema = matching(VM_NAME_RE, NAME_MSG);
const identSchema = matching(IDENT_RE, NAME_MSG);
const devSchema = matching(
  DEV_RE,
  "must be a device name of 1..15 characters A-Z a-z 0-9 _ . - (Linux IFNAMSIZ)",
);
const networkSchema = matching(NETWORK_RE, "must be a libvirt network name of A-Z a-z 0-9 _ . -");
/** An absolute host path without placeholders. */
const absPath = checked((s) => pathProblem(s));
/** An absolute path that may contain per-VM placeholders such as `{name}`. */
const pathTemplate = checked((s) => pathProblem(s, true));
const cmdlineText = checked((s) => textProblem(s));
const argText = checked((s) => textProblem(s, 1024));
const seconds = (max: number) => z.number().positive().max(max);
/** TCP port number. */
const portSchema = z.int().min(1).max(65535);

/** MAX_OF_PORT is OFPP_MAX of OpenFlow 1.3.5 §7.2.1: the highest physical port number. */
export const MAX_OF_PORT = 0xffffff00;

// ---------------------------------------------------------------------------------------------------------
// VM settings: what defaults, profiles, datapath entries and the template share.

const bootSchema = z.discriminatedUnion("type", [
  /** Direct kernel boot (qemu, kvm, xen, test): RouteFlow's tiny rftest guest. */
  z.strictObject({
    type: z.literal("kernel"),
    kernel: pathTemplate,
    initrd: pathTemplate.optional(),
    cmdline: cmdlineText.optional(),
  }),
  /** Boot the first disk (needs `disk`). */
  z.strictObject({ type: z.literal("disk") }),
  /** A container's init (lxc); `rootfs` is mounted as `/`. */
  z.strictObject({
    type: z.literal("init"),
    init: pathTemplate,
    args: z.array(argText).max(64).optional(),
    rootfs: pathTemplate,
  }),
  /** A host-side bootloader such as pygrub (xen-pv). */
  z.strictObject({ type: z.literal("bootloader"), bootloader: absPath, args: argText.optional() }),
]);

const diskSchema = z.strictObject({
  /** The base image. */
  image: pathTemplate,
  /** The base image's format. */
  format: z.enum(["qcow2", "raw"]).default("qcow2"),
  /** overlay: per-VM qcow2 overlay in the host's storageDir; copy: per-VM full copy; none: use the image as is. */
  prepare: z.enum(["overlay", "copy", "none"]).default("overlay"),
});

const managementSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("bridge"), bridge: devSchema, openvswitch: z.boolean().default(false) }),
  z.strictObject({ type: z.literal("network"), network: networkSchema }),
]);

const networkSettingsSchema = z.strictObject({
  /** eth0, MAC = vm_id. Default: RouteFlow's management bridge, here `rfbr0` (rftest used lxcbr0). */
  management: managementSchema.prefault({ type: "bridge", bridge: "rfbr0" }),
  /** eth1..N: the RouteFlow virtual switch bridge (`dp0`), Open vSwitch by default. */
  data: z
    .strictObject({ bridge: devSchema.default("dp0"), openvswitch: z.boolean().default(true) })
    .prefault({}),
  /** NIC model override (driver default otherwise: virtio for qemu/kvm). */
  nicModel: matching(/^[A-Za-z0-9_-]{1,32}$/, "must be a NIC model like virtio or e1000").optional(),
});

const lifecycleSchema = z.strictObject({
  onPoweroff: z.enum(LIFECYCLE_ACTIONS).optional(),
  onReboot: z.enum(LIFECYCLE_ACTIONS).optional(),
  onCrash: z.enum(CRASH_ACTIONS).optional(),
});

/**
 * DEFAULT_CMDLINE: the rftest guest's kernel command line; `{name}` becomes the VM name. `no_timer_check`: under
 * TCG on a loaded host the kernel's IO-APIC timer check can fail and panic the guest ("IO-APIC + timer
 * doesn't work!"); skipping the check avoids it.
 */
export const DEFAULT_CMDLINE = "console=ttyS0 no_timer_check rfboot.name={name}";

/** The full VM settings shape; every default of a VM lives here. */
const vmSettingsShape = {
  hypervisor: z.enum(HYPERVISOR_NAMES).default("qemu"),
  arch: z.enum(ARCHES).default("x86_64"),
  machine: matching(/^[A-Za-z0-9_.-]{1,64}$/, "must be a machine type like pc or q35").optional(),
  vcpus: z.int().min(1).max(4096).default(1),
  memoryMiB: z
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .default(128),
  currentMemoryMiB: z
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .optional(),
  cpuset: matching(/^[0-9^,-]{1,256}$/, "must be a libvirt cpuset like 0-3,^2").optional(),
  boot: bootSchema.prefault({
    type: "kernel",
    kernel: "/var/lib/rfboot/guest/vmlinuz",
    initrd: "/var/lib/rfboot/guest/initrd.gz",
    cmdline: DEFAULT_CMDLINE,
  }),
  disk: diskSchema.optional(),
  network: networkSettingsSchema.prefault({}),
  console: z
    .strictObject({
      /** Serial console (ttyS0) to `<host consoleLogDir>/<name>.log`. */
      log: z.boolean().default(true),
      /** A pty console for `virsh console`. */
      pty: z.boolean().default(true),
    })
    .prefault({}),
  lifecycle: lifecycleSchema.optional(),
  autostart: z.boolean().optional(),
  emulator: absPath.optional(),
};

/** vmSettingsSchema validates fully merged VM settings and fills every default. */
export const vmSettingsSchema = z.strictObject(vmSettingsShape);

/** VmSettings: one VM's hardware and network settings after defaults, profiles and overrides. */
export type VmSettings = z.output<typeof vmSettingsSchema>;

/** VM_SETTINGS_KEYS lists the keys that are VM settings (merged through defaults -> profile -> VM). */
export const VM_SETTINGS_KEYS = Object.keys(vmSettingsShape) as readonly (keyof VmSettings)[];

/**
 * Partial settings: what `defaults`, a profile, a datapath entry or the template may set. Nested objects
 * are partial too; a tagged object (`boot`, `network.management`) whose `type` differs from the inherited
 * one replaces it whole. `null` clears an optional inherited value (e.g. `disk: null`).
 */
const partialSettingsShape = {
  hypervisor: z.enum(HYPERVISOR_NAMES).optional(),
  arch: z.enum(ARCHES).optional(),
  machine: vmSettingsShape.machine.nullable(),
  vcpus: z.int().min(1).max(4096).optional(),
  memoryMiB: z
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .optional(),
  currentMemoryMiB: vmSettingsShape.currentMemoryMiB.nullable(),
  cpuset: vmSettingsShape.cpuset.nullable(),
  boot: z
    .strictObject({
      type: z.enum(["kernel", "disk", "init", "bootloader"]).optional(),
      kernel: pathTemplate.optional(),
      initrd: pathTemplate.nullable().optional(),
      cmdline: cmdlineText.nullable().optional(),
      init: pathTemplate.optional(),
      args: z
        .union([z.array(argText).max(64), argText])
        .nullable()
        .optional(),
      rootfs: pathTemplate.optional(),
      bootloader: absPath.optional(),
    })
    .optional(),
  disk: z
    .strictObject({
      image: pathTemplate.optional(),
      format: z.enum(["qcow2", "raw"]).optional(),
      prepare: z.enum(["overlay", "copy", "none"]).optional(),
    })
    .nullable()
    .optional(),
  network: z
    .strictObject({
      management: z
        .strictObject({
          type: z.enum(["bridge", "network"]).optional(),
          bridge: devSchema.optional(),
          network: networkSchema.optional(),
          openvswitch: z.boolean().optional(),
        })
        .optional(),
      data: z.strictObject({ bridge: devSchema.optional(), openvswitch: z.boolean().optional() }).optional(),
      nicModel: networkSettingsSchema.shape.nicModel.nullable(),
    })
    .optional(),
  console: z.strictObject({ log: z.boolean().optional(), pty: z.boolean().optional() }).optional(),
  lifecycle: lifecycleSchema.nullable().optional(),
  autostart: z.boolean().nullable().optional(),
  emulator: absPath.nullable().optional(),
};

/** partialVmSettingsSchema: settings as written in `defaults` (every key optional). */
export const partialVmSettingsSchema = z.strictObject(partialSettingsShape);

/** PartialVmSettings: settings as written in `defaults`, a profile, a datapath entry or the template. */
export type PartialVmSettings = z.output<typeof partialVmSettingsSchema>;

// ---------------------------------------------------------------------------------------------------------
// Sections.

const vmIdSchema = z.union([z.string(), z.number(), z.bigint()]).transform((v, ctx) => {
  const r = parseVmId(v);
  if (!r.ok) {
    ctx.addIssue({ code: "custom", message: vmIdProblemText(r.problem) });
    return z.NEVER;
  }
  return r.value;
});

const portMapSchema = z
  .array(
    z.strictObject({
      /** Guest NIC number: eth`vmPort` (eth0 is management). */
      vmPort: z.int().min(1).max(MAX_DATA_PORTS),
      /** OpenFlow port number on the switch. */
      dpPort: z.int().min(1).max(MAX_OF_PORT),
    }),
  )
  .min(1)
  .max(MAX_DATA_PORTS);

/** datapathEntrySchema: one `datapaths` value: which VM serves that switch. */
export const datapathEntrySchema = z.strictObject({
  name: vmNameSchema,
  vmId: vmIdSchema,
  /** N data ports: vm port k <-> switch port k for k = 1..N. Exclusive with portMap. */
  dataPorts: z.int().min(0).max(MAX_DATA_PORTS).optional(),
  /** Explicit port pairs. Exclusive with dataPorts. */
  portMap: portMapSchema.optional(),
  profile: identSchema.optional(),
  /** Pin the VM to this host (by name). */
  host: identSchema.optional(),
  ...partialSettingsShape,
});

/** profileSchema: a named group of settings VMs inherit from; may extend another profile. */
export const profileSchema = z.strictObject({
  extends: identSchema.optional(),
  ...partialSettingsShape,
});

const endpointSchema = z.strictObject({ host: checked(hostProblem), port: portSchema });

/** OPENFLOW_VERSIONS: the versions rfboot can speak, as written in config. */
export const OPENFLOW_VERSIONS = ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"] as const;

const ofVersionSchema = z.preprocess(
  // YAML reads an unquoted 1.0 as the number 1: take it as "1.0".
  (v) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(1) : v),
  z.enum(OPENFLOW_VERSIONS),
);

const openflowSchema = z
  .strictObject({
    /** listen: an extra controller beside rfproxy; relay: switches connect here, forwarded to upstream. */
    mode: z.enum(["listen", "relay"]).default("listen"),
    /** Where rfboot accepts switches. 6653 (IANA OpenFlow) so it never clashes with rfproxy's 6633. */
    listen: endpointSchema.prefault({ host: "127.0.0.1", port: 6653 }),
    /** Relay mode: rfproxy's endpoint (RouteFlow's default 127.0.0.1:6633). */
    upstream: endpointSchema.prefault({ host: "127.0.0.1", port: 6633 }),
    versions: z
      .array(ofVersionSchema)
      .min(1)
      .max(6)
      .refine((a) => new Set(a).size === a.length, { message: "lists a version twice" })
      .default(["1.0", "1.3"]),
    /** Listen mode: the role requested so rfboot never competes with rfproxy (slave where supported). */
    role: z.enum(["slave", "equal", "none"]).default("slave"),
    echoIntervalSeconds: seconds(3600).default(5),
    echoTimeoutSeconds: seconds(3600).default(15),
    handshakeTimeoutSeconds: seconds(600).default(10),
    /** Most open switch connections in all; more are closed at accept (a flood must not exhaust descriptors). */
    maxConnections: z.int().min(1).max(1_000_000).default(4096),
    /** Most open connections from one IP address (Mininet's switches all connect from 127.0.0.1). */
    maxConnectionsPerPeer: z.int().min(1).max(1_000_000).default(1024),
    /** Listen mode: largest OpenFlow message accepted; longer ones get BAD_REQUEST/BAD_LEN and a close. */
    maxMessageLength: z.int().min(8).max(65535).default(65535),
    /**
     * Relay mode: after passing on a request (ECHO, BARRIER, STATS, ...), poll for its reply instead of
     * sleeping, for at most this long (0: never); saves a process wake-up per relayed round trip.
     */
    relayReplyPollMicroseconds: z.int().min(0).max(1_000_000).default(1000),
    /** Relay mode: the most of one core that reply polling may use (0..1; 0: never poll). */
    relayReplyPollCpuShare: z.number().min(0).max(1).default(0.25),
    tls: z.strictObject({ cert: absPath, key: absPath, ca: absPath.optional() }).optional(),
  })
  .prefault({});

const mongoSchema = z
  .strictObject({
    uri: checked(mongoUriProblem).default("mongodb://127.0.0.1:27017"),
    /** RouteFlow's database (rfserver reads `db.rfconfig`). */
    database: matching(
      MONGO_DB_NAME_RE,
      "must be a database name of 1..63 characters A-Z a-z 0-9 _ -",
    ).default("db"),
    /** rfboot's own collections are `<prefix>_vms`, `<prefix>_events`, ... */
    collectionPrefix: matching(
      COLLECTION_PREFIX_RE,
      "must be 1..32 characters A-Z a-z 0-9 _, starting with a letter",
    )
      .refine((s) => s !== "system", { message: "must not be system (MongoDB reserves system.*)" })
      .default("rfboot"),
  })
  .prefault({});

const hostSchema = z.strictObject({
  name: identSchema,
  uri: checked(libvirtUriProblem),
  /** Capacity: most VMs this host runs. */
  maxVms: z.int().min(1).max(100_000).default(64),
  /** Capacity: memory for VMs, MiB (omitted: not a limit). */
  memoryMiB: z
    .int()
    .min(16)
    .max(1024 * 1024 * 1024)
    .optional(),
  /** Concurrent `virsh start`s on this host. */
  maxConcurrentStarts: z.int().min(1).max(256).default(4),
  /** Per-VM disk overlays/copies (default `<stateDir>/disks`). */
  storageDir: absPath.optional(),
  /** Serial console logs (default `<stateDir>/console`). */
  consoleLogDir: absPath.optional(),
  /** Hypervisors this host runs (default from the URI scheme: qemu -> kvm, qemu; lxc -> lxc; ...). */
  hypervisors: z.array(z.enum(HYPERVISOR_NAMES)).min(1).optional(),
  /**
   * The libvirt storage pool (type dir, target `storageDir`) that holds the VMs' disks on this host; created,
   * built and started by rfboot when missing.
   */
  pool: identSchema.default("rfboot"),
  /**
   * Where the files a domain reads (base images, kernels, initrds) are found on this host: `path`, at the
   * configured paths (the host sees the same files); `pool`, as volumes of `pool` named by the file's base
   * name. Default: `path` for a URI without a server part, `pool` for a remote one.
   */
  images: z.enum(["path", "pool"]).optional(),
  /** With `images: pool`: upload a missing image from the configured local path once (vol-upload, verified). */
  upload: z.boolean().default(false),
  /**
   * Memory the host keeps for itself, MiB: where the host reports its memory (`virsh nodememstats`; not the
   * test driver), new VMs get its free + buffers + cached, plus what rfboot's VMs there held at the probe,
   * minus this, capped by its memory size and memoryMiB.
   */
  memoryReserveMiB: z
    .int()
    .min(0)
    .max(1024 * 1024)
    .default(256),
  /**
   * How the data NICs of VMs on this host reach RouteFlow's virtual switch when it lives elsewhere: the NICs
   * land on `bridge` of the host's Open vSwitch, each with its own VLAN tag, and the host's bridge is trunked
   * (a tunnel port) to `trunkBridge` on the rfboot machine's Open vSwitch; rfboot links each tag to a port
   * of the data bridge (`network.data.bridge`, RouteFlow's `dp0`) named like the NIC's device.
   */
  dataPlane: z
    .strictObject({
      /** OVS bridge on the rfboot machine that ends the tunnel from this host (a device name: IFNAMSIZ). */
      trunkBridge: devSchema,
      /** OVS bridge on the host where the VMs' data NICs land (default `network.data.bridge`). */
      bridge: devSchema.optional(),
    })
    .optional(),
});

/** TEMPLATE_DEFAULT_NAME is the default name pattern of template VMs (`{dpid}`: short hex). */
export const TEMPLATE_DEFAULT_NAME = "rfvm-{dpid}";

const templateSchema = z.strictObject({
  /** VM name pattern; must contain {dpid}, {dpid16} or {dpidDec}. */
  name: checked((s) => (s.length > 0 && s.length <= 64 ? undefined : "must be 1..64 characters")).default(
    TEMPLATE_DEFAULT_NAME,
  ),
  profile: identSchema.optional(),
  host: identSchema.optional(),
  /** `switch`: one data port per port the switch reports; a number: that many, k <-> k. */
  dataPorts: z.union([z.literal("switch"), z.int().min(0).max(MAX_DATA_PORTS)]).default("switch"),
  /** Cap on data ports taken from the switch's port list. */
  maxDataPorts: z.int().min(0).max(MAX_DATA_PORTS).default(32),
  ...partialSettingsShape,
});

const policiesSchema = z
  .strictObject({
    unknownDatapath: z
      .strictObject({
        /** ignore (log only), template (derive a VM), refuse (close the switch's connection). */
        action: z.enum(["ignore", "template", "refuse"]).default("ignore"),
        template: templateSchema.prefault({}),
      })
      .prefault({}),
    leave: z
      .strictObject({
        /** keep: RouteFlow's behaviour; suspend = `virsh managedsave` (next start resumes). */
        action: z.enum(["keep", "shutdown", "destroy", "suspend"]).default("keep"),
        graceSeconds: z
          .number()
          .min(0)
          .max(7 * 86_400)
          .default(30),
      })
      .prefault({}),
    /**
     * A port deleted from a connected switch (PORT_STATUS delete): keep its VM NIC and `rfconfig` row
     * (RouteFlow never removes either), or detach that NIC (live and from the definition) and remove exactly
     * that row.
     */
    portDeleted: z.strictObject({ action: z.enum(["keep", "detach"]).default("keep") }).prefault({}),
    /**
     * Another writer's `rfconfig` row (RouteFlow's loader, an operator) that maps one of rfboot's VM ports or
     * switch ports elsewhere: `report` leaves it alone and records the conflict (lastError, event, status);
     * `replace` deletes it. Rows equal to rfboot's are never touched either way.
     */
    rfconfigConflicts: z.enum(["report", "replace"]).default("report"),
    /**
     * `rfconfig` rows written after both the VM and the switch registered (a port added to a connected
     * switch): rfserver matches rows only when a registration arrives, so they wait. `report` records it and
     * says what to do; `reconnect` (relay mode) also closes the switch's connection once the rows are written:
     * the switch reconnects at once and rfproxy registers its ports again.
     */
    lateRows: z.strictObject({ action: z.enum(["report", "reconnect"]).default("report") }).prefault({}),
    /**
     * A VM that stops (shut off, crashed, destroyed outside rfboot) while its switch is connected: `restart`
     * starts it again with a doubling backoff (RouteFlow needs it running), `record` only records the state.
     */
    vmStopped: z
      .strictObject({
        action: z.enum(["restart", "record"]).default("restart"),
        /** first delay before a restart; doubled for each stop within resetSeconds of the last restart. */
        backoffSeconds: z.number().min(0).max(3600).default(1),
        maxBackoffSeconds: z.number().min(0).max(86_400).default(60),
        /** a VM that has run this long since its last restart starts again from backoffSeconds. */
        resetSeconds: z
          .number()
          .min(0)
          .max(7 * 86_400)
          .default(300),
      })
      .prefault({}),
    /** A second connection with a dpid already up: the newest replaces the old (OVS reconnects). */
    duplicateDatapath: z.enum(["newest-wins"]).default("newest-wins"),
    /**
     * A libvirt host that stops answering (probed every probeSeconds): its VMs are always reported (log,
     * event, record lastError `host-unreachable`); `replace` also re-places the VMs of connected switches on
     * another host once it has been unreachable for afterSeconds.
     */
    hostLoss: z
      .strictObject({
        action: z.enum(["report", "replace"]).default("report"),
        afterSeconds: z
          .number()
          .min(0)
          .max(7 * 86_400)
          .default(60),
        probeSeconds: z.number().min(0.1).max(3600).default(10),
      })
      .prefault({}),
    /**
     * defineAhead: at start-up and reload, each configured VM whose switch is not connected gets its domain
     * defined (disk first) where its join would place it, or its state read when the domain exists, so that
     * its join claims the lease and issues `virsh start` with nothing else on the way. Domains that exist are
     * never changed by it; VMs on a data-plane host are left to their join (their tags come with the lease).
     */
    defineAhead: z.boolean().default(true),
    /**
     * leaseAhead: at start-up and reload, the lease of each configured VM whose switch is not connected is
     * claimed, and kept while the VM stays configured, so that its join starts the VM with no database round
     * trip. Another instance whose switch joins such a dpid asks for the lease, and gets it at this one's next
     * renewal (a third of the lease ttl), unless the switch is connected here too.
     */
    leaseAhead: z.boolean().default(true),
    /**
     * Prewarm: configured VMs whose switch is not connected are booted ahead of it, to ready, then
     * `managedsave`d, so that the switch's first join restores the VM instead of cold-booting it. Off by
     * default: each image takes the guest's RAM on the host's disk.
     */
    prewarm: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** VMs booting for prewarm at once, over all hosts. */
        concurrency: z.int().min(1).max(64).default(1),
        /**
         * config: the order of `datapaths` in the config (the CSV's order when imported); recent: most
         * recently joined first (records' joinedAt), never-joined ones after, in config order.
         */
        order: z.enum(["config", "recent"]).default("config"),
        /** Per host: RAM that VMs booting for prewarm may hold at once, MiB; 0 = only the host's capacity. */
        memoryMiB: z
          .int()
          .min(0)
          .max(1024 * 1024 * 1024)
          .default(0),
        /** Per host: total size of prewarm save images, MiB (each counts its VM's memoryMiB); 0 = no limit. */
        diskMiB: z
          .int()
          .min(0)
          .max(1024 * 1024 * 1024)
          .default(8192),
      })
      .prefault({}),
  })
  .prefault({});

const readinessSchema = z
  .strictObject({
    /** Regex matched against each line of the console (through libvirt; the log file without a pty); null disables. */
    consoleMarker: checked(regexProblem).nullable().default("RFBOOT-GUEST-BOOTED"),
    /** Watch `rfclient<->rfserver` (read-only) for the VM's PortRegister. */
    portRegister: z.boolean().default(false),
    timeoutSeconds: seconds(86_400).default(120),
  })
  .prefault({});

/** configSchema: the whole file. Datapath keys are dpids as text (see load.ts for how YAML keys are read). */
export const configSchema = z.strictObject({
  /** Config format version; only 1 exists. */
  version: z.literal(1).default(1),
  /** rfboot's own state (default disk and console directories live under it). */
  stateDir: absPath.default("/var/lib/rfboot"),
  openflow: openflowSchema,
  mongo: mongoSchema,
  hosts: z
    .array(hostSchema)
    .min(1)
    .max(256)
    .prefault([{ name: "local", uri: "qemu:///system" }]),
  defaults: partialVmSettingsSchema.prefault({}),
  profiles: z.record(z.string(), profileSchema).default({}),
  datapaths: z.record(z.string(), datapathEntrySchema).default({}),
  policies: policiesSchema,
  readiness: readinessSchema,
});

/** ParsedConfig is the schema's output before cross-checks (load.ts turns it into RfbootConfig). */
export type ParsedConfig = z.output<typeof configSchema>;

/** HostSection is one `hosts` entry as parsed (directories and hypervisors may still be unset). */
export type HostSection = ParsedConfig["hosts"][number];

/** DatapathEntry is one `datapaths` value as parsed (vmId already a BigInt). */
export type DatapathEntry = z.output<typeof datapathEntrySchema>;

/** Profile is one `profiles` value as parsed. */
export type Profile = z.output<typeof profileSchema>;

/** TemplateSection is `policies.unknownDatapath.template` as parsed. */
export type TemplateSection = ParsedConfig["policies"]["unknownDatapath"]["template"];
