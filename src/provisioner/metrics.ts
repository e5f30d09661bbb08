/** Prometheus metrics for the daemon (prom-client), served by the HTTP listener (http/server.ts) at /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { countOpenFiles, outOfFiles, readNofileLimits } from "../common/nofile.js";
import { VM_STATES } from "./store/index.js";

/**
 * StateSample is the daemon's state the gauges below read at each scrape: the live page's snapshot (see
 * http/snapshot.ts) has this shape, so the page and the gauges never disagree.
 */
export interface StateSample {
  readonly hosts: readonly { name: string; reachable?: boolean; vms: number; capacityLeft: number }[];
  readonly counts: { readonly leases: number; readonly byState: Readonly<Record<string, number>> };
  readonly store: {
    readonly online: boolean;
    readonly pending: number;
    readonly oldestPendingAgeSeconds?: number;
  };
}

/** Metrics is the daemon's set of counters and histograms, on a registry of its own (no global state). */
export class Metrics {
  readonly registry = new Registry();
  readonly joins = new Counter({
    name: "rfboot_joins_total",
    help: "Datapath joins (switch handshakes completed)",
    registers: [this.registry],
  });
  readonly leaves = new Counter({
    name: "rfboot_leaves_total",
    help: "Datapath leaves (main connection gone)",
    registers: [this.registry],
  });
  readonly boots = new Counter({
    name: "rfboot_boots_total",
    help: "VM starts by outcome: started (cold), resumed (managedsave), adopted (already running)",
    labelNames: ["action", "host"],
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: "rfboot_failures_total",
    help: "Failed provisioning steps by kind",
    labelNames: ["step", "kind"],
    registers: [this.registry],
  });
  readonly prewarmedVms = new Gauge({
    name: "rfboot_prewarmed_vms",
    help: "VMs holding a prewarm save image (booted ahead of their switch, then managedsaved), by host",
    labelNames: ["host"],
    registers: [this.registry],
  });
  readonly prewarms = new Counter({
    name: "rfboot_prewarm_total",
    help: "Prewarm outcomes: saved, restored (at a join), dropped (stale or removed), failed, cancelled (rfboot stopped), skipped (budget)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly reactionSeconds = new Histogram({
    name: "rfboot_reaction_seconds",
    help: "Time from the switch's FEATURES_REPLY (join) to `virsh start` issued",
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly bootSeconds = new Histogram({
    name: "rfboot_boot_latency_seconds",
    help: "Time from join to the domain running",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly readySeconds = new Histogram({
    name: "rfboot_ready_latency_seconds",
    help: "Time from join to the VM ready (console marker or rfclient PortRegister)",
    buckets: [0.1, 0.5, 1, 2, 3, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly datapathsUp = new Gauge({
    name: "rfboot_datapaths_up",
    help: "Datapaths currently connected",
    registers: [this.registry],
  });
  readonly storePending = new Gauge({
    name: "rfboot_store_pending_writes",
    help: "MongoDB writes not yet confirmed (the outbox's depth; it grows while the database is unreachable)",
    registers: [this.registry],
    collect: () => this.sampled((s) => this.storePending.set(s.store.pending)),
  });
  readonly storeOldestPending = new Gauge({
    name: "rfboot_store_oldest_pending_seconds",
    help: "Age of the oldest record change or event still waiting for MongoDB (0 when none waits)",
    registers: [this.registry],
    collect: () => this.sampled((s) => this.storeOldestPending.set(s.store.oldestPendingAgeSeconds ?? 0)),
  });
  readonly storeOnline = new Gauge({
    name: "rfboot_store_online",
    help: "1 while MongoDB is reachable, 0 while writes are buffered",
    registers: [this.registry],
    collect: () => this.sampled((s) => this.storeOnline.set(s.store.online ? 1 : 0)),
  });
  readonly hostReachable = new Gauge({
    name: "rfboot_host_reachable",
    help: "1 when the libvirt host answered its last probe, 0 when not (absent before the first probe)",
    labelNames: ["host"],
    registers: [this.registry],
    collect: () =>
      this.sampled((s) => {
        this.hostReachable.reset();
        for (const h of s.hosts)
          if (h.reachable !== undefined) this.hostReachable.set({ host: h.name }, h.reachable ? 1 : 0);
      }),
  });
  readonly hostVms = new Gauge({
    name: "rfboot_host_vms",
    help: "rfboot's VMs placed on each libvirt host",
    labelNames: ["host"],
    registers: [this.registry],
    collect: () =>
      this.sampled((s) => {
        this.hostVms.reset();
        for (const h of s.hosts) this.hostVms.set({ host: h.name }, h.vms);
      }),
  });
  readonly hostCapacityLeft = new Gauge({
    name: "rfboot_host_capacity_left",
    help: "VM slots left on each libvirt host (maxVms minus rfboot's VMs placed there)",
    labelNames: ["host"],
    registers: [this.registry],
    collect: () =>
      this.sampled((s) => {
        this.hostCapacityLeft.reset();
        for (const h of s.hosts) this.hostCapacityLeft.set({ host: h.name }, h.capacityLeft);
      }),
  });
  readonly vmsByState = new Gauge({
    name: "rfboot_vms",
    help: "Records by VM state (joined, starting, running, ready, failed, ...)",
    labelNames: ["state"],
    registers: [this.registry],
    collect: () =>
      this.sampled((s) => {
        for (const state of VM_STATES) this.vmsByState.set({ state }, s.counts.byState[state] ?? 0);
      }),
  });
  readonly leasesHeld = new Gauge({
    name: "rfboot_leases_held",
    help: "Datapath leases this instance holds",
    registers: [this.registry],
    collect: () => this.sampled((s) => this.leasesHeld.set(s.counts.leases)),
  });
  readonly openFiles = new Gauge({
    name: "rfboot_open_files",
    help: "Descriptors this process has open (/proc/self/fd): switch connections, virsh pipes, MongoDB, files",
    registers: [this.registry],
    collect: () => {
      const n = countOpenFiles();
      if (n !== undefined) this.openFiles.set(n);
    },
  });
  readonly openFilesLimit = new Gauge({
    name: "rfboot_open_files_limit",
    help: "The process's soft open-files limit (RLIMIT_NOFILE); switches need 1 each in listen mode, 2 in relay",
    registers: [this.registry],
    collect: () => {
      try {
        this.openFilesLimit.set(readNofileLimits().soft);
      } catch {
        // no /proc: the gauge stays absent rather than wrong
      }
    },
  });
  readonly outOfFiles = new Counter({
    name: "rfboot_out_of_files_total",
    help: "Times the open-files limit was reached, by what failed: accept (a switch), upstream (relay), spawn (virsh)",
    labelNames: ["where"],
    registers: [this.registry],
    collect: () => {
      // The counts are the process's (common/nofile.ts); this registry adds what is new since its last scrape.
      for (const [where, n] of outOfFiles.counts()) {
        const seen = this.outOfFilesSeen.get(where) ?? 0;
        if (n > seen) this.outOfFiles.inc({ where }, n - seen);
        this.outOfFilesSeen.set(where, n);
      }
    },
  });
  private readonly outOfFilesSeen = new Map<string, number>();
  private sample: (() => StateSample | undefined) | undefined;

  /** observe makes the state gauges read `sample` at each scrape (before: they stay at zero, or absent). */
  observe(sample: () => StateSample | undefined): void {
    this.sample = sample;
  }

  private sampled(fn: (s: StateSample) => void): void {
    const s = this.sample?.();
    if (s) fn(s);
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, prefix: "rfboot_" });
  }
}
