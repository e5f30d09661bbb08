/**
 * Placement (pure): which libvirt host a VM goes to. Stable first (a VM stays where it is defined while that
 * host is reachable), then an operator's pin, then the least loaded host with room (VM count and memory).
 * Room is what the config allows (maxVms, memoryMiB) and, where the host reports its memory, what it has.
 */
import { RfbootError } from "../common/errors.js";

/** HostCapacity is a host as placement sees it. */
export interface HostCapacity {
  name: string;
  /** maxVms: at most this many running VMs. */
  maxVms: number;
  /** memoryMiB available to VMs. */
  memoryMiB: number;
  /** reachable: libvirtd answered the last probe; VMs on an unreachable host are re-placed. */
  reachable: boolean;
  /** reported: the host's own memory report at its last probe; undefined: the configured limits alone. */
  reported?: ReportedMemory;
}

/**
 * ReportedMemory is what a host said of its memory at its last probe. The memory for new VMs is
 * `availableMiB` + what rfboot's VMs counted in the load held at that probe (their memory is already missing
 * from `availableMiB`, and the load counts them in full) - `reserveMiB`, capped by `totalMiB`. A VM placed
 * since the probe holds nothing in `heldMiB`, so it counts in full against what the host had.
 */
export interface ReportedMemory {
  /** availableMiB: free + buffers + cached, as the host reported them. */
  availableMiB: number;
  /** totalMiB: the host's memory size, when known. */
  totalMiB?: number;
  /** reserveMiB: memory the host keeps for itself (config memoryReserveMiB). */
  reserveMiB: number;
  /** heldMiB: domain name -> memory that running domain held at the probe. */
  heldMiB: ReadonlyMap<string, number>;
}

/** KnownPlacement is a VM known to be defined on a host (from MongoDB records or `list --all` of a host). */
export interface KnownPlacement {
  vm: string;
  host: string;
  memoryMiB: number;
  /** running: counts against capacity; undefined counts as running (conservative). */
  running?: boolean;
}

/** PlacementRequest asks for a host for one VM. */
export interface PlacementRequest {
  vm: string;
  memoryMiB: number;
  /** pin: the VM must go to this host (config `host:`). */
  pin?: string;
}

/** PlacementReason says why a host was chosen. */
export type PlacementReason = "existing" | "pinned" | "least-loaded" | "re-placed";

/** PlacementDecision is the chosen host; `previous` is where the VM was defined before, when it moves. */
export interface PlacementDecision {
  vm: string;
  host: string;
  reason: PlacementReason;
  previous?: string;
  /** skipped: the hosts passed over for lack of room, with the reason for each (only when some were). */
  skipped?: Readonly<Record<string, string>>;
}

/** PlacementError: no host can take the VM; the message says why for each host. */
export class PlacementError extends RfbootError {
  override name = "PlacementError";
  constructor(
    message: string,
    readonly vm: string,
    readonly reasons: Readonly<Record<string, string>>,
  ) {
    super(message);
  }
}

/** HostLoad is the load of one host, counting running VMs and their memory. */
export interface HostLoad {
  vms: number;
  memoryMiB: number;
  /**
   * heldMiB: what the VMs counted here held at the host's last probe (`held`), each at most its own count,
   * for its reported memory.
   */
  heldMiB: number;
}

/**
 * hostLoads sums the running VMs per host, excluding `except` (the VM being placed); `held` tells what a VM
 * held on a host at its last probe (default nothing).
 */
export function hostLoads(
  placements: readonly KnownPlacement[],
  except?: string,
  held: (host: string, vm: string) => number = () => 0,
): Map<string, HostLoad> {
  const loads = new Map<string, HostLoad>();
  const seen = new Set<string>();
  for (const p of placements) {
    if (p.vm === except || p.running === false) continue;
    // The same VM may be reported twice (record + list --all): count it once per host.
    const id = `${p.host}\u0000${p.vm}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const l = loads.get(p.host) ?? { vms: 0, memoryMiB: 0, heldMiB: 0 };
    l.vms += 1;
    l.memoryMiB += p.memoryMiB;
    // What a VM holds beyond its own count (qemu's overhead) is used for good: only its count is given back.
    l.heldMiB += Math.min(held(p.host, p.vm), p.memoryMiB);
    loads.set(p.host, l);
  }
  return loads;
}

/** reportedRoom is the memory a host's report leaves for rfboot's VMs (see ReportedMemory), at least 0. */
function reportedRoom(r: ReportedMemory, heldMiB: number): number {
  const room = Math.min(r.availableMiB + heldMiB - r.reserveMiB, r.totalMiB ?? Number.POSITIVE_INFINITY);
  return Math.max(0, Math.floor(room));
}

/** memoryLimit is the memory rfboot's VMs may use on a host: the configured limit or the reported room. */
function memoryLimit(h: HostCapacity, load: HostLoad): number {
  return h.reported ? Math.min(h.memoryMiB, reportedRoom(h.reported, load.heldMiB)) : h.memoryMiB;
}

function roomReason(h: HostCapacity, load: HostLoad, memoryMiB: number): string | undefined {
  if (!h.reachable) return "unreachable";
  if (load.vms + 1 > h.maxVms) return `full (${load.vms}/${h.maxVms} VMs)`;
  if (load.memoryMiB + memoryMiB > h.memoryMiB) {
    return `not enough memory (${load.memoryMiB} + ${memoryMiB} > ${h.memoryMiB} MiB)`;
  }
  const r = h.reported;
  if (r) {
    const room = reportedRoom(r, load.heldMiB);
    if (load.memoryMiB + memoryMiB > room) {
      const held = load.heldMiB > 0 ? `, ${Math.round(load.heldMiB)} MiB held by rfboot's VMs` : "";
      const total = r.totalMiB !== undefined ? ` of ${r.totalMiB} MiB` : "";
      return (
        `host reports ${r.availableMiB} MiB available${total} (reserve ${r.reserveMiB} MiB${held}): ` +
        `${load.memoryMiB} + ${memoryMiB} > ${room} MiB`
      );
    }
  }
  return undefined;
}

/**
 * place chooses a host for one VM:
 * 1. defined on a reachable host -> stays there (even when that host is now over capacity: moving a VM loses
 *    its state; a pin to another host overrides this);
 * 2. pinned -> that host, if reachable and with room;
 * 3. otherwise the reachable host with room whose fullness after placing (max of VM and memory ratios, the
 *    memory one against the smaller of memoryMiB and the reported room) is lowest, ties broken by name so the
 *    choice is deterministic; the hosts passed over for lack of room are in `skipped`.
 * Throws PlacementError when nothing fits, with the reason of each host.
 */
export function place(
  req: PlacementRequest,
  hosts: readonly HostCapacity[],
  placements: readonly KnownPlacement[],
): PlacementDecision {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const mine = placements.filter((p) => p.vm === req.vm);
  // Prefer the host where it runs, then any reachable one; sorted for determinism.
  const existing = mine
    .filter((p) => byName.get(p.host)?.reachable)
    .sort(
      (a, b) => Number(b.running !== false) - Number(a.running !== false) || a.host.localeCompare(b.host),
    )[0];
  const previous = mine.map((p) => p.host).sort()[0];
  if (existing && (!req.pin || req.pin === existing.host)) {
    return { vm: req.vm, host: existing.host, reason: "existing" };
  }
  const loads = hostLoads(placements, req.vm, (host, vm) => byName.get(host)?.reported?.heldMiB.get(vm) ?? 0);
  const zero: HostLoad = { vms: 0, memoryMiB: 0, heldMiB: 0 };
  const movedFrom = existing?.host ?? previous;
  if (req.pin) {
    const h = byName.get(req.pin);
    if (!h) {
      throw new PlacementError(
        `VM ${req.vm} is pinned to host ${req.pin}, which is not configured; add it under hosts or change the pin`,
        req.vm,
        { [req.pin]: "not configured" },
      );
    }
    const why = roomReason(h, loads.get(h.name) ?? zero, req.memoryMiB);
    if (why) {
      const which = why.startsWith("host reports") ? `which has no room: ${why}` : `which is ${why}`;
      throw new PlacementError(`VM ${req.vm} is pinned to host ${req.pin}, ${which}`, req.vm, {
        [req.pin]: why,
      });
    }
    return decision(req.vm, h.name, "pinned", movedFrom);
  }
  const reasons: Record<string, string> = {};
  let best: { h: HostCapacity; score: number } | undefined;
  for (const h of [...hosts].sort((a, b) => a.name.localeCompare(b.name))) {
    const load = loads.get(h.name) ?? zero;
    const why = roomReason(h, load, req.memoryMiB);
    if (why) {
      reasons[h.name] = why;
      continue;
    }
    const score = Math.max(
      (load.vms + 1) / h.maxVms,
      (load.memoryMiB + req.memoryMiB) / memoryLimit(h, load),
    );
    if (!best || score < best.score) best = { h, score };
  }
  if (!best) {
    const detail = Object.entries(reasons)
      .map(([n, r]) => `${n}: ${r}`)
      .join("; ");
    throw new PlacementError(
      `no host has room for VM ${req.vm} (${req.memoryMiB} MiB): ${detail || "no hosts configured"}; ` +
        "add a host, raise maxVms/memoryMiB, or stop VMs",
      req.vm,
      reasons,
    );
  }
  return decision(req.vm, best.h.name, movedFrom ? "re-placed" : "least-loaded", movedFrom, reasons);
}

function decision(
  vm: string,
  host: string,
  reason: PlacementReason,
  previous?: string,
  skipped: Readonly<Record<string, string>> = {},
): PlacementDecision {
  return {
    vm,
    host,
    reason,
    ...(previous !== undefined && previous !== host ? { previous } : {}),
    ...(Object.keys(skipped).length > 0 ? { skipped } : {}),
  };
}

/**
 * placeAll places several VMs in order, each decision counting against the next (a burst of joins), and
 * returns decisions and failures; the input arrays are not modified.
 */
export function placeAll(
  reqs: readonly PlacementRequest[],
  hosts: readonly HostCapacity[],
  placements: readonly KnownPlacement[],
): { decisions: PlacementDecision[]; errors: PlacementError[] } {
  const known = [...placements];
  const decisions: PlacementDecision[] = [];
  const errors: PlacementError[] = [];
  for (const r of reqs) {
    try {
      const d = place(r, hosts, known);
      decisions.push(d);
      // Once placed, the VM runs there: drop its other placements and count it on the chosen host.
      for (let i = known.length - 1; i >= 0; i--) if (known[i]?.vm === r.vm) known.splice(i, 1);
      known.push({ vm: r.vm, host: d.host, memoryMiB: r.memoryMiB, running: true });
    } catch (e) {
      if (e instanceof PlacementError) errors.push(e);
      else throw e;
    }
  }
  return { decisions, errors };
}
