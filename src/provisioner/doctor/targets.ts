/** What doctor looks at: the libvirt hosts, paths, bridges and database a config uses, or the defaults. */
import {
  hostsFor,
  listConfiguredVms,
  resolveDatapath,
  type HostConfig,
  type ResolvedVm,
  type RfbootConfig,
} from "../config/index.js";
import { vmArtifacts } from "../host-plan.js";
import type { Artifact, StorageSpec } from "../libvirt/index.js";
import { DEFAULT_LEASE_TTL_MS, leaseMarginMs } from "../store/index.js";

/** PathRole says what a path is for, which decides who must read it and whether rfboot creates it. */
export type PathRole = "storageDir" | "consoleLogDir" | "kernel" | "initrd" | "disk image" | "rootfs";

/** PathTarget is one host path the config relies on. */
export interface PathTarget {
  path: string;
  role: PathRole;
  /** readBy: QEMU opens it as the QEMU user; root: libvirtd or virtlogd opens it. */
  readBy: "qemu" | "root";
  /** vms: the VMs that use it (empty for host directories). */
  vms: string[];
}

/** HostTarget is one libvirt host to check. */
export interface HostTarget {
  name: string;
  uri: string;
  /** needsKvm: kvm domains may be placed here. */
  needsKvm: boolean;
  /** needsLxc: the host is an LXC host or LXC domains may be placed here. */
  needsLxc: boolean;
  paths: PathTarget[];
  /** storage: the host's pool and the files its VMs' domains read through it (absent: not checked). */
  storage?: { spec: StorageSpec; artifacts: Artifact[] };
}

/**
 * BridgeTarget is an Open vSwitch bridge of this machine; `needed` when VMs plug data NICs into it, or when
 * it is the trunk or RouteFlow end of a data-plane host (`purpose` says which, for the report).
 */
export interface BridgeTarget {
  name: string;
  needed: boolean;
  purpose?: string;
}

/** DoctorTargets is everything doctor checks. */
export interface DoctorTargets {
  /** source: the config file, or undefined for the defaults. */
  source?: string;
  hosts: HostTarget[];
  mongoUri: string;
  bridges: BridgeTarget[];
  /** leaseSlackMs: how far clocks may disagree before leases break. */
  leaseSlackMs: number;
  /** openflowMode decides the descriptors per switch (listen 1, relay 2); default listen. */
  openflowMode?: "listen" | "relay";
}

/** DEFAULT_LIBVIRT_URI, DEFAULT_MONGO_URI, DEFAULT_BRIDGE: what doctor checks without a config. */
export const DEFAULT_LIBVIRT_URI = "qemu:///system";
export const DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017";
export const DEFAULT_BRIDGE = "dp0";

/** defaultTargets: the local system libvirt, the local MongoDB and `dp0`, none of them required by VMs. */
export function defaultTargets(): DoctorTargets {
  return {
    hosts: [{ name: "local", uri: DEFAULT_LIBVIRT_URI, needsKvm: false, needsLxc: false, paths: [] }],
    mongoUri: DEFAULT_MONGO_URI,
    bridges: [{ name: DEFAULT_BRIDGE, needed: false }],
    leaseSlackMs: leaseMarginMs(DEFAULT_LEASE_TTL_MS),
  };
}

const scheme = (uri: string) => /^([a-z0-9]+)/.exec(uri)?.[1] ?? "";

/**
 * templateSamples resolves the unknown-datapath template for two datapaths no config lists, so that what
 * every template VM needs (hypervisor, bridges, fixed paths) can be told from what depends on the dpid.
 */
function templateSamples(config: RfbootConfig): [ResolvedVm, ResolvedVm] | undefined {
  if (config.policies.unknownDatapath.action !== "template") return undefined;
  const taken = new Set(config.datapaths.map((d) => d.dpid));
  const free: bigint[] = [];
  for (let d = 0xfffffffffff0n; free.length < 2 && d < 0xffffffffffffn; d++) if (!taken.has(d)) free.push(d);
  try {
    const a = resolveDatapath(config, free[0]!, [1]);
    const b = resolveDatapath(config, free[1]!, [1]);
    return a && b ? [a, b] : undefined;
  } catch {
    return undefined;
  }
}

function vmPaths(
  vm: ResolvedVm,
  host: HostConfig,
): { path: string; role: PathRole; readBy: "qemu" | "root" }[] {
  const plan = vm.plan(host);
  const out: { path: string; role: PathRole; readBy: "qemu" | "root" }[] = [];
  const boot = plan.description.boot;
  const qemu = vm.hypervisor === "qemu" || vm.hypervisor === "kvm";
  const by = qemu ? "qemu" : "root";
  if (boot.type === "kernel") {
    out.push({ path: boot.kernel, role: "kernel", readBy: by });
    if (boot.initrd) out.push({ path: boot.initrd, role: "initrd", readBy: by });
  }
  if (boot.type === "init")
    out.push({
      path: vm.settings.boot.type === "init" ? vm.settings.boot.rootfs : "",
      role: "rootfs",
      readBy: "root",
    });
  if (plan.disk) out.push({ path: plan.disk.base, role: "disk image", readBy: by });
  return out.filter((p) => p.path.startsWith("/"));
}

/** targetsFromConfig lists every host of the config with what its VMs need there. */
export function targetsFromConfig(config: RfbootConfig): DoctorTargets {
  const vms = listConfiguredVms(config);
  const samples = templateSamples(config);
  const bridges = new Map<string, boolean>();
  const hosts: HostTarget[] = config.hosts.map((h) => {
    const real = scheme(h.uri) !== "test";
    const paths = new Map<string, PathTarget>();
    const add = (p: { path: string; role: PathRole; readBy: "qemu" | "root" }, vm?: string) => {
      const cur = paths.get(p.path) ?? { ...p, vms: [] };
      if (vm && !cur.vms.includes(vm)) cur.vms.push(vm);
      paths.set(p.path, cur);
    };
    if (real) {
      add({ path: h.storageDir, role: "storageDir", readBy: "qemu" });
      add({ path: h.consoleLogDir, role: "consoleLogDir", readBy: "root" });
    }
    let needsKvm = false;
    let needsLxc = scheme(h.uri) === "lxc";
    const artifacts = new Map<string, Artifact>();
    const consider = (vm: ResolvedVm, pathsToo: (p: string) => boolean) => {
      if (!hostsFor(config, vm).some((x) => x.name === h.name)) return;
      if (vm.hypervisor === "kvm") needsKvm = true;
      if (vm.hypervisor === "lxc" && real) needsLxc = true;
      const net = vm.settings.network;
      if (real && vm.ports.length > 0 && net.data.openvswitch) bridges.set(net.data.bridge, true);
      if (real && net.management.type === "bridge" && net.management.openvswitch)
        bridges.set(net.management.bridge, true);
      if (real) for (const p of vmPaths(vm, h)) if (pathsToo(p.path)) add(p, vm.name);
      if (real)
        for (const a of vmArtifacts(vm))
          if (pathsToo(a.path) && !artifacts.has(a.path)) artifacts.set(a.path, a);
    };
    for (const vm of vms) consider(vm, () => true);
    if (samples) {
      const fixed = new Set(vmPaths(samples[1], h).map((p) => p.path));
      consider(samples[0], (p) => fixed.has(p));
    }
    const spec: StorageSpec = {
      pool: h.pool,
      storageDir: h.storageDir,
      consoleLogDir: h.consoleLogDir,
      images: h.images,
      upload: h.upload,
    };
    return {
      name: h.name,
      uri: h.uri,
      needsKvm,
      needsLxc,
      // Files the host has as volumes of its pool are not at their paths there: the pool check covers them.
      paths: [...paths.values()].filter((p) => h.images === "path" || !artifacts.has(p.path)),
      ...(real ? { storage: { spec, artifacts: [...artifacts.values()] } } : {}),
    };
  });
  // A data-plane host's NICs reach RouteFlow here: its trunk bridge and the data bridge (dp0) its VMs' patch
  // ports join must exist on this machine's Open vSwitch (the host's own bridge is on the host).
  const purposes = new Map<string, string[]>();
  const purpose = (bridge: string, what: string) => {
    bridges.set(bridge, true);
    purposes.set(bridge, [...(purposes.get(bridge) ?? []), what]);
  };
  for (const h of config.hosts) {
    if (!h.dataPlane) continue;
    purpose(h.dataPlane.trunkBridge, `trunk of host ${h.name}`);
    const data = new Set(
      [...vms, ...(samples ? [samples[0]] : [])]
        .filter((vm) => hostsFor(config, vm).some((x) => x.name === h.name))
        .map((vm) => vm.settings.network.data.bridge),
    );
    if (data.size === 0) data.add(config.defaults.network?.data?.bridge ?? DEFAULT_BRIDGE);
    for (const b of data) purpose(b, `RouteFlow's virtual switch for host ${h.name}`);
  }
  if (bridges.size === 0) bridges.set(config.defaults.network?.data?.bridge ?? DEFAULT_BRIDGE, false);
  return {
    source: config.source,
    hosts,
    mongoUri: config.mongo.uri,
    bridges: [...bridges.entries()].map(([name, needed]) => {
      const why = purposes.get(name);
      return { name, needed, ...(why ? { purpose: why.join("; ") } : {}) };
    }),
    leaseSlackMs: leaseMarginMs(DEFAULT_LEASE_TTL_MS),
    openflowMode: config.openflow.mode,
  };
}
