/**
 * The daemon: wires the controller (switch joins and leaves) to placement, libvirt and MongoDB.
 *
 * One datapath's life: `up` -> record `joined` -> queue `ensure` (coalesced per dpid, limited per host) ->
 * lease claimed -> rfconfig rows upserted (before the VM starts) -> XML -> define + start (or adopt/resume) ->
 * record `running` -> readiness (console marker and/or rfclient PortRegister) -> `ready`. `down` -> after the
 * leave policy's grace period, queue `leave` (keep, shutdown, destroy, suspend). A failed `ensure` is recorded
 * with its cause and retried with backoff while the switch stays connected.
 */
import { EventEmitter } from "node:events";
import { mkdir, open } from "node:fs/promises";
import { hostname } from "node:os";
import { dpidToHex } from "../common/dpid.js";
import { RfbootError, StoreError, VirshError, errorMessage } from "../common/errors.js";
import { silentLogger, type Logger } from "../common/log.js";
import type { Controller, DownEvent, PortEvent, UpEvent } from "../controller/index.js";
import { buildDomainXml } from "../xmlgen/index.js";
import {
  configHash,
  hostsFor,
  listConfiguredVms,
  resolveDatapath,
  type HostConfig,
  type ResolvedVm,
  type RfbootConfig,
} from "./config/index.js";
import { HostRegistry, type HostProbe } from "./hosts.js";
import {
  isActive,
  sweepPartFiles,
  type DiskPlan as LifecycleDisk,
  type LeaveAction,
  type LeaveOutcome,
} from "./lifecycle.js";
import { LibvirtEvents, type DomainEvent } from "./libvirt-events.js";
import { rfconfigRows } from "./mapping.js";
import { Metrics } from "./metrics.js";
import { PlacementError, place, type KnownPlacement } from "./placement.js";
import { ActionQueue } from "./queue.js";
import {
  isOutage,
  MongoStore,
  reconcile,
  type DaemonStore,
  type DomainListing,
  type RecordPatch,
  type VmState,
} from "./store/index.js";
import type { VirshRunner } from "./virsh.js";
import { admitDatapath } from "./wiring.js";

/** DaemonAction is what the queue runs for one dpid: make its VM run, or apply the leave policy. */
export type DaemonAction =
  | { kind: "ensure"; vm: ResolvedVm; host: string; joinedAt: number }
  | { kind: "leave"; vm: ResolvedVm; host: string; action: LeaveAction };

/** DaemonOptions configure a Daemon; only `config` is required. */
export interface DaemonOptions {
  config: RfbootConfig;
  logger?: Logger;
  metrics?: Metrics;
  /** instanceId names this rfboot in leases and records (default `hostname:pid`). */
  instanceId?: string;
  /** controller: an already-built controller (tests); default built from `config.openflow`. */
  controller?: Controller;
  /** createController builds the controller from the config (the daemon does not import sockets itself). */
  createController?: (config: RfbootConfig, logger: Logger, current?: () => RfbootConfig) => Controller;
  /** store: default a MongoStore opened from `config.mongo`. */
  store?: DaemonStore;
  runner?: VirshRunner;
  leaseTtlMs?: number;
  /** retry backoff of failed ensures (ms): first delay and cap. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Watch libvirt lifecycle events (`virsh event --loop`) to keep records current (default true). */
  watchLibvirtEvents?: boolean;
}

/** EnsureOutcome is what one `ensure` did. */
export interface EnsureOutcome {
  dpidHex: string;
  vm: string;
  host: string;
  action: string;
  reactionMs: number;
}

/** DaemonEvents are emitted for tests, benches and the rftest progress display. */
export interface DaemonEvents {
  joined: [{ dpidHex: string; vm?: string; peer: string }];
  ignored: [{ dpidHex: string; reason: string }];
  ensured: [EnsureOutcome];
  ready: [{ dpidHex: string; vm: string; via: string; ms: number }];
  failed: [{ dpidHex: string; vm?: string; error: Error; retryInMs?: number }];
  left: [{ dpidHex: string; vm: string; outcome: LeaveOutcome }];
  reconciled: [{ actions: number }];
  /** hostLost: a libvirt host stopped answering; `vms` were placed there. */
  hostLost: [{ host: string; error: string; vms: string[] }];
  /** hostBack: a lost host answers again after `downMs`. */
  hostBack: [{ host: string; downMs: number }];
  /** replaced: the hostLoss policy moved a VM away from a lost host (the new host follows in `ensured`). */
  replaced: [{ dpidHex: string; vm: string; from: string }];
}

const STATE_OF_LEAVE: Record<LeaveOutcome, VmState | undefined> = {
  kept: undefined,
  shutdown: "stopped",
  destroyed: "stopped",
  saved: "suspended",
  "not-running": "stopped",
  missing: "missing",
};

function lifecycleDisk(vm: ResolvedVm, host: HostConfig): LifecycleDisk | undefined {
  const d = vm.plan(host).disk;
  if (!d || d.kind === "none") return undefined;
  return { kind: d.kind, base: d.base, format: d.baseFormat, path: d.path };
}

/** MAX_CONCURRENT_ACTIONS caps provisioning actions in flight (a burst of joins waits in the queue beyond it). */
const MAX_CONCURRENT_ACTIONS = 128;

/** Gate is a counting semaphore: at most `limit` tasks run at once, the others wait in FIFO order. */
class Gate {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/**
 * ReadinessMode: `boot` waits for the boot marker / PortRegister; `restored` (from managedsave, or resumed)
 * takes the first new console output; `was-ready` (adopted, ready since its last start) is ready at once.
 */
type ReadinessMode = "boot" | "restored" | "was-ready";

/** RESTORED_QUIET_MS: how long a restored guest may stay silent on its console before it counts as ready. */
const RESTORED_QUIET_MS = 5_000;

function wireVersion(v: string): number {
  const minor = Number(v.split(".")[1]);
  return Number.isInteger(minor) ? minor + 1 : 0;
}

function errorKind(err: unknown): string {
  if (err instanceof VirshError) return err.kind;
  if (err instanceof PlacementError) return "placement";
  if (err instanceof StoreError) return err.operation === "claim" ? "lease" : "store";
  if (err instanceof RfbootError) return err.name;
  return "other";
}

/**
 * Daemon runs rfboot: `start()` connects everything and reconciles, `reload(config)` applies a new config
 * (SIGHUP), `stop()` closes cleanly. It never throws on a peer's misbehaviour: failures are logged, counted,
 * recorded in MongoDB (`lastError`) and retried.
 */
export class Daemon extends EventEmitter<DaemonEvents> {
  config: RfbootConfig;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly instanceId: string;
  store!: DaemonStore;
  readonly hosts: HostRegistry;
  private controller: Controller | undefined;
  private readonly queue: ActionQueue<string, DaemonAction, EnsureOutcome | LeaveOutcome>;
  private readonly connected = new Map<string, UpEvent>();
  private readonly leaveTimers = new Map<string, NodeJS.Timeout>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly retryDelay = new Map<string, number>();
  private readonly readinessAborts = new Map<string, AbortController>();
  /** placements: VM name -> host, from records, `list --all` and our own decisions. */
  private readonly placements = new Map<string, KnownPlacement>();
  private readonly leased = new Set<string>();
  private readonly startGates = new Map<string, Gate>();
  private leaseTimer: NodeJS.Timeout | undefined;
  /** attempts counts consecutive failed ensures per dpid (recorded; reset by a success). */
  private readonly attempts = new Map<string, number>();
  /** vmDpid: VM name -> dpid (hex), from records and joins, to report a lost host's VMs. */
  private readonly vmDpid = new Map<string, string>();
  /** ensuredAt: dpid -> Date.now() of the last successful ensure (a probe older than that is stale). */
  private readonly ensuredAt = new Map<string, number>();
  /** hostDownSince: host -> Date.now() when it was first found unreachable (cleared when it answers). */
  private readonly hostDownSince = new Map<string, number>();
  /**
   * definedAs: VM name -> `host uuid configFingerprint` of the definition its domain was last given (from the
   * records at start-up, then from each successful ensure; dropped when an ensure fails, as the domain's
   * definition is then unknown). An existing domain defined from the same VM config is not redefined.
   */
  private readonly definedAs = new Map<string, string>();
  /** replacedFrom: VM name -> the lost host the hostLoss policy moved it away from. */
  private readonly replacedFrom = new Map<string, string>();
  private hostTimer: NodeJS.Timeout | undefined;
  private hostCheck: Promise<void> | undefined;
  private readonly events: LibvirtEvents[] = [];
  private readonly leaseTtlMs: number;
  private readonly opts: DaemonOptions;
  private stopped = false;

  constructor(opts: DaemonOptions) {
    super();
    this.opts = opts;
    this.config = opts.config;
    this.log = opts.logger ?? silentLogger;
    this.metrics = opts.metrics ?? new Metrics({ defaultMetrics: false });
    this.instanceId = opts.instanceId ?? `${hostname()}:${process.pid}`;
    this.leaseTtlMs = opts.leaseTtlMs ?? 30_000;
    this.hosts = new HostRegistry({
      hosts: this.config.hosts,
      run: opts.runner,
      log: this.log,
    });
    this.queue = new ActionQueue<string, DaemonAction, EnsureOutcome | LeaveOutcome>({
      // Only define/start hold one of a host's start slots (startGate); the lease, the MongoDB writes and
      // the XML of other joins proceed meanwhile, so a slow database does not idle the hosts.
      classify: (a) => ({ host: a.host, limited: false }),
      globalLimit: MAX_CONCURRENT_ACTIONS,
      hostLimit: (h) => this.config.hosts.find((x) => x.name === h)?.maxConcurrentStarts ?? 1,
      handler: (key, action) =>
        action.kind === "ensure" ? this.ensure(key, action) : this.leave(key, action),
      onError: () => undefined,
    });
  }

  /** start probes the hosts, reconciles MongoDB with them, then accepts switches. */
  async start(): Promise<{ host: string; port: number } | undefined> {
    await mkdir(this.config.stateDir, { recursive: true, mode: 0o750 });
    for (const h of this.config.hosts) {
      await mkdir(h.storageDir, { recursive: true, mode: 0o750 });
      await mkdir(h.consoleLogDir, { recursive: true, mode: 0o750 });
      // A disk half-built by an rfboot killed mid-`qemu-img create` is garbage: nothing refers to it.
      const swept = await sweepPartFiles(h.storageDir);
      if (swept.length > 0)
        this.log.warn({ host: h.name, files: swept }, "removed half-built disks of a crashed run");
    }
    this.store =
      this.opts.store ??
      (await MongoStore.open({
        uri: this.config.mongo.uri,
        database: this.config.mongo.database,
        prefix: `${this.config.mongo.collectionPrefix}_`,
        owner: this.instanceId,
        logger: this.log,
        stateDir: this.config.stateDir,
      }));
    this.store.on("offline", (e: unknown) =>
      this.log.warn({ err: errorMessage(e) }, "MongoDB unreachable: buffering writes"),
    );
    this.store.on("online", () => this.log.info("MongoDB reachable again: flushing buffered writes"));
    await this.reconcile();
    if (this.opts.watchLibvirtEvents !== false) this.watchLibvirt();
    this.leaseTimer = setInterval(() => void this.renewLeases(), Math.max(1000, this.leaseTtlMs / 3));
    this.leaseTimer.unref();
    this.hostTimer = setInterval(
      () => void this.checkHosts(),
      this.config.policies.hostLoss.probeSeconds * 1000,
    );
    this.hostTimer.unref();
    this.controller =
      this.opts.controller ?? this.opts.createController?.(this.config, this.log, () => this.config);
    if (!this.controller) return undefined;
    this.controller.on("up", (e) => this.onUp(e));
    this.controller.on("down", (e) => this.onDown(e));
    this.controller.on("port", (e) => this.onPort(e));
    const addr = await this.controller.start();
    this.log.info({ ...addr, mode: this.config.openflow.mode }, "accepting switches");
    return addr;
  }

  /** reconcile compares MongoDB's records with what every host really has and fixes the records. */
  async reconcile(): Promise<void> {
    const probes = await this.hosts.probeAll();
    const byHost = new Map<string, DomainListing[]>();
    for (const p of probes) {
      if (!p.reachable) {
        this.log.warn({ host: p.name, err: p.error }, "libvirt host unreachable at start-up");
        this.hostDownSince.set(p.name, Date.now());
        continue;
      }
      byHost.set(
        p.name,
        p.domains.map((d) => ({ host: p.name, name: d.name, uuid: d.uuid, state: d.state })),
      );
    }
    const configured = listConfiguredVms(this.config);
    const memOf = new Map(configured.map((v) => [v.name, v.memoryMiB]));
    for (const [host, list] of byHost) {
      for (const d of list) {
        if (memOf.has(d.name)) {
          this.placements.set(d.name, {
            vm: d.name,
            host,
            memoryMiB: memOf.get(d.name) ?? 0,
            running: d.state === "running",
          });
        }
      }
    }
    let records;
    try {
      records = await this.store.listRecords();
    } catch (e) {
      this.log.warn({ err: errorMessage(e) }, "reconciliation skipped: MongoDB unreachable");
      return;
    }
    const actions = reconcile(
      records,
      byHost,
      configured.map((v) => ({ dpidHex: v.dpidHex, name: v.name })),
    );
    for (const a of actions) {
      if ("patch" in a) await this.store.patchRecord(a.dpidHex, a.patch);
      if (a.type === "duplicate" || a.type === "conflict" || a.type === "unreachable") {
        this.log.warn({ action: a }, "reconciliation found a problem it will not fix by itself");
      }
    }
    for (const r of records) {
      if (r.vmName) this.vmDpid.set(r.vmName, r.dpidHex);
      // The record's fingerprint is written only once its domain was defined from that config (ensure).
      if (r.vmName && r.host && r.uuid && r.configFingerprint)
        this.definedAs.set(r.vmName, `${r.host} ${r.uuid} ${r.configFingerprint}`);
      if (r.vmName && r.host && !this.placements.has(r.vmName) && byHost.has(r.host) === false) {
        // The record's host did not answer: keep the VM there (stable placement) until it is gone for good.
        this.placements.set(r.vmName, { vm: r.vmName, host: r.host, memoryMiB: memOf.get(r.vmName) ?? 0 });
      }
    }
    this.log.info({ records: records.length, actions: actions.length }, "reconciled MongoDB with libvirt");
    this.emit("reconciled", { actions: actions.length });
  }

  private watchLibvirt(): void {
    for (const h of this.config.hosts) {
      const ev = new LibvirtEvents({ host: { name: h.name, uri: h.uri }, log: this.log });
      ev.on("event", (e: DomainEvent) => void this.onDomainEvent(e));
      ev.on("error", (e: unknown) =>
        this.log.debug({ host: h.name, err: errorMessage(e) }, "libvirt events"),
      );
      ev.start();
      this.events.push(ev);
    }
  }

  private async onDomainEvent(e: DomainEvent): Promise<void> {
    if (e.type === "other") return;
    const vm = listConfiguredVms(this.config).find((v) => v.name === e.domain);
    if (!vm) return;
    let state: VmState | undefined;
    if (e.type === "lifecycle") {
      if (e.event === "Stopped") state = e.detail.includes("Saved") ? "suspended" : "stopped";
      else if (e.event === "Undefined") state = "missing";
      else if (e.event === "Crashed") state = "failed";
    } else if (e.state === "undefined") state = "missing";
    else if (e.state === "shutoff") state = "stopped";
    if (!state) return;
    if (this.queue.runningOf(vm.dpidHex) || this.queue.pendingOf(vm.dpidHex)) return;
    await this.store.patchRecord(vm.dpidHex, { state }).catch(() => undefined);
  }

  private onUp(e: UpEvent): void {
    const dpidHex = dpidToHex(e.dpid);
    const joinedAt = performance.now();
    this.metrics.joins.inc();
    this.connected.set(dpidHex, e);
    this.metrics.datapathsUp.set(this.connected.size);
    const timer = this.leaveTimers.get(dpidHex);
    if (timer) {
      clearTimeout(timer);
      this.leaveTimers.delete(dpidHex);
      // A pending leave that has not run yet is dropped: the switch is back.
      if (this.queue.pendingOf(dpidHex)?.kind === "leave") this.queue.cancel(dpidHex);
    }
    let vm: ResolvedVm | undefined;
    try {
      vm = resolveDatapath(
        this.config,
        e.dpid,
        e.ports.map((p) => p.no),
      );
    } catch (err) {
      this.log.error({ dpid: dpidHex, err: errorMessage(err) }, "cannot derive a VM for this datapath");
      this.emit("ignored", { dpidHex, reason: errorMessage(err) });
      return;
    }
    if (!vm) {
      this.log.info({ dpid: dpidHex, peer: e.peer }, "datapath has no VM in the config: ignored (policy)");
      this.emit("ignored", { dpidHex, reason: "unknown datapath" });
      void this.store.logEvent({ dpid: dpidHex, kind: "ignored", detail: `peer ${e.peer}` }).catch(() => {});
      return;
    }
    this.recordJoin(dpidHex, e, vm);
    this.submitEnsure(dpidHex, vm, joinedAt);
  }

  /** recordJoin writes a datapath's join (switch peer, version, ports, VM identity) to its record and the log. */
  private recordJoin(dpidHex: string, e: UpEvent, vm: ResolvedVm): void {
    this.log.info({ dpid: dpidHex, vm: vm.name, peer: e.peer, version: e.version }, "datapath joined");
    this.emit("joined", { dpidHex, vm: vm.name, peer: e.peer });
    // Records keep the wire version (1 = 1.0 ... 6 = 1.5), as OpenFlow numbers it.
    const sw = { peer: e.peer, version: wireVersion(e.version), connected: true };
    const ports = e.ports.map((p) => {
      const mapped = vm.ports.find((q) => q.dpPort === p.no);
      return { dpPort: p.no, name: p.name, hwAddr: p.mac, ...(mapped ? { vmPort: mapped.vmPort } : {}) };
    });
    void this.store
      .patchRecord(dpidHex, {
        joinedAt: new Date(),
        switch: sw,
        ports,
        vmName: vm.name,
        vmId: vm.vmId.toString(10),
        vmMac: vm.vmMac,
        hypervisor: vm.hypervisor,
        owner: this.instanceId,
      })
      .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, "record update failed"));
    void this.store.logEvent({ dpid: dpidHex, vm: vm.name, kind: "join", detail: e.peer }).catch(() => {});
  }

  private submitEnsure(dpidHex: string, vm: ResolvedVm, joinedAt: number): void {
    this.vmDpid.set(vm.name, dpidHex);
    let host: string;
    try {
      host = place(
        { vm: vm.name, memoryMiB: vm.memoryMiB, ...(vm.hostPin ? { pin: vm.hostPin } : {}) },
        this.candidateCapacities(vm),
        [...this.placements.values()],
      ).host;
    } catch (err) {
      this.fail(dpidHex, vm, err, "placement");
      return;
    }
    this.placements.set(vm.name, { vm: vm.name, host, memoryMiB: vm.memoryMiB });
    void this.queue.submit(dpidHex, { kind: "ensure", vm, host, joinedAt });
  }

  /** startGate is the host's limit on concurrent define/start (maxConcurrentStarts, read at first use). */
  private startGate(host: string): Gate {
    let g = this.startGates.get(host);
    if (!g) {
      g = new Gate(this.config.hosts.find((h) => h.name === host)?.maxConcurrentStarts ?? 1);
      this.startGates.set(host, g);
    }
    return g;
  }

  /**
   * candidateCapacities: the hosts whose drivers can run this VM's hypervisor. The host the VM is placed on
   * counts as reachable even when lost, unless the hostLoss policy is `replace` and it has been lost for
   * `afterSeconds`: until then a VM stays where its disk and definition are (retries go there).
   */
  private candidateCapacities(vm: ResolvedVm) {
    const ok = new Set(hostsFor(this.config, vm).map((h) => h.name));
    const stay = this.placements.get(vm.name)?.host;
    const keep = stay !== undefined && !this.mayLeave(stay);
    return this.hosts
      .capacities()
      .filter((c) => ok.has(c.name))
      .map((c) => (keep && c.name === stay ? { ...c, reachable: true } : c));
  }

  /** mayLeave: the hostLoss policy allows re-placing the VMs of this (lost) host now. */
  private mayLeave(host: string): boolean {
    const policy = this.config.policies.hostLoss;
    const since = this.hostDownSince.get(host);
    return (
      policy.action === "replace" && since !== undefined && Date.now() - since >= policy.afterSeconds * 1000
    );
  }

  private onDown(e: DownEvent): void {
    const dpidHex = dpidToHex(e.dpid);
    this.metrics.leaves.inc();
    this.connected.delete(dpidHex);
    this.metrics.datapathsUp.set(this.connected.size);
    const retry = this.retryTimers.get(dpidHex);
    if (retry) clearTimeout(retry);
    this.retryTimers.delete(dpidHex);
    const vm = resolveDatapath(this.config, e.dpid, []);
    this.log.info({ dpid: dpidHex, vm: vm?.name, reason: e.reason }, "datapath left");
    if (!vm) return;
    void this.store
      .patchRecord(dpidHex, { leftAt: new Date(), switch: { connected: false } })
      .catch(() => undefined);
    void this.store.logEvent({ dpid: dpidHex, vm: vm.name, kind: "leave", detail: e.reason }).catch(() => {});
    const policy = this.config.policies.leave;
    if (policy.action === "keep") return;
    const old = this.leaveTimers.get(dpidHex);
    if (old) clearTimeout(old);
    const t = setTimeout(() => {
      this.leaveTimers.delete(dpidHex);
      if (this.connected.has(dpidHex) || this.stopped) return;
      const host = this.placements.get(vm.name)?.host;
      if (!host) return;
      void this.queue.submit(dpidHex, { kind: "leave", vm, host, action: policy.action });
    }, policy.graceSeconds * 1000);
    t.unref();
    this.leaveTimers.set(dpidHex, t);
  }

  private onPort(e: PortEvent): void {
    const dpidHex = dpidToHex(e.dpid);
    this.log.info(
      { dpid: dpidHex, port: e.port.no, name: e.port.name, reason: e.reason },
      "switch port changed",
    );
    void this.store
      .logEvent({ dpid: dpidHex, kind: "port", detail: `${e.reason} ${e.port.no} ${e.port.name}` })
      .catch(() => {});
  }

  private async ensure(
    dpidHex: string,
    a: Extract<DaemonAction, { kind: "ensure" }>,
  ): Promise<EnsureOutcome> {
    const { vm, host } = a;
    const hostCfg = this.config.hosts.find((h) => h.name === host);
    try {
      if (!hostCfg) throw new PlacementError(`host ${host} is no longer configured`, vm.name, {});
      const claimed = await this.claim(dpidHex);
      if (!claimed) {
        this.log.info({ dpid: dpidHex, vm: vm.name }, "another rfboot instance holds this datapath's lease");
        this.scheduleRetry(dpidHex, vm, this.leaseTtlMs);
        return { dpidHex, vm: vm.name, host, action: "leased-elsewhere", reactionMs: 0 };
      }
      // RouteFlow's rows go first: rfserver must find them when the VM's rfclient registers.
      await this.store.upsertRfconfigRows(rfconfigRows(vm));
      const plan = vm.plan(hostCfg);
      const xml = buildDomainXml(plan.description);
      const uuid = plan.description.uuid ?? "";
      const fingerprint = configHash(vm);
      const definedAs = `${host} ${uuid} ${fingerprint}`;
      // An existing domain already defined from this very VM config is not redefined (a no-op `virsh define`
      // per rejoin or restart); a changed VM (SIGHUP) or an unknown definition is, and takes it at next start.
      const redefine = this.definedAs.get(vm.name) !== definedAs;
      // The fingerprint says what the domain was defined from: written now only when that is already true,
      // otherwise once `define` succeeded (a failed redefine must not leave the new config's fingerprint).
      void this.store
        .patchRecord(dpidHex, { host, uuid, ...(redefine ? {} : { configFingerprint: fingerprint }) })
        .catch(() => undefined);
      const manager = this.hosts.manager(host);
      const readinessFrom = await this.consoleOffset(plan.consoleLog);
      const disk = lifecycleDisk(vm, hostCfg);
      const res = await this.startGate(host).run(() =>
        manager.ensureRunning({
          name: vm.name,
          uuid,
          xml,
          redefine,
          ...(disk ? { disk } : {}),
          // `starting` only when rfboot really defines/starts/resumes: an adopted VM never reads `starting`.
          onStarting: () =>
            void this.store.patchRecord(dpidHex, { state: "starting" }).catch(() => undefined),
          onDefined: (at) =>
            void this.store
              .patchRecord(dpidHex, { definedAt: at, configFingerprint: fingerprint })
              .catch(() => undefined),
        }),
      );
      this.definedAs.set(vm.name, definedAs);
      const t = res.timings;
      const sinceJoin = performance.now() - a.joinedAt;
      const reactionMs = sinceJoin - t.totalMs + (t.stateMs ?? 0) + (t.diskMs ?? 0) + (t.defineMs ?? 0);
      this.metrics.reactionSeconds.observe(reactionMs / 1000);
      this.metrics.bootSeconds.observe(sinceJoin / 1000);
      this.metrics.boots.inc({ action: res.action, host });
      const patch: RecordPatch = { state: "running", host, lastError: null, attempts: 0 };
      // startedAt: when this attempt's start/resume completed (definedAt was written when define completed).
      if (res.startedAt) patch.startedAt = res.startedAt;
      // Not awaited: the VM runs now whatever the database says; the outbox writes the record (merged with
      // the join's and `starting`'s patches during a burst) and this store reads its own pending writes.
      void this.store.patchRecord(dpidHex, patch).catch(() => undefined);
      this.placements.set(vm.name, { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: true });
      this.retryDelay.delete(dpidHex);
      this.attempts.delete(dpidHex);
      this.ensuredAt.set(dpidHex, Date.now());
      void this.store
        .logEvent({ dpid: dpidHex, vm: vm.name, kind: "boot", detail: `${res.action} on ${host}` })
        .catch(() => {});
      this.log.info(
        {
          dpid: dpidHex,
          vm: vm.name,
          host,
          action: res.action,
          reactionMs: Math.round(reactionMs * 100) / 100,
        },
        "VM running",
      );
      const out = { dpidHex, vm: vm.name, host, action: res.action, reactionMs };
      this.emit("ensured", out);
      // An adopted VM that was ready since its last start stays ready: after a restore it never prints its
      // boot marker again, and a running guest's PortRegister is long gone from the capped IPC channel.
      let mode: ReadinessMode = res.restored || res.action === "resumed" ? "restored" : "boot";
      if (res.action === "adopted") {
        const rec = await this.store.getRecord(dpidHex).catch(() => undefined);
        const readyAt = rec?.readyAt ? new Date(rec.readyAt).getTime() : undefined;
        const startedAt = rec?.startedAt ? new Date(rec.startedAt).getTime() : 0;
        if (readyAt !== undefined && readyAt >= startedAt) mode = "was-ready";
      }
      this.watchReadiness(
        dpidHex,
        vm,
        plan.consoleLog,
        res.action === "adopted" ? 0 : readinessFrom,
        a.joinedAt,
        mode,
      );
      return out;
    } catch (err) {
      this.definedAs.delete(vm.name);
      this.fail(dpidHex, vm, err, "ensure");
      throw err;
    }
  }

  private async leave(dpidHex: string, a: Extract<DaemonAction, { kind: "leave" }>): Promise<LeaveOutcome> {
    try {
      const outcome = await this.hosts.manager(a.host).leave(a.vm.name, a.action);
      const state = STATE_OF_LEAVE[outcome];
      await this.store.patchRecord(dpidHex, state ? { state } : {});
      void this.store
        .logEvent({ dpid: dpidHex, vm: a.vm.name, kind: "leave-policy", detail: `${a.action}: ${outcome}` })
        .catch(() => {});
      this.log.info({ dpid: dpidHex, vm: a.vm.name, action: a.action, outcome }, "leave policy applied");
      this.emit("left", { dpidHex, vm: a.vm.name, outcome });
      this.readinessAborts.get(dpidHex)?.abort();
      return outcome;
    } catch (err) {
      this.fail(dpidHex, a.vm, err, "leave");
      throw err;
    }
  }

  private fail(dpidHex: string, vm: ResolvedVm | undefined, err: unknown, step: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    const kind = errorKind(err);
    this.metrics.failures.inc({ step, kind });
    const attempts = step === "leave" ? 1 : (this.attempts.get(dpidHex) ?? 0) + 1;
    if (step !== "leave") this.attempts.set(dpidHex, attempts);
    void this.store
      .patchRecord(dpidHex, {
        state: "failed",
        lastError: { kind, message: error.message, at: new Date() },
        attempts,
      })
      .catch(() => undefined);
    void this.store
      .logEvent({ dpid: dpidHex, vm: vm?.name, kind: "error", detail: `${step}: ${kind}: ${error.message}` })
      .catch(() => {});
    let retryInMs: number | undefined;
    if (vm && step !== "leave" && this.connected.has(dpidHex) && !this.stopped) {
      const prev = this.retryDelay.get(dpidHex);
      retryInMs =
        prev === undefined
          ? (this.opts.retryInitialMs ?? 1000)
          : Math.min(prev * 2, this.opts.retryMaxMs ?? 30_000);
      this.retryDelay.set(dpidHex, retryInMs);
      this.scheduleRetry(dpidHex, vm, retryInMs);
    }
    this.log.error(
      { dpid: dpidHex, vm: vm?.name, step, kind, err: error.message, attempts, retryInMs },
      "provisioning failed",
    );
    this.emit("failed", { dpidHex, vm: vm?.name, error, ...(retryInMs !== undefined ? { retryInMs } : {}) });
  }

  private scheduleRetry(dpidHex: string, vm: ResolvedVm, ms: number): void {
    const old = this.retryTimers.get(dpidHex);
    if (old) clearTimeout(old);
    const t = setTimeout(() => {
      this.retryTimers.delete(dpidHex);
      if (!this.connected.has(dpidHex) || this.stopped) return;
      this.submitEnsure(dpidHex, vm, performance.now());
    }, ms);
    t.unref();
    this.retryTimers.set(dpidHex, t);
  }

  private async claim(dpidHex: string): Promise<boolean> {
    if (!this.store.stats().online) {
      // Known outage (the outbox is buffering): do not spend a server-selection timeout per VM finding out.
      this.log.warn({ dpid: dpidHex }, "lease not checked: MongoDB unreachable");
      return true;
    }
    try {
      let ok = await this.store.claim(dpidHex, this.instanceId, this.leaseTtlMs);
      if (!ok && (await this.releaseDeadLocalLease(dpidHex))) {
        ok = await this.store.claim(dpidHex, this.instanceId, this.leaseTtlMs);
      }
      if (ok) this.leased.add(dpidHex);
      return ok;
    } catch (e) {
      // MongoDB down: act anyway (boot VMs while the database is away); the record is written later.
      if (isOutage(e)) {
        this.log.warn({ dpid: dpidHex, err: errorMessage(e) }, "lease not checked: MongoDB unreachable");
        return true;
      }
      // MongoDB answered and refused (or the store is closed): whether another instance holds this datapath
      // is unknown, so its VM is not booted; `fail` records the cause and retries with backoff.
      throw new StoreError(
        `lease of datapath ${dpidHex} could not be checked: ${errorMessage(e)}; its VM is not booted until the lease can be claimed`,
        "claim",
        { cause: e },
      );
    }
  }

  /**
   * releaseDeadLocalLease frees a lease held under the default instance id (`hostname:pid`) of a process of
   * this machine that no longer runs: an rfboot that was killed and restarted (new pid) must not wait out its
   * own predecessor's lease (leaseTtl) before it may act. Leases of other machines, of live processes and
   * of explicit `--instance` ids are left to expire. Returns true when it released one.
   */
  private async releaseDeadLocalLease(dpidHex: string): Promise<boolean> {
    const lease = await this.store.lease(dpidHex);
    if (!lease || lease.owner === this.instanceId) return false;
    const m = /^(.*):(\d+)$/.exec(lease.owner);
    if (!m || m[1] !== hostname() || lease.expiresAt.getTime() <= Date.now()) return false;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) return false;
    const released = await this.store.release(dpidHex, lease.owner);
    if (released) {
      this.log.warn(
        { dpid: dpidHex, previous: lease.owner },
        "took over the lease of a dead rfboot process of this machine",
      );
    }
    return released;
  }

  /**
   * checkHosts probes every libvirt host once (every `policies.hostLoss.probeSeconds`): a host that stops
   * answering is reported (log, event `host-lost`, lastError `host-unreachable` on its VMs' records); with
   * `replace`, once it has been lost for `afterSeconds`, the VMs of connected switches are placed and started
   * elsewhere. A VM of a connected switch that is gone from its reachable host (undefined; or not running
   * right after the host came back, e.g. it rebooted) is ensured again. Concurrent calls share one round.
   */
  checkHosts(): Promise<void> {
    this.hostCheck ??= this.checkHostsOnce()
      .catch((e: unknown) => this.log.error({ err: errorMessage(e) }, "host check failed"))
      .finally(() => {
        this.hostCheck = undefined;
      });
    return this.hostCheck;
  }

  private async checkHostsOnce(): Promise<void> {
    if (this.stopped) return;
    const probes = await this.hosts.probeAll();
    for (const p of probes) {
      if (this.stopped) return;
      const since = this.hostDownSince.get(p.name);
      if (!p.reachable) {
        if (since === undefined) {
          this.hostDownSince.set(p.name, Date.now());
          this.onHostLost(p);
        }
        if (this.mayLeave(p.name)) this.replaceFrom(p.name);
        continue;
      }
      let back = false;
      if (since !== undefined) {
        back = true;
        this.hostDownSince.delete(p.name);
        await this.onHostBack(p, Date.now() - since);
      }
      this.converge(p, back);
    }
  }

  private vmsOn(host: string): string[] {
    return [...this.placements.values()].filter((p) => p.host === host).map((p) => p.vm);
  }

  private onHostLost(p: HostProbe): void {
    const vms = this.vmsOn(p.name);
    const error = p.error ?? "no answer";
    const policy = this.config.policies.hostLoss;
    this.log.error(
      { host: p.name, err: error, vms, policy: policy.action, afterSeconds: policy.afterSeconds },
      policy.action === "replace"
        ? "libvirt host unreachable: its VMs are re-placed if it stays away"
        : "libvirt host unreachable: its VMs are reported, not moved (policies.hostLoss.action: report)",
    );
    void this.store.logEvent({ kind: "host-lost", detail: `${p.name}: ${error}` }).catch(() => {});
    for (const vm of vms) {
      const dpidHex = this.vmDpid.get(vm);
      if (!dpidHex) continue;
      void this.store
        .patchRecord(dpidHex, {
          lastError: {
            kind: "host-unreachable",
            message: `libvirt host ${p.name} does not answer: ${error}`,
            at: new Date(),
          },
        })
        .catch(() => undefined);
    }
    this.emit("hostLost", { host: p.name, error, vms });
  }

  private replaceFrom(host: string): void {
    for (const vmName of this.vmsOn(host)) {
      const dpidHex = this.vmDpid.get(vmName);
      const up = dpidHex ? this.connected.get(dpidHex) : undefined;
      if (!dpidHex || !up || this.queue.runningOf(dpidHex) || this.queue.pendingOf(dpidHex)) continue;
      const vm = resolveDatapath(
        this.config,
        up.dpid,
        up.ports.map((x) => x.no),
      );
      if (!vm) continue;
      this.placements.delete(vmName);
      this.replacedFrom.set(vmName, host);
      this.log.warn({ dpid: dpidHex, vm: vmName, from: host }, "re-placing a VM of a lost libvirt host");
      void this.store
        .logEvent({ dpid: dpidHex, vm: vmName, kind: "replace", detail: `away from lost host ${host}` })
        .catch(() => {});
      this.emit("replaced", { dpidHex, vm: vmName, from: host });
      this.submitEnsure(dpidHex, vm, performance.now());
    }
  }

  private async onHostBack(p: HostProbe, downMs: number): Promise<void> {
    this.log.info({ host: p.name, downMs }, "libvirt host reachable again");
    void this.store.logEvent({ kind: "host-back", detail: `${p.name} after ${downMs} ms` }).catch(() => {});
    this.emit("hostBack", { host: p.name, downMs });
    // Ensures waiting out their backoff (up to retryMaxMs) for this host go now: it answers again.
    for (const [dpidHex, timer] of [...this.retryTimers]) {
      const up = this.connected.get(dpidHex);
      const vm = up
        ? resolveDatapath(
            this.config,
            up.dpid,
            up.ports.map((x) => x.no),
          )
        : undefined;
      if (!vm || this.placements.get(vm.name)?.host !== p.name) continue;
      clearTimeout(timer);
      this.retryTimers.delete(dpidHex);
      this.submitEnsure(dpidHex, vm, performance.now());
    }
    // A VM moved away while this host was lost may still run here (it lost its network, not its power):
    // two copies of one routing VM must not run, so the stale one is stopped (its definition is kept).
    for (const [vm, from] of [...this.replacedFrom]) {
      if (from !== p.name) continue;
      this.replacedFrom.delete(vm);
      const now = this.placements.get(vm)?.host;
      const there = p.domains.find((d) => d.name === vm);
      if (!now || now === p.name || !there || !isActive(there.state)) continue;
      try {
        await this.hosts.manager(p.name).leave(vm, "destroy");
        this.log.warn({ vm, host: p.name, runsOn: now }, "stopped the stale copy of a re-placed VM");
      } catch (e) {
        this.log.error({ vm, host: p.name, err: errorMessage(e) }, "could not stop the stale copy of a VM");
      }
    }
  }

  private converge(p: HostProbe, hostCameBack: boolean): void {
    for (const [dpidHex, up] of this.connected) {
      if (this.queue.runningOf(dpidHex) || this.queue.pendingOf(dpidHex) || this.retryTimers.has(dpidHex))
        continue;
      if ((this.ensuredAt.get(dpidHex) ?? 0) > p.probedAt.getTime()) continue;
      const vm = resolveDatapath(
        this.config,
        up.dpid,
        up.ports.map((x) => x.no),
      );
      if (!vm || this.placements.get(vm.name)?.host !== p.name) continue;
      const d = p.domains.find((x) => x.name === vm.name);
      if (d && (!hostCameBack || isActive(d.state))) continue;
      this.log.warn(
        { dpid: dpidHex, vm: vm.name, host: p.name, state: d?.state ?? "undefined" },
        "the VM of a connected switch is gone from its host: ensuring it again",
      );
      this.submitEnsure(dpidHex, vm, performance.now());
    }
  }

  /**
   * renewLeases keeps the leases of the datapaths this instance serves (switch connected, or an action
   * queued or running) and releases the others, so another instance can act for a switch that moved to it.
   */
  private async renewLeases(): Promise<void> {
    const keep: string[] = [];
    for (const d of this.leased) {
      if (!this.connected.has(d) && !this.queue.pendingOf(d) && !this.queue.runningOf(d)) {
        this.leased.delete(d);
        await this.store.release(d, this.instanceId).catch(() => undefined);
        continue;
      }
      keep.push(d);
    }
    if (keep.length === 0) return;
    try {
      // One scan and one update for all of them, not a round trip per datapath.
      const { lost } = await this.store.renewAll(this.instanceId, this.leaseTtlMs, undefined, keep);
      for (const d of lost) this.leased.delete(d);
    } catch {
      // unreachable: try again next round
    }
  }

  private async consoleOffset(path: string | undefined): Promise<number> {
    if (!path) return 0;
    try {
      const fh = await open(path, "r");
      try {
        return (await fh.stat()).size;
      } finally {
        await fh.close();
      }
    } catch {
      return 0;
    }
  }

  private watchReadiness(
    dpidHex: string,
    vm: ResolvedVm,
    consoleLog: string | undefined,
    from: number,
    joinedAt: number,
    mode: ReadinessMode = "boot",
  ): void {
    this.readinessAborts.get(dpidHex)?.abort();
    const ac = new AbortController();
    this.readinessAborts.set(dpidHex, ac);
    const r = this.config.readiness;
    const deadline = Date.now() + r.timeoutSeconds * 1000;
    const done = (via: string) => {
      if (ac.signal.aborted) return;
      ac.abort();
      const ms = performance.now() - joinedAt;
      if (mode !== "was-ready") this.metrics.readySeconds.observe(ms / 1000);
      // readyAt: when rfboot confirmed readiness for the current join (also for an adopted, was-ready VM).
      void this.store.patchRecord(dpidHex, { state: "ready", readyAt: new Date() }).catch(() => undefined);
      void this.store.logEvent({ dpid: dpidHex, vm: vm.name, kind: "ready", detail: via }).catch(() => {});
      this.log.info({ dpid: dpidHex, vm: vm.name, via, ms: Math.round(ms) }, "VM ready");
      this.emit("ready", { dpidHex, vm: vm.name, via, ms });
    };
    // Readiness that never comes is recorded (the domain runs, the guest did not show it booted); the VM is
    // left as it is for the operator (`rfboot status` shows the error), and the next join tries again.
    const timedOut = () => {
      if (ac.signal.aborted) return;
      ac.abort();
      const message = `not ready within readiness.timeoutSeconds (${r.timeoutSeconds} s): no console marker /${r.consoleMarker ?? ""}/${r.portRegister ? " nor PortRegister" : ""}`;
      this.metrics.failures.inc({ step: "readiness", kind: "readiness-timeout" });
      void this.store
        .patchRecord(dpidHex, { lastError: { kind: "readiness-timeout", message, at: new Date() } })
        .catch(() => undefined);
      void this.store
        .logEvent({ dpid: dpidHex, vm: vm.name, kind: "error", detail: `readiness: ${message}` })
        .catch(() => {});
      this.log.warn({ dpid: dpidHex, vm: vm.name }, message);
    };
    if (mode === "was-ready") {
      done("adopted (ready since its last start)");
      return;
    }
    if (mode === "restored") {
      // A guest restored from managedsave (or resumed) was ready when it stopped: it does not boot again, so
      // neither its boot marker nor rfclient's PortRegister comes back. Its first new console output proves
      // it runs; a guest that prints nothing is taken as ready after RESTORED_QUIET_MS.
      const quietUntil = Math.min(deadline, Date.now() + RESTORED_QUIET_MS);
      const watch = consoleLog
        ? watchConsoleMarker(consoleLog, /\S/, from, quietUntil, ac.signal)
        : Promise.resolve(false);
      void watch.then((hit) => done(hit ? "console (restored)" : "restored"));
      return;
    }
    if (r.consoleMarker && consoleLog) {
      void watchConsoleMarker(consoleLog, new RegExp(r.consoleMarker), from, deadline, ac.signal).then(
        (hit) => {
          if (hit) done("console");
          else if (!ac.signal.aborted && Date.now() >= deadline) timedOut();
        },
      );
    }
    if (r.portRegister) {
      const w = this.store.watchPortRegister(vm.vmId.toString(10), new Date(Date.now() - 1000), {
        expectPorts: vm.ports.map((p) => String(p.vmPort)),
        timeoutMs: Math.max(1, deadline - Date.now()),
      });
      ac.signal.addEventListener("abort", () => w.stop());
      w.ready.then(
        () => done("portregister"),
        () => {
          if (Date.now() >= deadline - 100) timedOut();
        },
      );
    }
  }

  /** reload applies a new config: new dpids act at once, changed VMs are redefined at their next start. */
  async reload(next: RfbootConfig): Promise<{ added: string[]; changed: string[]; removed: string[] }> {
    const before = new Map(listConfiguredVms(this.config).map((v) => [v.dpidHex, configHash(v)]));
    const after = new Map(listConfiguredVms(next).map((v) => [v.dpidHex, configHash(v)]));
    const added = [...after.keys()].filter((k) => !before.has(k));
    const removed = [...before.keys()].filter((k) => !after.has(k));
    const changed = [...after.keys()].filter((k) => before.has(k) && before.get(k) !== after.get(k));
    this.config = next;
    this.log.info({ added, changed, removed }, "configuration reloaded");
    // The controller reads the current config for its admission (refuse policy): drop what is now refused.
    for (const d of this.controller?.datapaths() ?? []) {
      const verdict = admitDatapath(next, d);
      if (verdict !== true)
        this.controller?.disconnect(d.dpid, `refused after reload: ${verdict || "policy"}`);
    }
    for (const dpidHex of [...added, ...changed]) {
      const up = this.connected.get(dpidHex);
      if (!up) continue;
      const vm = resolveDatapath(
        next,
        up.dpid,
        up.ports.map((p) => p.no),
      );
      if (!vm) continue;
      // A new VM boots now (its switch's join is recorded as if it had just joined); a changed one is
      // redefined (its running domain keeps going until its next start).
      if (added.includes(dpidHex)) this.recordJoin(dpidHex, up, vm);
      this.submitEnsure(dpidHex, vm, performance.now());
    }
    return { added, changed, removed };
  }

  /** connectedDatapaths lists the dpids whose switch is connected now. */
  connectedDatapaths(): string[] {
    return [...this.connected.keys()];
  }

  /** idle resolves when no provisioning action is queued or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** stop closes the controller, timers, watchers and the store (flushing what it can). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [...this.leaveTimers.values(), ...this.retryTimers.values()]) clearTimeout(t);
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.hostTimer) clearInterval(this.hostTimer);
    await this.hostCheck;
    for (const a of this.readinessAborts.values()) a.abort();
    await this.controller?.close().catch(() => undefined);
    this.queue.close();
    await Promise.all(this.events.map((e) => e.stop().catch(() => undefined)));
    for (const d of this.leased) await this.store.release(d, this.instanceId).catch(() => undefined);
    await this.hosts.dispose().catch(() => undefined);
    await this.store.close().catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** watchConsoleMarker polls a console log file from `from` until `re` matches, the deadline, or abort. */
export async function watchConsoleMarker(
  path: string,
  re: RegExp,
  from: number,
  deadline: number,
  signal: AbortSignal,
  intervalMs = 50,
): Promise<boolean> {
  let offset = from;
  let carry = "";
  while (!signal.aborted && Date.now() < deadline) {
    try {
      const fh = await open(path, "r");
      try {
        const { size } = await fh.stat();
        if (size < offset) offset = 0; // truncated by a new boot
        if (size > offset) {
          const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const text = carry + buf.subarray(0, bytesRead).toString("latin1");
          if (re.test(text)) return true;
          carry = text.slice(-256);
        }
      } finally {
        await fh.close();
      }
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return false;
}
