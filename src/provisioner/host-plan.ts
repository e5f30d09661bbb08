/**
 * A VM's plan on one host with that host's own paths: the files its domain reads (base image, kernel,
 * initrd) found through the host's storage before `define`, so the domain XML names what the host has.
 * The config stays pure: it is given the paths, it never looks them up.
 */
import type { HostConfig, HostPaths, ResolvedVm, RfbootConfig, VmPlan } from "./config/index.js";
import { hostsFor, listConfiguredVms } from "./config/index.js";
import {
  diskPlanFrom,
  type Artifact,
  type DiskPlan,
  type HostStorage,
  type StorageInspection,
} from "./libvirt/index.js";

/** vmArtifacts lists the files a VM's domain reads from the host, at their configured paths. */
export function vmArtifacts(vm: ResolvedVm): Artifact[] {
  const out: Artifact[] = [];
  const boot = vm.settings.boot;
  if (boot.type === "kernel") {
    out.push({ path: boot.kernel, role: "kernel" });
    if (boot.initrd !== undefined) out.push({ path: boot.initrd, role: "initrd" });
  }
  if (vm.disk) out.push({ path: vm.disk.base, role: "disk image", format: vm.disk.baseFormat });
  return out;
}

/** HostedPlan is a VM's plan on a host plus the disk the lifecycle prepares there. */
export interface HostedPlan {
  plan: VmPlan;
  disk?: DiskPlan;
}

/**
 * planOnHost ensures the host's pools, finds each file the VM's domain reads on the host (uploading it
 * when the host allows) and plans the VM with those paths.
 */
export async function planOnHost(
  vm: ResolvedVm,
  host: HostConfig,
  storage: HostStorage,
): Promise<HostedPlan> {
  await storage.ready();
  const paths: { kernel?: string; initrd?: string; image?: string } = {};
  for (const a of vmArtifacts(vm)) {
    const at = await storage.locate(a);
    if (at === a.path) continue;
    if (a.role === "kernel") paths.kernel = at;
    else if (a.role === "initrd") paths.initrd = at;
    else paths.image = at;
  }
  const plan = vm.plan(host, paths satisfies HostPaths);
  return { plan, ...(plan.disk && plan.disk.kind !== "none" ? { disk: diskPlanFrom(plan.disk) } : {}) };
}

/** HostStorageReport is a host's storage inspection with its blocking problems per VM name. */
export interface HostStorageReport extends StorageInspection {
  readonly problemsByVm: Readonly<Record<string, readonly string[]>>;
}

/**
 * inspectHostStorage looks at one host's storage for every configured VM that may be placed there, without
 * changing anything: what `plan` and `doctor` report before any switch joins.
 */
export async function inspectHostStorage(
  config: RfbootConfig,
  host: HostConfig,
  storage: HostStorage,
): Promise<HostStorageReport> {
  const seen = new Map<string, Artifact>();
  const users = new Map<string, string[]>();
  for (const vm of listConfiguredVms(config)) {
    if (!hostsFor(config, vm).some((h) => h.name === host.name)) continue;
    for (const a of vmArtifacts(vm)) {
      if (!seen.has(a.path)) seen.set(a.path, a);
      users.set(a.path, [...(users.get(a.path) ?? []), vm.name]);
    }
  }
  const r = await storage.inspect([...seen.values()]);
  const problemsByVm: Record<string, string[]> = {};
  for (const a of r.artifacts) {
    if (a.status !== "missing") continue;
    const text = `${a.role} ${a.path} is not in pool ${r.pool} on host ${r.host}`;
    for (const vm of users.get(a.path) ?? []) (problemsByVm[vm] ??= []).push(text);
  }
  return { ...r, problemsByVm };
}
