/**
 * The daemon: wires the controller (switch joins and leaves) to placement, libvirt and MongoDB.
 *
 * One datapath's life: `up` -> record `joined` -> queue `ensure` (coalesced per dpid, limited per host) ->
 * lease claimed -> rfconfig rows upserted (before the VM starts) -> XML -> define + start (or adopt/resume) ->
 * record `running` -> readiness (console marker and/or rfclient PortRegister) -> `ready`. `down` -> after the
 * leave policy's grace period, queue `leave` (keep, shutdown, destroy, suspend). A failed `ensure` is recorded
 * with its cause and retried with backoff while the switch stays connected.
 *
 * The logic lives in its parts, each taking the shared DaemonContext (clock, store, hosts, datapaths):
 * `datapath.ts` (one object per dpid), `provisioning.ts` (join, leave, ensure, retry), `lease-keeper.ts`,
 * `host-health.ts`, `vm-readiness.ts` and `startup-reconcile.ts`. This file builds them and routes events to
 * them.
 */
import { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { dpidToHex } from "../common/dpid.js";
import { errorMessage } from "../common/errors.js";
import { silentLogger, type Logger } from "../common/log.js";
import type { Controller, DatapathInfo, DownEvent, PortEvent, UpEvent } from "../controller/index.js";
import { every, systemClock, type Cancel, type DaemonClock } from "./clock.js";
import {
  configHash,
  listConfiguredVms,
  resolveDatapath,
  type HostConfig,
  type ResolvedVm,
  type RfbootConfig,
} from "./config/index.js";
import { DataPlane } from "./dataplane.js";
import { Recorder, type DaemonContext, type DaemonEvents, type EmitFn } from "./daemon-context.js";
import { DatapathTable, statusOf, type DatapathStatus } from "./datapath.js";
import { HostHealth } from "./host-health.js";
import { leaseRenewMs } from "./lease-keeper.js";
import {
  createSpawnRunner,
  HostRegistry,
  LibvirtEvents,
  NicHotplug,
  recordStateOf,
  type DomainEvent,
  type VirshRunner,
} from "./libvirt/index.js";
import { Metrics } from "./metrics.js";
import { ovsVsctl, type OvsSeam } from "./ovs.js";
import { countPrewarmed, Prewarmer } from "./prewarm.js";
import { Provisioning, type DefineAheadResult } from "./provisioning.js";
import { reconcileAtStart } from "./startup-reconcile.js";
import { MongoStore, type DaemonStore } from "./store/index.js";
import { ReadinessWatcher, type ConsoleReader, type DomainConsoleWatch } from "./vm-readiness.js";
import { VmKeeper } from "./vm-keeper.js";
import { admitDatapath } from "./wiring.js";

export type { DaemonEvents, EnsureOutcome } from "./daemon-context.js";
export type { DatapathStatus } from "./datapath.js";
export type { DaemonAction } from "./provisioning.js";
export { watchConsoleMarker } from "./vm-readiness.js";

/**
 * SwitchSource is what the daemon needs of the controller: its up/down/port events, start, close, the
 * connected datapaths and a way to drop one. The Controller implements it; tests pass a scripted one.
 */
export interface SwitchSource {
  on(event: "up", listener: (e: UpEvent) => void): unknown;
  on(event: "down", listener: (e: DownEvent) => void): unknown;
  on(event: "port", listener: (e: PortEvent) => void): unknown;
  start(): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
  datapaths(): DatapathInfo[];
  disconnect(dpid: bigint, reason: string): unknown;
}

/** STOP_ACTIONS_MS bounds how long stop() waits for the joins and leaves under way. */
const STOP_ACTIONS_MS = 30_000;

/** DaemonOptions configure a Daemon; only `config` is required. */
export interface DaemonOptions {
  config: RfbootConfig;
  logger?: Logger;
  metrics?: Metrics;
  /** instanceId names this rfboot in leases and records (default `hostname:pid`). */
  instanceId?: string;
  /** controller: an already-built controller (tests); default built from `config.openflow`. */
  controller?: SwitchSource;
  /** createController builds the controller from the config (the daemon does not import sockets itself). */
  createController?: (config: RfbootConfig, logger: Logger, current?: () => RfbootConfig) => Controller;
  /** store: default a MongoStore opened from `config.mongo`. */
  store?: DaemonStore;
  runner?: VirshRunner;
  /** ovs: this machine's Open vSwitch, for the data plane of data-plane hosts (default ovs-vsctl). */
  ovs?: OvsSeam;
  leaseTtlMs?: number;
  /** retry backoff of failed ensures (ms): first delay and cap. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Watch libvirt lifecycle events (`virsh event --loop`) to keep records current (default true). */
  watchLibvirtEvents?: boolean;
  /** clock: time and timers of every part (default the system clock); tests pass a fake one. */
  clock?: DaemonClock;
  /** console reads VMs' console logs for readiness (default the local files). */
  console?: ConsoleReader;
  /** domainConsole reads a domain's console through libvirt for readiness (default virsh console). */
  domainConsole?: DomainConsoleWatch;
  /** prewarm backoff of failed prewarms (ms): first delay and cap (default 30 s and 10 min). */
  prewarmBackoffInitialMs?: number;
  prewarmBackoffMaxMs?: number;
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
  private readonly clock: DaemonClock;
  private readonly datapaths = new DatapathTable();
  private controller: SwitchSource | undefined;
  private ctx: DaemonContext | undefined;
  private provisioning: Provisioning | undefined;
  private health: HostHealth | undefined;
  private keeper: VmKeeper | undefined;
  private prewarmer: Prewarmer | undefined;
  private readonly hotplug: NicHotplug;
  private readonly dataPlane: DataPlane;
  private readonly timers: Cancel[] = [];
  private readonly events = new Map<string, LibvirtEvents>();
  private readonly leaseTtlMs: number;
  private readonly opts: DaemonOptions;
  private stopped = false;
  private prepared: Promise<void> = Promise.resolve();
  private listeningAt: { host: string; port: number } | undefined;

  constructor(opts: DaemonOptions) {
    super();
    this.opts = opts;
    this.config = opts.config;
    this.log = opts.logger ?? silentLogger;
    this.metrics = opts.metrics ?? new Metrics({ defaultMetrics: false });
    this.instanceId = opts.instanceId ?? `${hostname()}:${process.pid}`;
    this.leaseTtlMs = opts.leaseTtlMs ?? 30_000;
    this.clock = opts.clock ?? systemClock;
    this.hotplug = new NicHotplug({ run: opts.runner ?? createSpawnRunner(), log: this.log });
    this.dataPlane = new DataPlane({ ovs: opts.ovs ?? ovsVsctl(), log: this.log });
    this.hosts = new HostRegistry({
      hosts: this.config.hosts,
      run: opts.runner,
      log: this.log,
      date: () => this.clock.date(),
    });
  }

  /** start probes the hosts, reconciles MongoDB with them, then accepts switches. */
  async start(): Promise<{ host: string; port: number } | undefined> {
    await mkdir(this.config.stateDir, { recursive: true, mode: 0o750 });
    // In the background: a host that does not answer must not hold up the start; the first ensure placed on
    // a host waits for the same pool check (it is shared), and the sweep never touches a live builder's volume.
    this.prepared = Promise.all(this.config.hosts.map((h) => this.prepareHost(h))).then(() => undefined);
    this.store =
      this.opts.store ??
      (await MongoStore.open({
        uri: this.config.mongo.uri,
        database: this.config.mongo.database,
        prefix: `${this.config.mongo.collectionPrefix}_`,
        owner: this.instanceId,
        logger: this.log,
        stateDir: this.config.stateDir,
        rfconfigConflicts: this.config.policies.rfconfigConflicts,
      }));
    this.store.on("offline", (e: unknown) =>
      this.log.warn({ err: errorMessage(e) }, "MongoDB unreachable: buffering writes"),
    );
    this.store.on("online", () => this.log.info("MongoDB reachable again: flushing buffered writes"));
    const ctx = this.context();
    const readiness = new ReadinessWatcher(ctx, this.opts.console, this.opts.domainConsole);
    const provisioning: Provisioning = new Provisioning(ctx, readiness, {
      leaseTtlMs: this.leaseTtlMs,
      retryInitialMs: this.opts.retryInitialMs ?? 1000,
      retryMaxMs: this.opts.retryMaxMs ?? 30_000,
      mayLeave: (h: string): boolean => health.mayLeave(h),
    });
    const health: HostHealth = new HostHealth(ctx, provisioning);
    this.provisioning = provisioning;
    this.health = health;
    this.keeper = new VmKeeper(ctx, provisioning, this.hotplug);
    await this.reconcile();
    // Before the controller listens: no switch joins before the configured VMs' rows were handed over.
    await provisioning.rowsAhead.write(listConfiguredVms(this.config));
    const ahead = this.defineAhead(listConfiguredVms(this.config));
    // Prewarm (policies.prewarm) works through the queue from now on: a switch joining meanwhile waits for it.
    this.prewarmer = new Prewarmer(
      ctx,
      {
        submit: (dp, vm, host) => provisioning.submitPrewarm(dp, vm, host),
        busy: (dp) => provisioning.busy(dp),
        dropImage: (dp, vm, why) => provisioning.dropImage(dp, vm, why),
      },
      {
        ...(this.opts.prewarmBackoffInitialMs !== undefined
          ? { backoffInitialMs: this.opts.prewarmBackoffInitialMs }
          : {}),
        ...(this.opts.prewarmBackoffMaxMs !== undefined
          ? { backoffMaxMs: this.opts.prewarmBackoffMaxMs }
          : {}),
      },
    );
    countPrewarmed(ctx);
    // Once the domains ahead are made: a dpid with an action under way is not prewarmed.
    void ahead.then(() => this.prewarmer?.kick());
    if (this.opts.watchLibvirtEvents !== false) for (const h of this.config.hosts) this.watchLibvirt(h);
    this.timers.push(
      every(this.clock, leaseRenewMs(this.leaseTtlMs), () => void provisioning.renewLeases()),
      every(this.clock, this.config.policies.hostLoss.probeSeconds * 1000, () => void health.check()),
    );
    this.controller =
      this.opts.controller ?? this.opts.createController?.(this.config, this.log, () => this.config);
    if (!this.controller) return undefined;
    this.controller.on("up", (e) => this.onUp(e));
    this.controller.on("down", (e) => this.onDown(e));
    this.controller.on("port", (e) => this.onPort(e));
    const addr = await this.controller.start();
    this.listeningAt = addr;
    this.log.info({ ...addr, mode: this.config.openflow.mode }, "accepting switches");
    return addr;
  }

  private context(): DaemonContext {
    const emit: EmitFn = (event, ...args) => {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    };
    this.ctx = {
      config: () => this.config,
      log: this.log,
      metrics: this.metrics,
      instanceId: this.instanceId,
      clock: this.clock,
      store: this.store,
      record: new Recorder(this.store, this.log),
      hosts: this.hosts,
      dataPlane: this.dataPlane,
      datapaths: this.datapaths,
      emit,
      stopped: () => this.stopped,
      reconnect: (dpid, reason) => this.controller?.disconnect(dpid, reason) === true,
    };
    return this.ctx;
  }

  /** parts returns the parts built by start(); calling anything that needs them earlier is a bug. */
  private parts(): { ctx: DaemonContext; provisioning: Provisioning; health: HostHealth } {
    if (!this.ctx || !this.provisioning || !this.health) throw new Error("Daemon.start() has not run");
    return { ctx: this.ctx, provisioning: this.provisioning, health: this.health };
  }

  /**
   * prepareHost ensures a host's storage pools (disks, console logs) through libvirt and deletes the volumes
   * half-built by a crashed run. A host that cannot be reached now is not fatal: its pools are ensured at
   * the first ensure placed there.
   */
  private async prepareHost(h: HostConfig): Promise<void> {
    try {
      const storage = this.hosts.storage(h.name);
      await storage.ready();
      // A volume half-built by an rfboot killed mid-build is garbage: no domain refers to it yet.
      const swept = await storage.sweep();
      if (swept.length > 0)
        this.log.warn({ host: h.name, volumes: swept }, "removed half-built disks of a crashed run");
    } catch (e) {
      this.log.warn(
        { host: h.name, err: errorMessage(e) },
        "host storage not prepared now; retried at first use",
      );
    }
  }

  /** reconcile compares MongoDB's records with what every host really has and fixes the records. */
  async reconcile(): Promise<void> {
    const { ctx, health } = this.parts();
    const actions = await reconcileAtStart(ctx, health);
    if (actions !== undefined) this.emit("reconciled", { actions });
  }

  private watchLibvirt(h: { name: string; uri: string }): void {
    const ev = new LibvirtEvents({ host: { name: h.name, uri: h.uri }, log: this.log });
    ev.on("event", (e: DomainEvent) => this.domainEvent(e));
    ev.on("error", (e: unknown) => this.log.debug({ host: h.name, err: errorMessage(e) }, "libvirt events"));
    ev.start();
    this.events.set(h.name, ev);
  }

  /**
   * domainEvent takes one libvirt domain event, as each host's watcher delivers them (`virsh event --loop`
   * and its polling): the record follows the state, and a VM that stopped while its switch is connected is
   * started again (policies.vmStopped). Public so that an embedder without the watcher (tests) can feed it.
   */
  domainEvent(e: DomainEvent): void {
    const { ctx, provisioning } = this.parts();
    const known = this.datapaths.byVm(e.domain);
    if (known) provisioning.domainEvent(known, e);
    const state = recordStateOf(e);
    if (!state) return;
    let dp = this.datapaths.byVm(e.domain);
    if (!dp) {
      // A configured VM not seen yet (its switch never joined, no record): its record is still kept current.
      const vm = listConfiguredVms(this.config).find((v) => v.name === e.domain);
      if (!vm) return;
      dp = this.datapaths.obtain(vm.dpidHex);
      dp.vmName = vm.name;
    }
    // An action under way writes the state itself; libvirt's report of its intermediate steps must not.
    if (provisioning.busy(dp)) return;
    // A prewarmed VM is shut off with its image: libvirt's "saved" or a probe's "shut off" say no more.
    if (dp.prewarmImage && (state === "suspended" || state === "stopped")) return;
    ctx.record.patch(dp.dpidHex, { state });
    if (state === "stopped" || state === "failed") this.keeper?.vmStopped(dp, describeEvent(e));
  }

  /**
   * defineAhead queues, for each configured VM whose switch is not connected, its domain defined (or its
   * state read) ahead of the join (policies.defineAhead), behind any action of that dpid; a join replaces
   * one still queued. Resolves when they are done (they never reject: a failure is logged, and left to
   * the join).
   */
  private async defineAhead(vms: readonly ResolvedVm[]): Promise<void> {
    const { defineAhead: domain, leaseAhead: lease } = this.config.policies;
    if (!domain && !lease) return;
    const { provisioning } = this.parts();
    const queued: Promise<DefineAheadResult | undefined>[] = [];
    for (const vm of vms) {
      const q = provisioning.submitDefineAhead(this.datapaths.obtain(vm.dpidHex), vm, { domain, lease });
      if (q) queued.push(q);
    }
    if (queued.length === 0) return;
    const t0 = this.clock.now();
    const done = await Promise.allSettled(queued);
    const results = done.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
    this.log.info(
      {
        vms: queued.length,
        defined: results.filter((r) => r.outcome === "defined").length,
        read: results.filter((r) => r.outcome === "known").length,
        leased: results.filter((r) => r.leased).length,
        ms: Math.round(this.clock.now() - t0),
      },
      "configured VMs readied ahead of their joins",
    );
  }

  private onUp(e: UpEvent): void {
    const { provisioning } = this.parts();
    const joinedAt = this.clock.now();
    this.metrics.joins.inc();
    const dp = this.datapaths.obtain(dpidToHex(e.dpid));
    dp.join(e);
    this.metrics.datapathsUp.set(this.datapaths.connected().length);
    provisioning.joined(dp, e, joinedAt);
  }

  private onDown(e: DownEvent): void {
    const { provisioning } = this.parts();
    this.metrics.leaves.inc();
    const dp = this.datapaths.obtain(dpidToHex(e.dpid));
    dp.leave();
    this.metrics.datapathsUp.set(this.datapaths.connected().length);
    // A switch without a VM (ignored) leaves nothing to remember: many unknown dpids must not pile up.
    if (!provisioning.left(dp, e.reason)) this.datapaths.forget(dp.dpidHex);
  }

  private onPort(e: PortEvent): void {
    const { ctx } = this.parts();
    const dpidHex = dpidToHex(e.dpid);
    this.log.info(
      { dpid: dpidHex, port: e.port.no, name: e.port.name, reason: e.reason },
      "switch port changed",
    );
    ctx.record.event({ dpid: dpidHex, kind: "port", detail: `${e.reason} ${e.port.no} ${e.port.name}` });
    const dp = this.datapaths.get(dpidHex);
    if (dp) this.keeper?.portChanged(dp, e);
  }

  /**
   * checkHosts probes every libvirt host once (also run every `policies.hostLoss.probeSeconds`); see
   * HostHealth. Concurrent calls share one round.
   */
  checkHosts(): Promise<void> {
    return this.parts().health.check();
  }

  /**
   * reload applies a new config: new dpids act at once, changed VMs are redefined at their next start.
   * Hosts added to the config are probed, watched and offered to placement at once; removed ones leave it
   * (a VM placed there is re-placed at its next ensure).
   */
  async reload(next: RfbootConfig): Promise<{ added: string[]; changed: string[]; removed: string[] }> {
    const { provisioning, health } = this.parts();
    const before = new Map(listConfiguredVms(this.config).map((v) => [v.dpidHex, configHash(v)]));
    const after = new Map(listConfiguredVms(next).map((v) => [v.dpidHex, configHash(v)]));
    const added = [...after.keys()].filter((k) => !before.has(k));
    const removed = [...before.keys()].filter((k) => !after.has(k));
    const changed = [...after.keys()].filter((k) => before.has(k) && before.get(k) !== after.get(k));
    const previous = this.config;
    this.config = next;
    const hosts = this.hosts.setHosts(next.hosts);
    for (const name of hosts.removed) {
      health.forget(name);
      provisioning.forgetHost(name);
      // Stopping the watcher of a host no longer configured: its failure only concerns that host.
      void this.events
        .get(name)
        ?.stop()
        .catch(() => undefined);
      this.events.delete(name);
    }
    for (const name of hosts.added) {
      const h = next.hosts.find((x) => x.name === name);
      if (!h) continue;
      void this.prepareHost(h);
      if (this.opts.watchLibvirtEvents !== false) this.watchLibvirt(h);
    }
    this.log.info({ added, changed, removed, hosts }, "configuration reloaded");
    // The controller reads the current config for its admission (refuse policy): drop what is now refused.
    for (const d of this.controller?.datapaths() ?? []) {
      const verdict = admitDatapath(next, d);
      if (verdict !== true)
        this.controller?.disconnect(d.dpid, `refused after reload: ${verdict || "policy"}`);
    }
    // New hosts answer (or not) before the ensures below are placed; new and changed rows go first.
    if (hosts.added.length > 0) await this.hosts.probeAll();
    const mapped = new Set([...added, ...changed]);
    await provisioning.rowsAhead.write(listConfiguredVms(next).filter((v) => mapped.has(v.dpidHex)));
    const ahead = this.defineAhead(listConfiguredVms(next).filter((v) => mapped.has(v.dpidHex)));
    for (const dpidHex of [...added, ...changed]) {
      const dp = this.datapaths.get(dpidHex);
      if (!dp?.conn) continue;
      dp.vm = resolveDatapath(next, dp.conn.dpid, dp.joinPorts);
      if (!dp.vm) continue;
      // A new VM boots now (its switch's join is recorded as if it had just joined); a changed one is
      // redefined (its running domain keeps going until its next start).
      if (added.includes(dpidHex)) provisioning.recordJoin(dp, dp.conn);
      provisioning.submitEnsure(dp, this.clock.now());
    }
    const gone = new Set(removed);
    await this.prewarmer?.removed(
      listConfiguredVms(previous).filter((v) => gone.has(v.dpidHex)),
      next,
    );
    // Images of changed VMs are dropped and made again; new VMs are prewarmed (policies.prewarm), once
    // their domains ahead are made.
    void ahead.then(() => this.prewarmer?.kick());
    return { added, changed, removed };
  }

  /** connectedDatapaths lists the dpids whose switch is connected now. */
  connectedDatapaths(): string[] {
    return this.datapaths.connected().map((d) => d.dpidHex);
  }

  /** datapath returns a snapshot of what the daemon knows of one dpid (16 hex digits), if anything. */
  datapath(dpidHex: string): DatapathStatus | undefined {
    const dp = this.datapaths.get(dpidHex);
    return dp ? statusOf(dp) : undefined;
  }

  /** knownDatapaths takes a snapshot of every dpid the daemon knows (connected or not), by dpid. */
  knownDatapaths(): DatapathStatus[] {
    return this.datapaths
      .all()
      .map(statusOf)
      .sort((a, b) => a.dpidHex.localeCompare(b.dpidHex));
  }

  /** listening is where the controller listens (or relays from) once started; undefined before and after. */
  listening(): { host: string; port: number; mode: string } | undefined {
    if (!this.listeningAt || this.stopped) return undefined;
    return { ...this.listeningAt, mode: this.config.openflow.mode };
  }

  /** idle resolves when no provisioning action or port change is queued or running. */
  async idle(): Promise<void> {
    await this.provisioning?.idle();
    // Port changes wait for the actions above, then write their row and attach or detach their NIC.
    await this.keeper?.idle();
  }

  /** stop closes the controller, timers, watchers and the store (flushing what it can). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.prewarmer?.stop();
    for (const cancel of this.timers) cancel();
    for (const dp of this.datapaths.all()) dp.dispose();
    await this.health?.settled();
    await this.closeQuietly("controller", () => this.controller?.close());
    this.provisioning?.close();
    // A prewarm under way ends first (its readiness watch was aborted above): the VM it booted is destroyed
    // and the prewarm recorded cancelled while its lease and the store are still there.
    await this.closeQuietly("prewarms", () => this.prewarmer?.drained());
    // The joins and leaves under way end before their leases go and the store closes: a lease released
    // while its VM's start is on the way would let another instance act on the same VM.
    const stillBusy = new Set<string>();
    await this.closeQuietly("actions under way", async () => {
      const r = await this.provisioning?.drained(STOP_ACTIONS_MS);
      if (r && !r.ok) {
        for (const d of r.busy) stillBusy.add(d);
        this.log.warn(
          { dpids: r.busy, ms: STOP_ACTIONS_MS },
          "stopping with actions still under way: their leases are kept, to expire by themselves",
        );
      }
    });
    await Promise.all(
      [...this.events.values()].map((e) => this.closeQuietly("libvirt events", () => e.stop())),
    );
    // All at once: one after the other, a thousand releases on a busy MongoDB took minutes to stop.
    await Promise.all(
      this.datapaths
        .all()
        .filter((dp) => dp.leased && !stillBusy.has(dp.dpidHex))
        .map((dp) => this.provisioning?.leases.release(dp)),
    );
    await this.closeQuietly("port changes", () => this.keeper?.idle());
    await this.prepared;
    await this.closeQuietly("host registry", () => this.hosts.dispose());
    await this.closeQuietly("NIC hot-plug", () => this.hotplug.dispose());
    if (this.store) await this.closeQuietly("store", () => this.store.close());
  }

  /** closeQuietly runs one step of stop(): a failure is logged and the other steps still run. */
  private async closeQuietly(what: string, fn: () => Promise<unknown> | undefined): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.log.warn({ err: errorMessage(e) }, `stopping: ${what} did not close cleanly`);
    }
  }
}

/** describeEvent says in a few words what libvirt reported, for the restart's event and log line. */
function describeEvent(e: DomainEvent): string {
  if (e.type === "lifecycle") return `libvirt: ${e.event} ${e.detail}`.trim();
  if (e.type === "state") return `found ${e.state} by a probe (was ${e.previous})`;
  return `libvirt: ${e.kind} ${e.detail}`.trim();
}
