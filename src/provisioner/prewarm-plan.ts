/**
 * The prewarm plan (pure): which configured VMs prewarm boots and saves ahead of their switch, in which
 * order, on which host, and which it leaves out and why. The daemon's Prewarmer follows it; `rfboot plan`
 * shows it. It does not read `policies.prewarm.enabled`: it says what prewarm does when it is on.
 */
import {
  configHash,
  configuredVmsInFileOrder,
  hostsFor,
  type ResolvedVm,
  type RfbootConfig,
} from "./config/index.js";
import {
  PlacementError,
  place,
  type HostCapacity,
  type KnownPlacement,
  type PlacementRequest,
} from "./placement.js";
import type { VmRecord, VmState } from "./store/index.js";

/** PrewarmImageStatus: a VM's prewarm image is of its current config (fresh), of another (stale), or absent. */
export type PrewarmImageStatus = "fresh" | "stale" | "none";

/** PrewarmPlanEntry is one VM that holds a prewarm image once the plan is carried out. */
export interface PrewarmPlanEntry {
  dpidHex: string;
  vm: string;
  /** host is where the image is (fresh) or will be made (the host a join would place the VM on). */
  host: string;
  memoryMiB: number;
  /**
   * image: fresh is kept as it is; stale is dropped and made again; none is made; booting is being made now
   * (the record says `prewarming`).
   */
  image: PrewarmImageStatus | "booting";
}

/** PrewarmLeftOut is a configured VM that prewarm does not boot, and why. */
export interface PrewarmLeftOut {
  dpidHex: string;
  vm: string;
  reason: string;
}

/** PrewarmHostBudget is one host's prewarm budgets and what the plan puts there. */
export interface PrewarmHostBudget {
  /**
   * bootMemoryMiB is the RAM that VMs booting for prewarm may hold at once there: `policies.prewarm.memoryMiB`,
   * or when that is 0 the host's memory for VMs (its configured memoryMiB, else its reported room); 0 when
   * neither is known (no limit but placement's).
   */
  bootMemoryMiB: number;
  /** imagesMiB is the total size of the host's prewarm images once the plan is carried out. */
  imagesMiB: number;
  /** images counts them. */
  images: number;
  /** diskBudgetMiB is `policies.prewarm.diskMiB` (0: no limit). */
  diskBudgetMiB: number;
}

/** PrewarmPlan is the outcome of prewarmPlan. */
export interface PrewarmPlan {
  /** order lists the VMs that hold an image once carried out, in prewarm order (`policies.prewarm.order`). */
  order: PrewarmPlanEntry[];
  leftOut: PrewarmLeftOut[];
  /** perHost has an entry for every host of `capacities`. */
  perHost: Record<string, PrewarmHostBudget>;
}

/**
 * prewarmFingerprint identifies the VM config a prewarm image is booted from (configHash). Not the domain's
 * fingerprint, which adds the data-plane VLAN tags: those are allocated on Open vSwitch when the VM is
 * placed, so a plan (`rfboot plan`, offline too) could not compute it. An image whose tags changed is not
 * restored anyway: the join's ensure sees the domain's fingerprint change and redefines it, which removes
 * the managed save first.
 */
export function prewarmFingerprint(vm: ResolvedVm): string {
  return configHash(vm);
}

/** prewarmImageStatus tells whether a record's prewarm image is of the VM's current config. */
export function prewarmImageStatus(vm: ResolvedVm, rec: VmRecord | undefined): PrewarmImageStatus {
  const img = rec?.prewarm;
  if (!img) return "none";
  return img.fingerprint === prewarmFingerprint(vm) ? "fresh" : "stale";
}

/**
 * bootMemoryBudget is the RAM that VMs booting for prewarm may hold at once on a host (see
 * PrewarmHostBudget.bootMemoryMiB), Infinity when nothing limits it but placement.
 */
export function bootMemoryBudget(config: RfbootConfig, cap: HostCapacity): number {
  const set = config.policies.prewarm.memoryMiB;
  if (set > 0) return set;
  if (Number.isFinite(cap.memoryMiB)) return cap.memoryMiB;
  const r = cap.reported;
  if (r) return Math.max(0, Math.floor(Math.min(r.availableMiB - r.reserveMiB, r.totalMiB ?? Infinity)));
  return Number.POSITIVE_INFINITY;
}

/** SAVES lists the hypervisors whose libvirt driver has `managedsave` (LXC's has none: it cannot save). */
const SAVES: ReadonlySet<string> = new Set(["qemu", "kvm", "xen", "test"]);

/** ACTIVE_STATES are record states of a VM that runs, or is being made to run, without prewarm. */
const ACTIVE_STATES: readonly VmState[] = ["placing", "defining", "starting", "running", "ready"];

/** orderedVms lists the configured VMs in prewarm order (`policies.prewarm.order`). */
function orderedVms(config: RfbootConfig, records: ReadonlyMap<string, VmRecord>): ResolvedVm[] {
  const vms = configuredVmsInFileOrder(config);
  if (config.policies.prewarm.order === "config") return vms;
  const joined = (vm: ResolvedVm): number => {
    const at = records.get(vm.dpidHex)?.joinedAt;
    return at ? new Date(at).getTime() : Number.NEGATIVE_INFINITY;
  };
  // Array.prototype.sort is stable: never-joined VMs (and ties) keep the config's order.
  return [...vms].sort((a, b) => {
    const ja = joined(a);
    const jb = joined(b);
    return ja === jb ? 0 : jb > ja ? 1 : -1;
  });
}

/** knownPlacements turns records into placement inputs: a prewarmed VM sits on its image's host, shut off. */
function knownPlacements(records: ReadonlyMap<string, VmRecord>, memoryOf: (vm: string) => number) {
  const out: KnownPlacement[] = [];
  for (const r of records.values()) {
    const host = r.prewarm?.host ?? r.host;
    if (!r.vmName || !host) continue;
    out.push({
      vm: r.vmName,
      host,
      memoryMiB: memoryOf(r.vmName),
      running: ACTIVE_STATES.includes(r.state),
    });
  }
  return out;
}

/**
 * prewarmPlan computes what prewarm does now: every configured VM (template-derived ones have no config to
 * boot ahead) whose switch is not `connected`, in `policies.prewarm.order`. A fresh image is kept on its
 * host; every other VM is placed as a join would place it (its pin, the host it is defined on, else the
 * least loaded with room; the VMs before it counted as running, as a burst of joins would), its image counted
 * against that host's disk budget (fresh images first, whatever their order: they exist already). A VM
 * whose image does not fit goes to another host with room unless it is pinned or defined where it is; else
 * it is left out, as are VMs that run or are suspended without prewarm (their next start needs no image).
 * A VM whose record says a prewarm boots it now (`prewarming`) stays on that host, `booting`, its image
 * counted like a fresh one.
 */
export function prewarmPlan(
  config: RfbootConfig,
  capacities: HostCapacity[],
  records: ReadonlyMap<string, VmRecord>,
  connected: ReadonlySet<string>,
): PrewarmPlan {
  const policy = config.policies.prewarm;
  const vms = orderedVms(config, records);
  const memory = new Map(vms.map((v) => [v.name, v.memoryMiB]));
  const known = knownPlacements(records, (vm) => memory.get(vm) ?? 0);
  const caps = new Map(capacities.map((c) => [c.name, c]));
  const perHost: Record<string, PrewarmHostBudget> = {};
  for (const c of capacities) {
    const boot = bootMemoryBudget(config, c);
    perHost[c.name] = {
      bootMemoryMiB: Number.isFinite(boot) ? boot : 0,
      imagesMiB: 0,
      images: 0,
      diskBudgetMiB: policy.diskMiB,
    };
  }
  const order: PrewarmPlanEntry[] = [];
  const leftOut: PrewarmLeftOut[] = [];
  const out = (vm: ResolvedVm, reason: string) => leftOut.push({ dpidHex: vm.dpidHex, vm: vm.name, reason });
  const fits = (host: string, mib: number): boolean => {
    const b = perHost[host];
    return b !== undefined && (b.diskBudgetMiB === 0 || b.imagesMiB + mib <= b.diskBudgetMiB);
  };
  const take = (host: string, mib: number) => {
    const b = perHost[host];
    if (!b) return;
    b.imagesMiB += mib;
    b.images += 1;
  };
  // Fresh images exist, and those booting now will: they take their room before any new one is planned.
  const fresh = new Set<string>();
  const booting = new Map<string, string>();
  for (const vm of vms) {
    const rec = records.get(vm.dpidHex);
    if (connected.has(vm.dpidHex) || !SAVES.has(vm.hypervisor)) continue;
    const host = rec?.prewarm?.host;
    if (host && prewarmImageStatus(vm, rec) === "fresh") {
      if (!caps.get(host)?.reachable) continue;
      fresh.add(vm.dpidHex);
      take(host, rec.prewarm?.imageMiB ?? vm.memoryMiB);
      continue;
    }
    const boot = rec?.prewarming?.host;
    if (boot === undefined || !Object.hasOwn(perHost, boot)) continue;
    booting.set(vm.dpidHex, boot);
    take(boot, vm.memoryMiB);
  }
  for (const vm of vms) {
    const rec = records.get(vm.dpidHex);
    const image = prewarmImageStatus(vm, rec);
    if (connected.has(vm.dpidHex)) {
      out(vm, "switch connected");
      continue;
    }
    if (!SAVES.has(vm.hypervisor)) {
      out(vm, `${vm.hypervisor}: libvirt cannot save this driver's domains (managedsave)`);
      continue;
    }
    if (fresh.has(vm.dpidHex)) {
      order.push({
        dpidHex: vm.dpidHex,
        vm: vm.name,
        host: rec!.prewarm!.host,
        memoryMiB: vm.memoryMiB,
        image,
      });
      known.push({ vm: vm.name, host: rec!.prewarm!.host, memoryMiB: vm.memoryMiB, running: true });
      continue;
    }
    if (image === "fresh") {
      out(vm, `image host ${rec?.prewarm?.host ?? "?"} unreachable`);
      continue;
    }
    const bootHost = booting.get(vm.dpidHex);
    if (bootHost !== undefined) {
      order.push({
        dpidHex: vm.dpidHex,
        vm: vm.name,
        host: bootHost,
        memoryMiB: vm.memoryMiB,
        image: "booting",
      });
      for (let i = known.length - 1; i >= 0; i--) if (known[i]?.vm === vm.name) known.splice(i, 1);
      known.push({ vm: vm.name, host: bootHost, memoryMiB: vm.memoryMiB, running: true });
      continue;
    }
    if (rec && ACTIVE_STATES.includes(rec.state) && image === "none") {
      out(vm, `VM ${rec.state}`);
      continue;
    }
    if (rec?.state === "suspended" && image === "none") {
      out(vm, "suspended by the leave policy: its next start restores");
      continue;
    }
    const candidates = new Set(hostsFor(config, vm).map((h) => h.name));
    const hosts = capacities.filter((c) => candidates.has(c.name));
    const req = { vm: vm.name, memoryMiB: vm.memoryMiB, ...(vm.hostPin ? { pin: vm.hostPin } : {}) };
    const where = placeWithImage(req, hosts, known, (h) => fits(h, vm.memoryMiB));
    if ("reason" in where) {
      out(
        vm,
        where.reason === "disk" ? `disk budget (${policy.diskMiB} MiB) full on ${where.host}` : where.reason,
      );
      continue;
    }
    const host = where.host;
    const boot = bootMemoryBudget(config, caps.get(host)!);
    if (vm.memoryMiB > boot) {
      out(vm, `memory budget (${boot} MiB) on ${host} below the VM's ${vm.memoryMiB} MiB`);
      continue;
    }
    take(host, vm.memoryMiB);
    order.push({ dpidHex: vm.dpidHex, vm: vm.name, host, memoryMiB: vm.memoryMiB, image });
    for (let i = known.length - 1; i >= 0; i--) if (known[i]?.vm === vm.name) known.splice(i, 1);
    known.push({ vm: vm.name, host, memoryMiB: vm.memoryMiB, running: true });
  }
  return { order, leftOut, perHost };
}

/**
 * placeWithImage places a VM as a join would; when the image does not fit the chosen host's disk budget
 * (`fits`), on another host where it does, unless the VM is defined or pinned there (its disk or its
 * operator's reason is there: it does not move).
 */
function placeWithImage(
  req: PlacementRequest,
  hosts: readonly HostCapacity[],
  known: readonly KnownPlacement[],
  fits: (host: string) => boolean,
): { host: string } | { reason: string; host?: string } {
  try {
    const d = place(req, hosts, known);
    if (fits(d.host)) return { host: d.host };
    if (d.reason === "existing" || d.reason === "pinned") return { reason: "disk", host: d.host };
    const roomy = hosts.filter((c) => fits(c.name));
    if (roomy.length === 0) return { reason: "disk", host: d.host };
    try {
      return { host: place(req, roomy, known).host };
    } catch (e) {
      if (e instanceof PlacementError) return { reason: "disk", host: d.host };
      throw e;
    }
  } catch (e) {
    if (e instanceof PlacementError) return { reason: `no host: ${e.message}` };
    throw e;
  }
}
