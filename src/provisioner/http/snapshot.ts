/**
 * What the live page, `/api/state`, `/readyz` and the state gauges show, built from plain inputs: the
 * daemon's datapaths, the records, rfboot's `rfconfig` rows, the host probes, the event log and the store's
 * outbox. Pure: the caller gathers the inputs (see source.ts) and passes `now`, so tests build snapshots from
 * fakes without a daemon, a database or a clock.
 */
import type { DatapathStatus } from "../datapath.js";
import type { StoredEvent, VmRecord } from "../store/index.js";

/** OwnRfconfigRow is one `rfconfig` row rfboot wrote, with its `_id` (`rfboot:<vm_id>/<vm_port>`). */
export interface OwnRfconfigRow {
  readonly id: string;
  readonly vm_id: string;
  readonly vm_port: string;
  readonly ct_id: string;
  readonly dp_id: string;
  readonly dp_port: string;
}

/** HostInput is one configured host and its latest probe (absent: never probed yet). */
export interface HostInput {
  readonly name: string;
  readonly uri: string;
  readonly maxVms: number;
  readonly memoryMiB?: number;
  readonly probe?: {
    readonly reachable: boolean;
    readonly latencyMs: number;
    readonly error?: string;
    readonly running: number;
    readonly memoryInUseMiB: number;
    readonly probedAt: Date;
  };
}

/** StoreInput is the store's state: its outbox counters and the oldest write still waiting. */
export interface StoreInput {
  readonly online: boolean;
  readonly pending: number;
  readonly droppedEvents: number;
  /** oldestPendingAt is when the oldest buffered record patch or event was made. */
  readonly oldestPendingAt?: Date;
  /** readError: the last read for this snapshot failed (records, rows or events are then the previous ones). */
  readonly readError?: string;
}

/** SnapshotInput is everything a snapshot is built from. */
export interface SnapshotInput {
  readonly instance: string;
  /** controller: where the OpenFlow side listens (or relays from); undefined while it is not started. */
  readonly controller?: { readonly host: string; readonly port: number; readonly mode: string };
  /** configured lists the VMs of the config, so a datapath never seen still has its line. */
  readonly configured: readonly { readonly dpidHex: string; readonly name: string }[];
  readonly datapaths: readonly DatapathStatus[];
  readonly records: readonly VmRecord[];
  readonly rfconfig: readonly OwnRfconfigRow[];
  readonly hosts: readonly HostInput[];
  /** events, newest first. */
  readonly events: readonly StoredEvent[];
  readonly store: StoreInput;
}

/** Readiness of one VM as the page shows it. */
export type ReadinessView = "ready" | "waiting" | "no";

/** DatapathView is one line of the datapath table. */
export interface DatapathView {
  readonly dpid: string;
  readonly switch: "connected" | "disconnected" | "never";
  readonly peer?: string;
  readonly vm?: string;
  readonly host?: string;
  readonly state: string;
  /** since is when the record last changed (the state's age), ISO time. */
  readonly since?: string;
  readonly joinedAt?: string;
  readonly readyAt?: string;
  readonly ready: ReadinessView;
  readonly lastError?: string;
  readonly lastErrorAt?: string;
  readonly leased: boolean;
  readonly leavePending: boolean;
  readonly retryWaiting: boolean;
  readonly attempts: number;
  /** dataPorts: switch port -> VM interface (`eth<vmPort>` on dp0). */
  readonly dataPorts: readonly { readonly dpPort: number; readonly vmPort: number }[];
  /** prewarm is the VM's prewarm save image (when saved, ISO time; on which host; its size), if it has one. */
  readonly prewarm?: { readonly at: string; readonly host: string; readonly imageMiB: number };
  /** prewarming: a prewarm boots the VM now (since when, ISO time; on which host): its state is that boot's. */
  readonly prewarming?: { readonly since: string; readonly host: string };
}

/** HostView is one line of the host table. */
export interface HostView {
  readonly name: string;
  readonly uri: string;
  /** reachable: undefined until the first probe. */
  readonly reachable?: boolean;
  readonly probedAt?: string;
  readonly latencyMs?: number;
  readonly error?: string;
  /** vms: rfboot's VMs placed there (records and the daemon's placements). */
  readonly vms: number;
  /** running: active domains seen by the last probe (all of them, not only rfboot's). */
  readonly running?: number;
  readonly maxVms: number;
  /** capacityLeft: VM slots left (maxVms minus rfboot's VMs placed there, not below 0). */
  readonly capacityLeft: number;
  readonly memoryMiB?: number;
  readonly memoryInUseMiB?: number;
  /** prewarmed: rfboot's VMs with a prewarm save image on this host, and the images' total (MiB). */
  readonly prewarmed: number;
  readonly prewarmImagesMiB: number;
}

/** EventView is one entry of the event log. */
export interface EventView {
  readonly id: string;
  readonly at: string;
  readonly dpid?: string;
  readonly vm?: string;
  readonly kind: string;
  readonly detail?: string;
}

/** LiveSnapshot is the whole state shown by the page and served at `/api/state`. */
export interface LiveSnapshot {
  readonly at: string;
  readonly instance: string;
  readonly controller?: { readonly host: string; readonly port: number; readonly mode: string };
  readonly store: {
    readonly online: boolean;
    readonly pending: number;
    readonly droppedEvents: number;
    readonly oldestPendingAgeSeconds?: number;
    readonly readError?: string;
  };
  readonly datapaths: readonly DatapathView[];
  readonly rfconfig: readonly OwnRfconfigRow[];
  readonly hosts: readonly HostView[];
  readonly events: readonly EventView[];
  readonly counts: {
    readonly connected: number;
    readonly leases: number;
    readonly byState: Readonly<Record<string, number>>;
  };
}

const iso = (d: Date | undefined): string | undefined => (d ? new Date(d).toISOString() : undefined);

function readinessOf(rec: VmRecord | undefined, dp: DatapathStatus | undefined): ReadinessView {
  if (rec?.state === "ready") return "ready";
  const booting = rec && ["joined", "placing", "defining", "starting", "running"].includes(rec.state);
  return booting && (dp?.connected ?? rec.switch?.connected ?? false) ? "waiting" : "no";
}

function datapathView(
  dpid: string,
  rec: VmRecord | undefined,
  dp: DatapathStatus | undefined,
  configuredName: string | undefined,
): DatapathView {
  // The daemon knows a datapath before its switch ever connected (its domain defined ahead, its VM
  // prewarmed): with no switch recorded, the switch was never seen.
  const unseen = !dp?.connected && dp?.joined !== true && rec?.switch === undefined;
  const connected = unseen ? undefined : (dp?.connected ?? rec?.switch?.connected);
  const sw: DatapathView["switch"] =
    connected === undefined ? "never" : connected ? "connected" : "disconnected";
  const vm = dp?.vm ?? rec?.vmName ?? configuredName;
  const host = dp?.host ?? rec?.host;
  const err = rec?.lastError ?? undefined;
  return {
    dpid,
    switch: sw,
    ...(rec?.switch?.peer ? { peer: rec.switch.peer } : {}),
    ...(vm ? { vm } : {}),
    ...(host ? { host } : {}),
    state: rec?.state ?? (dp?.connected ? "joined" : "not joined"),
    ...(rec ? { since: iso(rec.updatedAt) } : {}),
    ...(rec?.joinedAt ? { joinedAt: iso(rec.joinedAt) } : {}),
    ...(rec?.readyAt ? { readyAt: iso(rec.readyAt) } : {}),
    ready: readinessOf(rec, dp),
    ...(err ? { lastError: `${err.kind}: ${err.message}`, lastErrorAt: iso(err.at) } : {}),
    leased: dp?.leased ?? false,
    leavePending: dp?.leavePending ?? false,
    retryWaiting: dp?.retryWaiting ?? false,
    attempts: dp?.attempts ?? rec?.attempts ?? 0,
    dataPorts: dp?.dataPorts ?? [],
    ...(rec?.prewarm
      ? { prewarm: { at: iso(rec.prewarm.at)!, host: rec.prewarm.host, imageMiB: rec.prewarm.imageMiB } }
      : {}),
    ...(rec?.prewarming
      ? { prewarming: { since: iso(rec.prewarming.since)!, host: rec.prewarming.host } }
      : {}),
  };
}

/**
 * buildSnapshot joins the inputs into one snapshot at `now`. Datapaths: the configured ones in config order,
 * then any other the daemon or the records know, by dpid. A VM counts on its host when the daemon placed it
 * there or its record says so and it is not stopped for good (`left`, `missing`).
 */
export function buildSnapshot(input: SnapshotInput, now: Date): LiveSnapshot {
  const recs = new Map(input.records.map((r) => [r.dpidHex, r]));
  const dps = new Map(input.datapaths.map((d) => [d.dpidHex, d]));
  const order: { dpid: string; name?: string }[] = input.configured.map((c) => ({
    dpid: c.dpidHex,
    name: c.name,
  }));
  const seen = new Set(order.map((o) => o.dpid));
  for (const id of [...new Set([...dps.keys(), ...recs.keys()])].sort()) {
    if (!seen.has(id)) order.push({ dpid: id });
  }
  const datapaths = order.map((o) => datapathView(o.dpid, recs.get(o.dpid), dps.get(o.dpid), o.name));
  const onHost = new Map<string, number>();
  for (const d of datapaths) {
    if (!d.host || d.state === "left" || d.state === "missing" || d.state === "not joined") continue;
    onHost.set(d.host, (onHost.get(d.host) ?? 0) + 1);
  }
  const images = new Map<string, { n: number; mib: number }>();
  for (const d of datapaths) {
    if (!d.prewarm) continue;
    const i = images.get(d.prewarm.host) ?? { n: 0, mib: 0 };
    images.set(d.prewarm.host, { n: i.n + 1, mib: i.mib + d.prewarm.imageMiB });
  }
  const hosts: HostView[] = input.hosts.map((h) => {
    const vms = onHost.get(h.name) ?? 0;
    const p = h.probe;
    return {
      name: h.name,
      uri: h.uri,
      ...(p
        ? {
            reachable: p.reachable,
            probedAt: iso(p.probedAt),
            latencyMs: Math.round(p.latencyMs),
            running: p.running,
            memoryInUseMiB: p.memoryInUseMiB,
            ...(p.error ? { error: p.error } : {}),
          }
        : {}),
      vms,
      maxVms: h.maxVms,
      capacityLeft: Math.max(0, h.maxVms - vms),
      ...(h.memoryMiB !== undefined ? { memoryMiB: h.memoryMiB } : {}),
      prewarmed: images.get(h.name)?.n ?? 0,
      prewarmImagesMiB: images.get(h.name)?.mib ?? 0,
    };
  });
  const byState: Record<string, number> = {};
  for (const r of input.records) byState[r.state] = (byState[r.state] ?? 0) + 1;
  const oldest = input.store.oldestPendingAt;
  return {
    at: now.toISOString(),
    instance: input.instance,
    ...(input.controller ? { controller: input.controller } : {}),
    store: {
      online: input.store.online,
      pending: input.store.pending,
      droppedEvents: input.store.droppedEvents,
      ...(oldest ? { oldestPendingAgeSeconds: Math.max(0, (now.getTime() - oldest.getTime()) / 1000) } : {}),
      ...(input.store.readError ? { readError: input.store.readError } : {}),
    },
    datapaths,
    rfconfig: [...input.rfconfig].sort((a, b) => a.id.localeCompare(b.id, "en", { numeric: true })),
    hosts,
    events: input.events.map((e) => ({
      id: e.id,
      at: new Date(e.at).toISOString(),
      ...(e.dpid ? { dpid: e.dpid } : {}),
      ...(e.vm ? { vm: e.vm } : {}),
      kind: e.kind,
      ...(e.detail ? { detail: e.detail } : {}),
    })),
    counts: {
      connected: datapaths.filter((d) => d.switch === "connected").length,
      leases: datapaths.filter((d) => d.leased).length,
      byState,
    },
  };
}

/** ReadyReport is `/readyz`'s answer: ready, or the reasons why not. */
export interface ReadyReport {
  readonly ready: boolean;
  readonly reasons: readonly string[];
  /** notes are conditions that do not make rfboot unready (buffering writes, a host lost). */
  readonly notes: readonly string[];
}

/** ReadyLimits bound what still counts as ready while MongoDB is away. */
export interface ReadyLimits {
  /** maxPending buffered writes (default 10000, the outbox's own event bound). */
  readonly maxPending?: number;
  /** maxPendingAgeSeconds of the oldest buffered write (default 600). */
  readonly maxPendingAgeSeconds?: number;
}

/**
 * readiness says whether rfboot can do its job: the controller listens, the store is reachable or buffers
 * within its bounds (no event dropped, not too many or too old writes waiting), and every host was probed
 * once. A host that does not answer is a note, not a reason: rfboot then places VMs on the others.
 */
export function readiness(s: LiveSnapshot, limits: ReadyLimits = {}): ReadyReport {
  const reasons: string[] = [];
  const notes: string[] = [];
  if (!s.controller) reasons.push("the OpenFlow controller is not listening yet");
  const maxPending = limits.maxPending ?? 10_000;
  const maxAge = limits.maxPendingAgeSeconds ?? 600;
  if (!s.store.online) {
    const age = s.store.oldestPendingAgeSeconds ?? 0;
    if (s.store.droppedEvents > 0)
      reasons.push(`MongoDB unreachable and ${s.store.droppedEvents} buffered events dropped`);
    else if (s.store.pending > maxPending)
      reasons.push(`MongoDB unreachable with ${s.store.pending} writes buffered (bound ${maxPending})`);
    else if (age > maxAge)
      reasons.push(`MongoDB unreachable; oldest buffered write ${Math.round(age)}s old (bound ${maxAge}s)`);
    else notes.push(`MongoDB unreachable: ${s.store.pending} writes buffered`);
  }
  const unprobed = s.hosts.filter((h) => h.reachable === undefined).map((h) => h.name);
  if (unprobed.length > 0) reasons.push(`libvirt hosts not probed yet: ${unprobed.join(", ")}`);
  for (const h of s.hosts) if (h.reachable === false) notes.push(`libvirt host ${h.name} unreachable`);
  return { ready: reasons.length === 0, reasons, notes };
}
