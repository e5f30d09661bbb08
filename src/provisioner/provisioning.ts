/**
 * Provisioning steps of one datapath: place its VM and queue `ensure` (lease -> rfconfig rows -> XML ->
 * define + start, or adopt/resume -> readiness), or apply the leave policy; record a failure with its cause
 * and retry with backoff while the switch stays connected; keep the leases of the datapaths served.
 */
import { hostname } from "node:os";
import { RfbootError, StoreError, VirshError, errorMessage } from "../common/errors.js";
import { buildDomainXml } from "../xmlgen/index.js";
import { configHash, hostsFor, type HostConfig, type ResolvedVm } from "./config/index.js";
import type { DaemonContext, EnsureOutcome } from "./daemon-context.js";
import type { Datapath } from "./datapath.js";
import type { DiskPlan as LifecycleDisk, LeaveAction, LeaveOutcome } from "./lifecycle.js";
import { rfconfigRows } from "./mapping.js";
import { PlacementError, place, type HostCapacity } from "./placement.js";
import { ActionQueue } from "./queue.js";
import { isOutage, type RecordPatch, type VmState } from "./store/index.js";
import type { ReadinessMode, ReadinessWatcher } from "./vm-readiness.js";

/** DaemonAction is what the queue runs for one dpid: make its VM run, or apply the leave policy. */
export type DaemonAction =
  | { kind: "ensure"; vm: ResolvedVm; host: string; joinedAt: number }
  | { kind: "leave"; vm: ResolvedVm; host: string; action: LeaveAction };

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

/** MAX_CONCURRENT_ACTIONS caps provisioning actions in flight (a burst of joins waits in the queue beyond it). */
const MAX_CONCURRENT_ACTIONS = 128;

function lifecycleDisk(vm: ResolvedVm, host: HostConfig): LifecycleDisk | undefined {
  const d = vm.plan(host).disk;
  if (!d || d.kind === "none") return undefined;
  return { kind: d.kind, base: d.base, format: d.baseFormat, path: d.path };
}

/** errorKind is the short tag recorded in `lastError.kind` and the failure metric. */
export function errorKind(err: unknown): string {
  if (err instanceof VirshError) return err.kind;
  if (err instanceof PlacementError) return "placement";
  if (err instanceof StoreError) return err.operation === "claim" ? "lease" : "store";
  if (err instanceof RfbootError) return err.name;
  return "other";
}

function defaultProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

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

/** Provisioning runs ensure and leave actions through the queue, with retries and leases. */
export class Provisioning {
  private readonly queue: ActionQueue<string, DaemonAction, EnsureOutcome | LeaveOutcome>;
  private readonly startGates = new Map<string, Gate>();
  private readonly processAlive: (pid: number) => boolean;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly readiness: ReadinessWatcher,
    private readonly opts: ProvisioningOptions,
  ) {
    this.processAlive = opts.processAlive ?? defaultProcessAlive;
    this.queue = new ActionQueue<string, DaemonAction, EnsureOutcome | LeaveOutcome>({
      // Only define/start hold one of a host's start slots (startGate); the lease, the MongoDB writes and
      // the XML of other joins proceed meanwhile, so a slow database does not idle the hosts.
      classify: (a) => ({ host: a.host, limited: false }),
      globalLimit: MAX_CONCURRENT_ACTIONS,
      hostLimit: (h) => this.ctx.config().hosts.find((x) => x.name === h)?.maxConcurrentStarts ?? 1,
      now: () => this.ctx.clock.now(),
      handler: (key, action) => {
        const dp = this.ctx.datapaths.obtain(key);
        return action.kind === "ensure" ? this.ensure(dp, action) : this.leave(dp, action);
      },
      // A failed action has been recorded and logged by `fail` (and retried); the queue need not report it.
      onError: () => undefined,
    });
  }

  /** busy: an action of this datapath is queued or running. */
  busy(dp: Datapath): boolean {
    return this.queue.pendingOf(dp.dpidHex) !== undefined || this.queue.runningOf(dp.dpidHex) !== undefined;
  }

  /** cancelPendingLeave drops a queued leave that has not run yet (the switch is back). */
  cancelPendingLeave(dp: Datapath): void {
    if (this.queue.pendingOf(dp.dpidHex)?.kind === "leave") this.queue.cancel(dp.dpidHex);
  }

  /** submitEnsure places the datapath's VM and queues its ensure; a placement failure is recorded. */
  submitEnsure(dp: Datapath, joinedAt: number): void {
    const vm = dp.vm;
    if (!vm) return;
    let host: string;
    try {
      host = place(
        { vm: vm.name, memoryMiB: vm.memoryMiB, ...(vm.hostPin ? { pin: vm.hostPin } : {}) },
        this.candidateCapacities(dp, vm),
        this.ctx.datapaths.placements(),
      ).host;
    } catch (err) {
      this.fail(dp, vm, err, "placement");
      return;
    }
    dp.placement = { vm: vm.name, host, memoryMiB: vm.memoryMiB };
    void this.queue.submit(dp.dpidHex, { kind: "ensure", vm, host, joinedAt });
  }

  /** submitLeave queues the leave policy for the datapath's VM where it is placed. */
  submitLeave(dp: Datapath, action: LeaveAction): void {
    const vm = dp.vm;
    const host = dp.placement?.host;
    if (!vm || !host) return;
    void this.queue.submit(dp.dpidHex, { kind: "leave", vm, host, action });
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
    try {
      if (!hostCfg) throw new PlacementError(`host ${host} is no longer configured`, vm.name, {});
      const claimed = await this.claim(dp);
      if (!claimed) {
        ctx.log.info({ dpid: dpidHex, vm: vm.name }, "another rfboot instance holds this datapath's lease");
        this.scheduleRetry(dp, this.opts.leaseTtlMs);
        return { dpidHex, vm: vm.name, host, action: "leased-elsewhere", reactionMs: 0 };
      }
      // RouteFlow's rows go first: rfserver must find them when the VM's rfclient registers.
      await ctx.store.upsertRfconfigRows(rfconfigRows(vm));
      const plan = vm.plan(hostCfg);
      const xml = buildDomainXml(plan.description);
      const uuid = plan.description.uuid ?? "";
      const fingerprint = configHash(vm);
      const definedAs = `${host} ${uuid} ${fingerprint}`;
      // An existing domain already defined from this very VM config is not redefined (a no-op `virsh define`
      // per rejoin or restart); a changed VM (SIGHUP) or an unknown definition is, and takes it at next start.
      const redefine = dp.definedAs !== definedAs;
      // The fingerprint says what the domain was defined from: written now only when that is already true,
      // otherwise once `define` succeeded (a failed redefine must not leave the new config's fingerprint).
      ctx.record.patch(dpidHex, { host, uuid, ...(redefine ? {} : { configFingerprint: fingerprint }) });
      const manager = ctx.hosts.manager(host);
      const readinessFrom = await this.readiness.offset(plan.consoleLog);
      const disk = lifecycleDisk(vm, hostCfg);
      const res = await this.startGate(host).run(() =>
        manager.ensureRunning({
          name: vm.name,
          uuid,
          xml,
          redefine,
          ...(disk ? { disk } : {}),
          // `starting` only when rfboot really defines/starts/resumes: an adopted VM never reads `starting`.
          onStarting: () => ctx.record.patch(dpidHex, { state: "starting" }),
          onDefined: (at) => ctx.record.patch(dpidHex, { definedAt: at, configFingerprint: fingerprint }),
        }),
      );
      dp.definedAs = definedAs;
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
        plan.consoleLog,
        res.action === "adopted" ? 0 : readinessFrom,
        a.joinedAt,
        mode,
      );
      return out;
    } catch (err) {
      dp.definedAs = undefined;
      this.fail(dp, vm, err, "ensure");
      throw err;
    }
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

  /**
   * claim takes the datapath's lease for this instance. While MongoDB is out (known from the outbox, or
   * the claim's own failure is an outage) it boots anyway: the VM runs while the database is away and the
   * record follows. Any other failure is thrown (the VM is not booted: whether another instance holds the
   * datapath is unknown); the caller records it and retries.
   */
  private async claim(dp: Datapath): Promise<boolean> {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    if (!ctx.store.stats().online) {
      // Known outage (the outbox is buffering): do not spend a server-selection timeout per VM finding out.
      ctx.log.warn({ dpid: dpidHex }, "lease not checked: MongoDB unreachable");
      return true;
    }
    try {
      let ok = await ctx.store.claim(dpidHex, ctx.instanceId, this.opts.leaseTtlMs);
      if (!ok && (await this.releaseDeadLocalLease(dpidHex))) {
        ok = await ctx.store.claim(dpidHex, ctx.instanceId, this.opts.leaseTtlMs);
      }
      if (ok) dp.leased = true;
      return ok;
    } catch (e) {
      if (isOutage(e)) {
        ctx.log.warn({ dpid: dpidHex, err: errorMessage(e) }, "lease not checked: MongoDB unreachable");
        return true;
      }
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
    const { ctx } = this;
    const lease = await ctx.store.lease(dpidHex);
    if (!lease || lease.owner === ctx.instanceId) return false;
    const m = /^(.*):(\d+)$/.exec(lease.owner);
    if (!m || m[1] !== hostname() || lease.expiresAt.getTime() <= ctx.clock.date().getTime()) return false;
    const pid = Number(m[2]);
    if (pid === process.pid || this.processAlive(pid)) return false;
    const released = await ctx.store.release(dpidHex, lease.owner);
    if (released) {
      ctx.log.warn(
        { dpid: dpidHex, previous: lease.owner },
        "took over the lease of a dead rfboot process of this machine",
      );
    }
    return released;
  }

  /**
   * renewLeases keeps the leases of the datapaths this instance serves (switch connected, or an action
   * queued or running) and releases the others, so another instance can act for a switch that moved to it.
   */
  async renewLeases(): Promise<void> {
    const { ctx } = this;
    const keep: string[] = [];
    for (const dp of ctx.datapaths.all()) {
      if (!dp.leased) continue;
      if (!dp.connected && !this.busy(dp)) {
        dp.leased = false;
        await this.release(dp);
        continue;
      }
      keep.push(dp.dpidHex);
    }
    if (keep.length === 0) return;
    try {
      // One scan and one update for all of them, not a round trip per datapath.
      const { lost } = await ctx.store.renewAll(ctx.instanceId, this.opts.leaseTtlMs, undefined, keep);
      for (const d of lost) {
        const dp = ctx.datapaths.get(d);
        if (dp) dp.leased = false;
      }
    } catch (e) {
      // The next round (a third of the lease's ttl later) tries again, before the leases expire. During an
      // outage that is expected every round and the store already reported the outage.
      const level = isOutage(e) ? "debug" : "warn";
      ctx.log[level](
        { leases: keep.length, err: errorMessage(e) },
        "leases not renewed; retrying next round",
      );
    }
  }

  /** release gives up a datapath's lease; a failure leaves it to expire after its ttl. */
  async release(dp: Datapath): Promise<void> {
    try {
      await this.ctx.store.release(dp.dpidHex, this.ctx.instanceId);
    } catch (e) {
      const level = isOutage(e) ? "debug" : "warn";
      this.ctx.log[level](
        { dpid: dp.dpidHex, err: errorMessage(e) },
        "lease not released; it expires by itself",
      );
    }
  }

  /** idle resolves when no action is queued or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** close stops dispatching queued actions (running ones finish). */
  close(): void {
    this.queue.close();
  }
}
