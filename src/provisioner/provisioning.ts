/**
 * Provisioning steps of one datapath: on join resolve its VM, place it and queue `ensure` (lease -> rfconfig
 * rows -> XML -> define + start, or adopt/resume -> readiness); on leave queue the leave policy after its
 * grace period; record a failure with its cause and retry with backoff while the switch stays connected.
 */
import { OvsError, RfbootError, StoreError, VirshError, errorMessage } from "../common/errors.js";
import { buildDomainXml } from "../xmlgen/index.js";
import type { UpEvent } from "../controller/index.js";
import { sleep } from "./clock.js";
import {
  configHash,
  hostsFor,
  listConfiguredVms,
  resolveDatapath,
  type HostConfig,
  type ResolvedVm,
} from "./config/index.js";
import type { DaemonContext, EnsureOutcome } from "./daemon-context.js";
import type { Datapath } from "./datapath.js";
import { dataPlaneFingerprint } from "./dataplane.js";
import { planOnHost, type HostedPlan } from "./host-plan.js";
import {
  isActive,
  type DomainEvent,
  type DomainManager,
  type KnownDomainState,
  type LeaveAction,
  type LeaveOutcome,
} from "./libvirt/index.js";
import { rfconfigRows } from "./mapping.js";
import { PlacementError, place, type HostCapacity, type PlacementDecision } from "./placement.js";
import { ActionQueue } from "./queue.js";
import { RowsAhead } from "./rows-ahead.js";
import { LeaseKeeper } from "./lease-keeper.js";
import { countPrewarmed } from "./prewarm.js";
import { prewarmFingerprint } from "./prewarm-plan.js";
import type { RecordPatch, VmState } from "./store/index.js";
import {
  consolePlan,
  type ConsoleStream,
  type EarlyConsole,
  type ReadinessEnd,
  type ReadinessMode,
  type ReadinessWatcher,
} from "./vm-readiness.js";

/**
 * DaemonAction is what the queue runs for one dpid: make its VM run, apply the leave policy, or prewarm it
 * (boot it ahead of its switch, then save it).
 */
export type DaemonAction =
  | { kind: "ensure"; vm: ResolvedVm; host: string; joinedAt: number }
  | { kind: "leave"; vm: ResolvedVm; host: string; action: LeaveAction }
  | { kind: "prewarm"; vm: ResolvedVm; host: string }
  | { kind: "define"; vm: ResolvedVm; host: string; mayDefine: boolean; domain: boolean; lease: boolean };

/**
 * DefineAheadResult is what defining a VM ahead of its switch did: `defined` its domain (shut off, disk in
 * place); `known`, the domain existed and its state was read; `skipped`, nothing (the switch joined, the
 * domain runs, or the host has a data plane, whose tags are given at the start).
 */
export interface DefineAheadResult {
  outcome: "defined" | "known" | "skipped";
  /** leased: its lease is held ahead of the join (policies.leaseAhead). */
  leased?: boolean;
}

/**
 * PrewarmResult is what one prewarm did: `saved` the image (`ms` after the action began); `joined`, the
 * switch joined first (the VM is left to its join); `leased-elsewhere`, another instance holds the dpid;
 * `cancelled`, the daemon stopped first (the VM it booted is destroyed).
 */
export interface PrewarmResult {
  outcome: "saved" | "joined" | "leased-elsewhere" | "cancelled";
  ms: number;
}

/** ActionResult is what any DaemonAction resolves to. */
type ActionResult = EnsureOutcome | LeaveOutcome | PrewarmResult | DefineAheadResult;

/** ProvisioningOptions tune retries and leases; `mayLeave` comes from host health. */
export interface ProvisioningOptions {
  leaseTtlMs: number;
  /** retry backoff of failed ensures (ms): first delay and cap. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** mayLeave: the hostLoss policy allows re-placing the VMs of this (lost) host now. */
  mayLeave: (host: string) => boolean;
  /** processAlive tells whether a local pid runs (a dead predecessor's lease is taken over). */
  processAlive?: (pid: number) => boolean;
}

const STATE_OF_LEAVE: Record<LeaveOutcome, VmState | undefined> = {
  kept: undefined,
  shutdown: "stopped",
  destroyed: "stopped",
  saved: "suspended",
  "not-running": "stopped",
  missing: "missing",
};

/**
 * agreesWithShutOff: a libvirt event is what a domain known to be shut off (with a managed-save image or
 * without) may report without changing that: its definition, a stop of the same kind, a guest's shutdown.
 */
export function agreesWithShutOff(e: DomainEvent, saved: boolean): boolean {
  if (e.type === "state") return e.state === "shutoff";
  if (e.type !== "lifecycle") return false;
  if (e.event === "Defined" || e.event === "Shutdown") return true;
  return e.event === "Stopped" && e.detail.includes("Saved") === saved;
}

/** MAX_CONCURRENT_ACTIONS caps provisioning actions in flight (a burst of joins waits in the queue beyond it). */
const MAX_CONCURRENT_ACTIONS = 128;

/** errorKind is the short tag recorded in `lastError.kind` and the failure metric. */
export function errorKind(err: unknown): string {
  if (err instanceof VirshError) return err.kind;
  if (err instanceof OvsError) return `ovs-${err.kind}`;
  if (err instanceof PlacementError) return "placement";
  if (err instanceof StoreError) return err.operation === "claim" ? "lease" : "store";
  if (err instanceof RfbootError) return err.name;
  return "other";
}

/** Gate is a counting semaphore: at most `limit` tasks run at once, the others wait in FIFO order. */
class Gate {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}

  /** hasRoom: a task would run at once. */
  hasRoom(): boolean {
    return this.free > 0;
  }

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

/** Provisioning runs ensure and leave actions through the queue, with retries and leases. */
export class Provisioning {
  private readonly queue: ActionQueue<string, DaemonAction, ActionResult>;
  private readonly startGates = new Map<string, Gate>();
  /** leases: the lease of each datapath this instance serves. */
  readonly leases: LeaseKeeper;
  /** rowsAhead: the configured VMs' rows, written before their switches join. */
  readonly rowsAhead: RowsAhead;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly readiness: ReadinessWatcher,
    private readonly opts: ProvisioningOptions,
  ) {
    this.rowsAhead = new RowsAhead(ctx);
    this.leases = new LeaseKeeper(ctx, {
      ttlMs: opts.leaseTtlMs,
      ...(opts.processAlive ? { processAlive: opts.processAlive } : {}),
    });
    this.queue = new ActionQueue<string, DaemonAction, ActionResult>({
      // Only define/start hold one of a host's start slots (startGate); the lease, the MongoDB writes and
      // the XML of other joins proceed meanwhile, so a slow database does not idle the hosts.
      classify: (a) => ({ host: a.host, limited: false }),
      globalLimit: MAX_CONCURRENT_ACTIONS,
      hostLimit: (h) => this.ctx.config().hosts.find((x) => x.name === h)?.maxConcurrentStarts ?? 1,
      now: () => this.ctx.clock.now(),
      handler: (key, action) => {
        const dp = this.ctx.datapaths.obtain(key);
        if (action.kind === "ensure") return this.ensure(dp, action);
        if (action.kind === "define") return this.ahead(dp, action);
        return action.kind === "leave" ? this.leave(dp, action) : this.prewarm(dp, action);
      },
      // A failed action has been recorded and logged by `fail` (and retried); the queue need not report it.
      onError: () => undefined,
    });
  }

  /**
   * joined handles a switch's join: a leave waiting out its grace period is dropped, the VM is resolved
   * from the config once, from the ports the switch reported (kept on the Datapath), the join is recorded
   * and the VM ensured. A dpid without a VM (policy ignore, or a template that cannot be derived) is
   * reported `ignored`.
   */
  joined(dp: Datapath, e: UpEvent, joinedAt: number): void {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    if (dp.cancelLeave()) this.cancelPendingLeave(dp);
    try {
      dp.vm = resolveDatapath(ctx.config(), e.dpid, dp.joinPorts);
    } catch (err) {
      dp.vm = undefined;
      ctx.log.error({ dpid: dpidHex, err: errorMessage(err) }, "cannot derive a VM for this datapath");
      ctx.emit("ignored", { dpidHex, reason: errorMessage(err) });
      return;
    }
    if (!dp.vm) {
      ctx.log.info({ dpid: dpidHex, peer: e.peer }, "datapath has no VM in the config: ignored (policy)");
      ctx.emit("ignored", { dpidHex, reason: "unknown datapath" });
      ctx.record.event({ dpid: dpidHex, kind: "ignored", detail: `peer ${e.peer}` });
      return;
    }
    // The join's record patch and event wait for the start, as the ensure's own do (its hold is taken within
    // submitEnsure): with the lease held ahead no claim holds them, and written now their commands would be
    // encoded and sent before `virsh start` is.
    const hold = ctx.store.holdBookkeeping?.();
    try {
      this.leases.begin(dp);
      this.recordJoin(dp, e);
      this.submitEnsure(dp, joinedAt);
    } finally {
      hold?.();
    }
  }

  /** recordJoin writes a datapath's join (switch peer, version, ports, VM identity) to its record and the log. */
  recordJoin(dp: Datapath, e: UpEvent): void {
    const { ctx } = this;
    const vm = dp.vm;
    if (!vm) return;
    ctx.log.info({ dpid: dp.dpidHex, vm: vm.name, peer: e.peer, version: e.version }, "datapath joined");
    ctx.emit("joined", { dpidHex: dp.dpidHex, vm: vm.name, peer: e.peer });
    // Records keep the wire version (1 = 1.0 ... 6 = 1.5), as OpenFlow numbers it and the session negotiated.
    const sw = { peer: e.peer, version: e.wireVersion, connected: true };
    const ports = e.ports.map((p) => {
      const mapped = vm.ports.find((q) => q.dpPort === p.no);
      return { dpPort: p.no, name: p.name, hwAddr: p.mac, ...(mapped ? { vmPort: mapped.vmPort } : {}) };
    });
    ctx.record.patch(dp.dpidHex, {
      joinedAt: ctx.clock.date(),
      switch: sw,
      ports,
      vmName: vm.name,
      vmId: vm.vmId.toString(10),
      vmMac: vm.vmMac,
      hypervisor: vm.hypervisor,
      owner: ctx.instanceId,
    });
    ctx.record.event({ dpid: dp.dpidHex, vm: vm.name, kind: "join", detail: e.peer });
  }

  /**
   * left handles a switch's leave: its retry stops, the leave is recorded, and the leave policy is queued
   * after its grace period unless the switch is back by then. The VM is the one resolved at join (from the
   * ports seen then), so the policy applies to the VM and ports that were ensured. Returns false when the
   * datapath has nothing to keep (no VM, no placement, no action under way).
   */
  left(dp: Datapath, reason: string): boolean {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    dp.cancelRetry();
    const vm = dp.vm;
    ctx.log.info({ dpid: dpidHex, vm: vm?.name, reason }, "datapath left");
    if (!vm) return dp.placement !== undefined || this.busy(dp);
    ctx.record.patch(dpidHex, { leftAt: ctx.clock.date(), switch: { connected: false } });
    ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "leave", detail: reason });
    const policy = ctx.config().policies.leave;
    if (policy.action === "keep") return true;
    dp.armLeave(
      ctx.clock.after(policy.graceSeconds * 1000, () => {
        dp.leaveFired();
        if (dp.connected || ctx.stopped()) return;
        this.submitLeave(dp, policy.action);
      }),
    );
    return true;
  }

  /** busy: an action of this datapath is queued or running. */
  busy(dp: Datapath): boolean {
    return this.queue.pendingOf(dp.dpidHex) !== undefined || this.queue.runningOf(dp.dpidHex) !== undefined;
  }

  /** cancelPendingLeave drops a queued leave that has not run yet (the switch is back). */
  cancelPendingLeave(dp: Datapath): void {
    if (this.queue.pendingOf(dp.dpidHex)?.kind === "leave") this.queue.cancel(dp.dpidHex);
  }

  /**
   * submitEnsure places the datapath's VM and queues its ensure. Hosts passed over for lack of room are
   * recorded (event `placement`, log) with the reason of each; a placement failure is recorded as a failure,
   * its message naming every host's reason.
   */
  submitEnsure(dp: Datapath, joinedAt: number): void {
    const vm = dp.vm;
    if (!vm) return;
    let d: PlacementDecision;
    try {
      d = this.placeVm(dp, vm);
    } catch (err) {
      this.fail(dp, vm, err, "placement");
      return;
    }
    const host = d.host;
    if (d.skipped) this.recordSkipped(dp, d, d.skipped);
    dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB };
    void this.queue.submit(dp.dpidHex, { kind: "ensure", vm, host, joinedAt });
  }

  /** placeVm asks placement for a host for the datapath's VM among the hosts that may run it now. */
  private placeVm(dp: Datapath, vm: ResolvedVm): PlacementDecision {
    return place(
      { vm: vm.name, memoryMiB: vm.memoryMiB, ...(vm.hostPin ? { pin: vm.hostPin } : {}) },
      this.candidateCapacities(dp, vm),
      this.ctx.datapaths.placements(),
    );
  }

  /** recordSkipped reports a placement that passed over hosts without room, and why each was. */
  private recordSkipped(dp: Datapath, d: PlacementDecision, skipped: Readonly<Record<string, string>>): void {
    const why = Object.entries(skipped)
      .map(([h, r]) => `${h}: ${r}`)
      .join("; ");
    this.ctx.log.info(
      { dpid: dp.dpidHex, vm: d.vm, host: d.host, reason: d.reason, skipped },
      "VM placed past hosts without room",
    );
    this.ctx.record.event({
      dpid: dp.dpidHex,
      vm: d.vm,
      kind: "placement",
      detail: `on ${d.host} (${d.reason}); skipped ${why}`,
    });
  }

  /** submitLeave queues the leave policy for the datapath's VM where it is placed. */
  submitLeave(dp: Datapath, action: LeaveAction): void {
    const vm = dp.vm;
    const host = dp.placement?.host;
    if (!vm || !host) return;
    void this.queue.submit(dp.dpidHex, { kind: "leave", vm, host, action });
  }

  /**
   * submitPrewarm queues the prewarm of a configured VM whose switch is not connected, on `host`, and
   * resolves what it did; undefined when it did not run (a join or leave of that dpid replaced it, or the
   * daemon stops). Rejects with the action's error. A dpid with an action queued or running is not touched.
   */
  async submitPrewarm(dp: Datapath, vm: ResolvedVm, host: string): Promise<PrewarmResult | undefined> {
    if (dp.connected || this.busy(dp)) return undefined;
    dp.vmName = vm.name;
    const r = await this.queue.submit(dp.dpidHex, { kind: "prewarm", vm, host });
    if (r.status === "failed") throw r.error;
    return r.status === "done" ? (r.result as PrewarmResult) : undefined;
  }

  /**
   * submitDefineAhead queues what a configured VM whose switch is not connected gets ahead of its join: its
   * domain defined (or its state read) where its join would place it (`domain`, policies.defineAhead), its
   * lease (`lease`, policies.leaseAhead). False when nothing was queued (connected, an action under way, or
   * no lease asked and no host would take it now: its join then places it and says why); otherwise what it
   * did, once done (undefined when a join replaced it, or it failed: logged, and left to the join).
   */
  submitDefineAhead(
    dp: Datapath,
    vm: ResolvedVm,
    opts: { domain: boolean; lease: boolean },
  ): Promise<DefineAheadResult | undefined> | false {
    if (dp.connected || this.busy(dp)) return false;
    // A domain is defined ahead only for a VM that can go to one host: where several could take it, its join
    // places it under its lease, so that two instances never define it on two hosts. Where its domain is
    // known to be, its state is read all the same.
    const mayDefine = hostsFor(this.ctx.config(), vm).length === 1;
    let host: string | undefined;
    if (opts.domain && (mayDefine || dp.placement)) {
      try {
        host = this.placeVm(dp, vm).host;
      } catch {
        host = undefined;
      }
    }
    if (host === undefined && !opts.lease) return false;
    dp.vmName = vm.name;
    return this.queue
      .submit(dp.dpidHex, {
        kind: "define",
        vm,
        host: host ?? "",
        mayDefine,
        domain: host !== undefined,
        lease: opts.lease,
      })
      .then((r) => (r.status === "done" ? (r.result as DefineAheadResult) : undefined));
  }

  /** ensureAfter queues the datapath's ensure `ms` from now, as a retry (a new join or retry replaces it). */
  ensureAfter(dp: Datapath, ms: number): void {
    this.scheduleRetry(dp, ms);
  }

  /** retryNow runs a waiting retry at once (its host answers again). */
  retryNow(dp: Datapath): void {
    if (!dp.cancelRetry()) return;
    this.submitEnsure(dp, this.ctx.clock.now());
  }

  /**
   * candidateCapacities: the hosts whose drivers can run this VM's hypervisor. The host the VM is placed on
   * counts as reachable even when lost, unless the hostLoss policy is `replace` and it has been lost for
   * `afterSeconds`: until then a VM stays where its disk and definition are (retries go there).
   */
  private candidateCapacities(dp: Datapath, vm: ResolvedVm): HostCapacity[] {
    const ok = new Set(hostsFor(this.ctx.config(), vm).map((h) => h.name));
    const stay = dp.placement?.host;
    const keep = stay !== undefined && !this.opts.mayLeave(stay);
    return this.ctx.hosts
      .capacities()
      .filter((c) => ok.has(c.name))
      .map((c) => (keep && c.name === stay ? { ...c, reachable: true } : c));
  }

  /** startGate is the host's limit on concurrent define/start (maxConcurrentStarts, read at first use). */
  private startGate(host: string): Gate {
    let g = this.startGates.get(host);
    if (!g) {
      g = new Gate(this.ctx.config().hosts.find((h) => h.name === host)?.maxConcurrentStarts ?? 1);
      this.startGates.set(host, g);
    }
    return g;
  }

  /** forgetHost drops a removed host's start gate (a host added again later gets a fresh one). */
  forgetHost(host: string): void {
    this.startGates.delete(host);
  }

  private async ensure(dp: Datapath, a: Extract<DaemonAction, { kind: "ensure" }>): Promise<EnsureOutcome> {
    const { ctx } = this;
    const { vm, host } = a;
    const dpidHex = dp.dpidHex;
    const hostCfg = ctx.config().hosts.find((h) => h.name === host);
    // Record patches and events wait until the start is issued: on a database that runs one write at a time
    // they would delay the claim, and on a busy machine their CPU would be this start's.
    const release = ctx.store.holdBookkeeping?.() ?? (() => undefined);
    try {
      if (!hostCfg) throw new PlacementError(`host ${host} is no longer configured`, vm.name, {});
      const manager = ctx.hosts.manager(host);
      const claiming = this.leases.claim(dp);
      claiming.catch(() => undefined); // awaited below, unless the plan failed first
      // While the lease is claimed: the domain's state (with a start slot free; otherwise read in the slot,
      // when the VM's turn comes) and the plan (the host's pools and shared images, never the VM's). Nothing
      // of the VM (disk, data-plane ports, domain, rows) changes before the claim is confirmed.
      // A prewarm image to drop changes the state first: then ensureRunning reads it itself. A state read
      // or made ahead (domains ahead) is not asked again: a start that finds otherwise goes the long way.
      const toDrop = this.imageToDrop(dp, vm, host);
      const known = dp.knownState?.host === host && !toDrop ? dp.knownState : undefined;
      dp.knownState = undefined;
      const state = known
        ? Promise.resolve<KnownDomainState>(known)
        : this.startGate(host).hasRoom() && !toDrop
          ? manager.state(vm.name)
          : undefined;
      state?.catch(() => undefined); // awaited by ensureRunning, or left when the claim fails
      // The host's own paths of the files the domain reads (its pool's volumes, uploaded if allowed).
      const { plan, disk } = await planOnHost(vm, hostCfg, ctx.hosts.storage(host));
      const claimed = await claiming;
      if (!claimed) {
        ctx.log.info({ dpid: dpidHex, vm: vm.name }, "another rfboot instance holds this datapath's lease");
        this.scheduleRetry(dp, this.leases.refused(dp));
        return { dpidHex, vm: vm.name, host, action: "leased-elsewhere", reactionMs: 0 };
      }
      await this.dropStaleImage(dp, vm, host);
      let started: Awaited<ReturnType<Provisioning["start"]>>;
      try {
        started = await this.start(dp, vm, host, hostCfg, {
          plan,
          // A disk made ahead is in place; a domain only read ahead has its disk checked as always.
          ...(disk && !known?.diskReady ? { disk } : {}),
          release,
          ...(state ? { state } : {}),
        });
      } catch (e) {
        if (!known) throw e;
        // The domain changed since it was read ahead (an event not seen yet): read it, define it, start it.
        ctx.log.info(
          { dpid: dpidHex, vm: vm.name, host, err: errorMessage(e) },
          "domain not as read ahead: starting it the long way",
        );
        dp.definedAs = undefined;
        started = await this.start(dp, vm, host, hostCfg, { plan, ...(disk ? { disk } : {}), release });
      }
      release();
      const { res, consoleLog, readinessFrom, stream, early } = started;
      this.imageRestored(dp, vm, host, res.restored);
      const t = res.timings;
      const sinceJoin = ctx.clock.now() - a.joinedAt;
      const reactionMs = sinceJoin - t.totalMs + (t.stateMs ?? 0) + (t.diskMs ?? 0) + (t.defineMs ?? 0);
      ctx.metrics.reactionSeconds.observe(reactionMs / 1000);
      ctx.metrics.bootSeconds.observe(sinceJoin / 1000);
      ctx.metrics.boots.inc({ action: res.action, host });
      const patch: RecordPatch = { state: "running", host, lastError: null, attempts: 0 };
      // startedAt: when this attempt's start/resume completed (definedAt was written when define completed).
      if (res.startedAt) patch.startedAt = res.startedAt;
      // Not awaited: the VM runs now whatever the database says; the outbox writes the record (merged with
      // the join's and `starting`'s patches during a burst) and this store reads its own pending writes.
      ctx.record.patch(dpidHex, patch);
      dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: true };
      dp.succeeded(ctx.clock.date().getTime());
      ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "boot", detail: `${res.action} on ${host}` });
      ctx.log.info(
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
      ctx.emit("ensured", out);
      // An adopted VM that was ready since its last start stays ready: after a restore it never prints its
      // boot marker again, and a running guest's PortRegister is long gone from the capped IPC channel.
      let mode: ReadinessMode = res.restored || res.action === "resumed" ? "restored" : "boot";
      if (res.action === "adopted" && (await this.wasReady(dpidHex))) mode = "was-ready";
      this.readiness.watch(
        dp,
        vm,
        consoleLog,
        res.action === "adopted" ? 0 : readinessFrom,
        a.joinedAt,
        mode,
        stream,
        early,
      );
      return out;
    } catch (err) {
      dp.definedAs = undefined;
      this.fail(dp, vm, err, "ensure");
      throw err;
    } finally {
      release();
    }
  }

  /**
   * start brings the VM up on its host as placed: RouteFlow's rows, the host's plan, data plane, XML, then
   * define and start (or adopt, resume, restore) through the host's start gate, a QEMU domain paused until
   * its console is attached. Returns what it did and what readiness needs to watch the VM.
   */
  private async start(
    dp: Datapath,
    vm: ResolvedVm,
    host: string,
    hostCfg: HostConfig,
    pre: HostedPlan & {
      state?: Parameters<DomainManager["ensureRunning"]>[0]["state"];
      release?: () => void;
    },
  ): Promise<{
    res: Awaited<ReturnType<DomainManager["ensureRunning"]>>;
    consoleLog: string | undefined;
    readinessFrom: number;
    stream: ConsoleStream | undefined;
    early: EarlyConsole | undefined;
  }> {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    // Whatever was known of the domain ahead, a start changes it (the ensure took it first, when it used it).
    dp.knownState = undefined;
    // RouteFlow's rows go first: rfserver must find them when the VM's rfclient registers. A configured
    // VM's were written at start-up or reload (rows ahead); only what is not confirmed is written here.
    if (!this.rowsAhead.inPlace(vm)) await ctx.store.upsertRfconfigRows(rfconfigRows(vm));
    const { plan, disk, state, release } = pre;
    // On a data-plane host the data NICs' patch pairs exist before the domain starts, and their tags are in it.
    const placed = await ctx.dataPlane.forPlacement(ctx.config(), vm, hostCfg, plan.description);
    const xml = buildDomainXml(placed.description);
    const uuid = plan.description.uuid ?? "";
    const fingerprint = dataPlaneFingerprint(configHash(vm), placed.links);
    const definedAs = `${host} ${uuid} ${fingerprint}`;
    // An existing domain already defined from this very VM config is not redefined (a no-op `virsh define`
    // per rejoin or restart); a changed VM (SIGHUP) or an unknown definition is, and takes it at next start.
    const redefine = dp.definedAs !== definedAs;
    // The fingerprint says what the domain was defined from: written now only when that is already true,
    // otherwise once `define` succeeded (a failed redefine must not leave the new config's fingerprint).
    ctx.record.patch(dpidHex, { host, uuid, ...(redefine ? {} : { configFingerprint: fingerprint }) });
    const manager = ctx.hosts.manager(host);
    // Readiness reads the console through libvirt, over the host's URI (the log file, written on the VM's
    // host, only where there is no console stream and the host is this machine).
    const cons = consolePlan(vm, hostCfg, plan.consoleLog, ctx.config().readiness.consoleMarker);
    const consoleLog = cons.log;
    const readinessFrom = await this.readiness.offset(consoleLog);
    let early: EarlyConsole | undefined;
    // QEMU's pty drops what nobody reads: the domain starts paused and runs once its console is attached.
    const earlyStream = cons.early ? cons.stream : undefined;
    if (cons.prepare && cons.stream) early = this.readiness.prepare(dp, cons.stream);
    const beforeRun = earlyStream
      ? (boot: boolean) => {
          early = this.readiness.attach(dp, earlyStream, boot);
          return early.attached;
        }
      : undefined;
    const res = await this.startGate(host)
      .run(() =>
        manager.ensureRunning({
          name: vm.name,
          uuid,
          xml,
          redefine,
          ...(state ? { state } : {}),
          ...(disk ? { disk } : {}),
          // `starting` only when rfboot really defines/starts/resumes: an adopted VM never reads `starting`.
          onStarting: () => ctx.record.patch(dpidHex, { state: "starting" }),
          onDefined: (at) => {
            ctx.record.patch(dpidHex, { definedAt: at, configFingerprint: fingerprint });
            // Once `virsh start` (issued next, in this turn) is on its way.
            if (release) queueMicrotask(release);
          },
          ...(beforeRun ? { beforeRun } : {}),
        }),
      )
      .catch((e: unknown) => {
        early?.ac.abort();
        throw e;
      });
    dp.definedAs = definedAs;
    return { res, consoleLog, readinessFrom, stream: cons.stream, early };
  }

  /** ahead readies a configured VM for its join: its lease claimed beside its domain (see defineAhead). */
  private async ahead(
    dp: Datapath,
    a: Extract<DaemonAction, { kind: "define" }>,
  ): Promise<DefineAheadResult> {
    const leasing = a.lease ? this.leases.ahead(dp) : Promise.resolve(false);
    const done: DefineAheadResult = a.domain ? await this.defineAhead(dp, a) : { outcome: "skipped" };
    return { ...done, leased: await leasing };
  }

  /**
   * defineAhead makes a configured VM's first start a bare `virsh start`: on the host its join would choose,
   * a domain that no host has is defined (disk first) from the XML the join would give it, and the state of
   * one that exists is read (with its managed-save image). The join then claims the lease beside nothing
   * else and starts the domain without asking libvirt again. No lease is taken: only a domain that does not
   * exist is created, from the config every instance shares; one that exists is never touched.
   */
  private async defineAhead(
    dp: Datapath,
    a: Extract<DaemonAction, { kind: "define" }>,
  ): Promise<DefineAheadResult> {
    const { ctx } = this;
    const { vm, host } = a;
    const skipped: DefineAheadResult = { outcome: "skipped" };
    const hostCfg = ctx.config().hosts.find((h) => h.name === host);
    if (dp.connected || !hostCfg) return skipped;
    const manager = ctx.hosts.manager(host);
    try {
      const st = await manager.fullState(vm.name);
      if (st) {
        if (isActive(st.state) || dp.connected) return skipped;
        dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: false };
        dp.knownState = { ...st, host, diskReady: false };
        return { outcome: "known" };
      }
      // A data plane's tags and patch ports are given when the VM starts, under its lease.
      if (hostCfg.dataPlane || !a.mayDefine) return skipped;
      const { plan, disk } = await planOnHost(vm, hostCfg, ctx.hosts.storage(host));
      if (dp.connected) return skipped;
      const uuid = plan.description.uuid ?? "";
      const fingerprint = dataPlaneFingerprint(configHash(vm), []);
      const xml = buildDomainXml(plan.description);
      const definedAt = await this.startGate(host).run(async () => {
        const created = await manager.prepareDisk(disk);
        try {
          await manager.define(vm.name, xml);
        } catch (e) {
          if (created && disk) await manager.removeDisk(disk).catch(() => undefined);
          throw e;
        }
        return ctx.clock.date();
      });
      dp.definedAs = `${host} ${uuid} ${fingerprint}`;
      dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: false };
      dp.knownState = { state: "shutoff", reason: "unknown", saved: false, host, diskReady: true };
      ctx.record.patch(dp.dpidHex, {
        vmName: vm.name,
        vmId: vm.vmId.toString(10),
        vmMac: vm.vmMac,
        hypervisor: vm.hypervisor,
        host,
        uuid,
        definedAt,
        configFingerprint: fingerprint,
        state: "stopped",
      });
      return { outcome: "defined" };
    } catch (e) {
      // Nothing is lost: the join defines and starts the VM itself, and reports what fails then.
      ctx.log.warn(
        { dpid: dp.dpidHex, vm: vm.name, host, err: errorMessage(e) },
        "domain not defined ahead; its join will define it",
      );
      return skipped;
    }
  }

  /**
   * domainEvent drops what was known ahead of a domain once libvirt reports it other than shut off as
   * known (a start, an undefine, a save not made here); the events of its own definition and stop agree.
   */
  domainEvent(dp: Datapath, e: DomainEvent): void {
    const k = dp.knownState;
    if (!k || e.host !== k.host) return;
    if (!agreesWithShutOff(e, k.saved === true)) dp.knownState = undefined;
  }

  /**
   * prewarm boots a VM ahead of its switch as a join would (lease, rows, plan, XML, define, start through the
   * host's start gate, readiness), then saves it (`managedsave`) and records the image; while it boots, the
   * record's `prewarming` says so. A switch that joins meanwhile finds its VM running, recorded ready: its
   * ensure, queued behind, adopts it. A daemon that stops meanwhile cuts it short: recorded cancelled, the VM,
   * if this booted it, destroyed (the next start prewarms it again). A failure is recorded once (event, log,
   * metric, lastError) and the VM, if this booted it, destroyed; the Prewarmer backs off.
   */
  private async prewarm(dp: Datapath, a: Extract<DaemonAction, { kind: "prewarm" }>): Promise<PrewarmResult> {
    const { ctx } = this;
    const { vm, host } = a;
    const dpidHex = dp.dpidHex;
    const t0 = ctx.clock.now();
    const joined = (): PrewarmResult => ({ outcome: "joined", ms: ctx.clock.now() - t0 });
    // The switch joined while this waited: its ensure (queued behind) boots the VM itself.
    if (dp.connected) return joined();
    let booted = false;
    // marked: the record says `prewarming`; every end of the prewarm clears it.
    let marked = false;
    const cancelled = () => this.prewarmCancelled(dp, vm, host, { booted, marked, t0 });
    // kind: the failure's `lastError.kind` when the error's own class does not say it.
    let kind: string | undefined;
    try {
      const hostCfg = ctx.config().hosts.find((h) => h.name === host);
      if (!hostCfg) throw new PlacementError(`host ${host} is no longer configured`, vm.name, {});
      if (!(await this.leases.claim(dp))) {
        ctx.log.info({ dpid: dpidHex, vm: vm.name }, "prewarm: another rfboot instance holds the lease");
        return { outcome: "leased-elsewhere", ms: ctx.clock.now() - t0 };
      }
      if (dp.connected) return joined();
      if (ctx.stopped()) return await cancelled();
      await this.dropStaleImage(dp, vm, host);
      ctx.record.patch(dpidHex, {
        vmName: vm.name,
        vmId: vm.vmId.toString(10),
        vmMac: vm.vmMac,
        hypervisor: vm.hypervisor,
        owner: ctx.instanceId,
        prewarming: { since: ctx.clock.date(), host },
      });
      marked = true;
      // Counted where it boots: a join or another prewarm placed meanwhile sees its memory taken.
      dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: true };
      const hosted = await planOnHost(vm, hostCfg, ctx.hosts.storage(host));
      const { res, consoleLog, readinessFrom, stream, early } = await this.start(
        dp,
        vm,
        host,
        hostCfg,
        hosted,
      );
      booted = res.action !== "adopted";
      // startedAt on the daemon's clock, as readiness stamps readyAt: a join's ensure compares the two.
      ctx.record.patch(dpidHex, {
        state: "running",
        host,
        ...(booted ? { startedAt: ctx.clock.date() } : {}),
      });
      // The stop began during the start (it aborted the readiness watches there were then): nobody waits now.
      if (ctx.stopped() && !dp.connected) {
        early?.ac.abort();
        return await cancelled();
      }
      const mode: ReadinessMode = res.restored || res.action === "resumed" ? "restored" : "boot";
      const from = res.action === "adopted" ? 0 : readinessFrom;
      const end = await new Promise<ReadinessEnd>((settled) =>
        this.readiness.watch(dp, vm, consoleLog, from, t0, mode, stream, early, { prewarm: true, settled }),
      );
      if (dp.connected) {
        // Not saved: the switch needs its VM now. Its ensure adopts it (ready since this start, or still
        // booting: readiness is then watched again there).
        ctx.record.patch(dpidHex, { prewarming: null });
        ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "prewarm", detail: "not saved: switch joined" });
        return joined();
      }
      if (end.kind === "aborted" && ctx.stopped()) return await cancelled();
      if (end.kind === "timeout") {
        kind = "readiness-timeout";
        throw new RfbootError(`VM ${vm.name} ${end.message}`);
      }
      if (end.kind === "aborted") {
        throw new RfbootError(`readiness watch of VM ${vm.name} was aborted before the VM was ready`);
      }
      const outcome = await ctx.hosts.manager(host).leave(vm.name, "suspend");
      if (outcome !== "saved") {
        throw new RfbootError(
          `managedsave of VM ${vm.name} on ${host} did nothing: the domain is ${outcome}`,
        );
      }
      booted = false;
      const image = {
        at: ctx.clock.date(),
        host,
        fingerprint: prewarmFingerprint(vm),
        imageMiB: vm.memoryMiB,
      };
      dp.prewarmImage = image;
      dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: false };
      ctx.record.patch(dpidHex, { state: "prewarmed", prewarm: image, prewarming: null, lastError: null });
      ctx.record.event({
        dpid: dpidHex,
        vm: vm.name,
        kind: "prewarm",
        detail: `saved on ${host} (${vm.memoryMiB} MiB)`,
      });
      ctx.metrics.prewarms.inc({ outcome: "saved" });
      countPrewarmed(ctx);
      const ms = ctx.clock.now() - t0;
      ctx.log.info({ dpid: dpidHex, vm: vm.name, host, ms: Math.round(ms) }, "VM prewarmed");
      ctx.emit("prewarmed", { dpidHex, vm: vm.name, host, ms });
      return { outcome: "saved", ms };
    } catch (err) {
      await this.prewarmFailed(dp, vm, host, err, { booted, marked, kind: kind ?? errorKind(err) });
      throw err;
    }
  }

  /**
   * prewarmCancelled ends a prewarm that the daemon's stop cut short. Not a failure (no lastError, no
   * failure metric): its own outcome, an event and a log line. The VM, if this booted it, is destroyed (the
   * stop waits for it) and recorded `stopped`, which the next start's prewarm plan boots again.
   */
  private async prewarmCancelled(
    dp: Datapath,
    vm: ResolvedVm,
    host: string,
    o: { booted: boolean; marked: boolean; t0: number },
  ): Promise<PrewarmResult> {
    const { ctx } = this;
    let undone = "";
    if (o.booted) {
      try {
        await ctx.hosts.manager(host).leave(vm.name, "destroy");
        dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: false };
        undone = `; VM destroyed on ${host}`;
      } catch (e) {
        ctx.log.warn({ dpid: dp.dpidHex, vm: vm.name, err: errorMessage(e) }, "prewarm: VM not destroyed");
        undone = `; VM left running on ${host} (not destroyed: ${errorMessage(e)})`;
      }
    }
    if (o.marked) {
      const stopped = o.booted && dp.placement?.running === false;
      ctx.record.patch(dp.dpidHex, { prewarming: null, ...(stopped ? { state: "stopped" as const } : {}) });
    }
    ctx.record.event({
      dpid: dp.dpidHex,
      vm: vm.name,
      kind: "prewarm",
      detail: `cancelled: rfboot stopped before the VM was saved${undone}`,
    });
    ctx.metrics.prewarms.inc({ outcome: "cancelled" });
    ctx.log.info({ dpid: dp.dpidHex, vm: vm.name, host }, "prewarm cancelled: rfboot is stopping");
    return { outcome: "cancelled", ms: ctx.clock.now() - o.t0 };
  }

  /** prewarmFailed records a failed prewarm, once, and destroys the VM it booted (nobody needs it running). */
  private async prewarmFailed(
    dp: Datapath,
    vm: ResolvedVm,
    host: string,
    err: unknown,
    o: { booted: boolean; marked: boolean; kind: string },
  ): Promise<void> {
    const { ctx } = this;
    const error = err instanceof Error ? err : new Error(String(err));
    const { kind } = o;
    ctx.metrics.prewarms.inc({ outcome: "failed" });
    ctx.metrics.failures.inc({ step: "prewarm", kind });
    if (o.booted && !dp.connected) {
      try {
        await ctx.hosts.manager(host).leave(vm.name, "destroy");
        dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB, running: false };
      } catch (e) {
        ctx.log.warn({ dpid: dp.dpidHex, vm: vm.name, err: errorMessage(e) }, "prewarm: VM not destroyed");
      }
    }
    ctx.record.patch(dp.dpidHex, {
      ...(dp.connected ? {} : { state: "failed" as const }),
      ...(o.marked ? { prewarming: null } : {}),
      lastError: { kind, message: error.message, at: ctx.clock.date() },
    });
    ctx.record.event({
      dpid: dp.dpidHex,
      vm: vm.name,
      kind: "prewarm",
      detail: `failed: ${kind}: ${error.message}`,
    });
    ctx.log.error({ dpid: dp.dpidHex, vm: vm.name, host, kind, err: error.message }, "prewarm failed");
  }

  /**
   * dropStaleImage removes the VM's prewarm image when it is of another config, or on another host than
   * the one the VM starts on (it could only be restored there): its start then boots the current config.
   */
  private async dropStaleImage(dp: Datapath, vm: ResolvedVm, host: string): Promise<void> {
    const why = this.imageToDrop(dp, vm, host);
    if (why) await this.dropImage(dp, vm.name, why);
  }

  /** imageToDrop says why the VM's prewarm image must go before it starts on `host`; undefined: it stays. */
  private imageToDrop(dp: Datapath, vm: ResolvedVm, host: string): string | undefined {
    const image = dp.prewarmImage;
    if (!image) return undefined;
    if (image.fingerprint !== prewarmFingerprint(vm)) return "config changed";
    return image.host === host ? undefined : `the VM starts on ${host}`;
  }

  /**
   * dropImage removes a datapath's prewarm image (`virsh managedsave-remove` on its host) and records why;
   * the record's image goes even when its host does not answer (the next start there boots anyway, as
   * `define` of a changed config removes a managed save first).
   */
  async dropImage(dp: Datapath, vm: string, why: string): Promise<void> {
    const { ctx } = this;
    const image = dp.prewarmImage;
    if (!image) return;
    try {
      await ctx.hosts.manager(image.host).removeManagedSave(vm);
    } catch (e) {
      ctx.log.warn(
        { dpid: dp.dpidHex, vm, host: image.host, err: errorMessage(e) },
        "prewarm image not removed",
      );
    }
    dp.prewarmImage = undefined;
    ctx.record.patch(dp.dpidHex, { prewarm: null });
    ctx.record.event({ dpid: dp.dpidHex, vm, kind: "prewarm", detail: `dropped: ${why}` });
    ctx.metrics.prewarms.inc({ outcome: "dropped" });
    countPrewarmed(ctx);
  }

  /** imageRestored forgets a prewarm image once a start used it (restored) or booted past it. */
  private imageRestored(dp: Datapath, vm: ResolvedVm, host: string, restored: boolean): void {
    const { ctx } = this;
    if (!dp.prewarmImage) return;
    dp.prewarmImage = undefined;
    ctx.record.patch(dp.dpidHex, { prewarm: null });
    if (restored) {
      ctx.metrics.prewarms.inc({ outcome: "restored" });
      ctx.record.event({ dpid: dp.dpidHex, vm: vm.name, kind: "prewarm", detail: `restored on ${host}` });
    }
    countPrewarmed(ctx);
  }

  /** wasReady: the record says the VM was ready since its last start. */
  private async wasReady(dpidHex: string): Promise<boolean> {
    let rec;
    try {
      rec = await this.ctx.store.getRecord(dpidHex);
    } catch (e) {
      // Unknown: readiness is watched as for a boot, which at worst reports a timeout for a ready VM.
      this.ctx.log.warn({ dpid: dpidHex, err: errorMessage(e) }, "record not read: readiness watched anew");
      return false;
    }
    const readyAt = rec?.readyAt ? new Date(rec.readyAt).getTime() : undefined;
    const startedAt = rec?.startedAt ? new Date(rec.startedAt).getTime() : 0;
    return readyAt !== undefined && readyAt >= startedAt;
  }

  private async leave(dp: Datapath, a: Extract<DaemonAction, { kind: "leave" }>): Promise<LeaveOutcome> {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    try {
      const outcome = await ctx.hosts.manager(a.host).leave(a.vm.name, a.action);
      // The domain is shut off as this left it: the rejoin starts (or restores) it without asking first.
      dp.knownState =
        outcome === "saved" || outcome === "destroyed" || outcome === "shutdown"
          ? {
              state: "shutoff",
              reason: outcome,
              saved: outcome === "saved",
              host: a.host,
              diskReady: false,
            }
          : undefined;
      const state = STATE_OF_LEAVE[outcome];
      await ctx.store.patchRecord(dpidHex, state ? { state } : {});
      ctx.record.event({
        dpid: dpidHex,
        vm: a.vm.name,
        kind: "leave-policy",
        detail: `${a.action}: ${outcome}`,
      });
      ctx.log.info({ dpid: dpidHex, vm: a.vm.name, action: a.action, outcome }, "leave policy applied");
      ctx.emit("left", { dpidHex, vm: a.vm.name, outcome });
      dp.abortReadiness();
      return outcome;
    } catch (err) {
      this.fail(dp, a.vm, err, "leave");
      throw err;
    }
  }

  /** fail records a failed step (lastError, event, log, metric) and schedules a retry of an ensure. */
  fail(dp: Datapath, vm: ResolvedVm | undefined, err: unknown, step: string): void {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    const error = err instanceof Error ? err : new Error(String(err));
    const kind = errorKind(err);
    ctx.metrics.failures.inc({ step, kind });
    const attempts = step === "leave" ? 1 : ++dp.attempts;
    ctx.record.patch(dpidHex, {
      state: "failed",
      lastError: { kind, message: error.message, at: ctx.clock.date() },
      attempts,
    });
    ctx.record.event({
      dpid: dpidHex,
      vm: vm?.name,
      kind: "error",
      detail: `${step}: ${kind}: ${error.message}`,
    });
    let retryInMs: number | undefined;
    if (vm && step !== "leave" && dp.connected && !ctx.stopped()) {
      retryInMs = dp.nextRetryDelay(this.opts.retryInitialMs, this.opts.retryMaxMs);
      this.scheduleRetry(dp, retryInMs);
    }
    ctx.log.error(
      { dpid: dpidHex, vm: vm?.name, step, kind, err: error.message, attempts, retryInMs },
      "provisioning failed",
    );
    ctx.emit("failed", { dpidHex, vm: vm?.name, error, ...(retryInMs !== undefined ? { retryInMs } : {}) });
  }

  private scheduleRetry(dp: Datapath, ms: number): void {
    dp.armRetry(
      this.ctx.clock.after(ms, () => {
        dp.retryFired();
        if (!dp.connected || this.ctx.stopped()) return;
        this.submitEnsure(dp, this.ctx.clock.now());
      }),
    );
  }

  /** renewLeases keeps the leases of the datapaths served (connected, or an action under way). */
  renewLeases(): Promise<void> {
    const cfg = this.ctx.config();
    // Leases ahead (policies.leaseAhead) are kept for the VMs still configured; the others go when unserved.
    const configured = cfg.policies.leaseAhead
      ? new Set(listConfiguredVms(cfg).map((v) => v.dpidHex))
      : new Set<string>();
    return this.leases.renew(
      (dp) => this.busy(dp),
      (dp) => configured.has(dp.dpidHex),
    );
  }

  /** idle resolves when no action is queued or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** close stops dispatching queued actions (running ones finish). */
  close(): void {
    this.queue.close();
  }

  /**
   * drained resolves once the actions under way have ended (after close, nothing new starts), or after
   * `ms`: false then, with the dpids still busy.
   */
  async drained(ms: number): Promise<{ ok: boolean; busy: string[] }> {
    const waiting = new AbortController();
    const ok = await Promise.race([
      this.queue.idle().then(() => true),
      sleep(this.ctx.clock, ms, waiting.signal).then(() => false),
    ]);
    waiting.abort();
    const busy = ok
      ? []
      : this.ctx.datapaths
          .all()
          .filter((dp) => this.busy(dp))
          .map((dp) => dp.dpidHex);
    return { ok, busy };
  }
}
