/**
 * Prewarm: configured VMs whose switch is not connected are booted ahead of it, to ready, then saved
 * (`managedsave`), so that the switch's first join restores its VM instead of cold-booting it. The
 * Prewarmer follows the prewarm plan (prewarm-plan.ts) after start-up and after each reload: it drops images
 * of another config, then submits the prewarms in the plan's order through the daemon's queue (keyed by dpid,
 * so a join of that switch waits for its prewarm), at most `concurrency` at once and, per host, no more than
 * its boot memory budget; a failed prewarm waits out a doubling backoff. Time comes from the DaemonClock.
 */
import { errorMessage } from "../common/errors.js";
import type { Cancel } from "./clock.js";
import { listConfiguredVms, resolveDatapath, type ResolvedVm, type RfbootConfig } from "./config/index.js";
import type { DaemonContext } from "./daemon-context.js";
import type { Datapath } from "./datapath.js";
import { diskPlanFrom } from "./libvirt/index.js";
import { bootMemoryBudget, prewarmImageStatus, prewarmPlan } from "./prewarm-plan.js";
import type { PrewarmResult } from "./provisioning.js";
import type { VmRecord } from "./store/index.js";

/** PrewarmSeam is what the Prewarmer needs of provisioning (Provisioning implements it; tests fake it). */
export interface PrewarmSeam {
  /** submit queues a prewarm and resolves what it did (undefined: it did not run); rejects on failure. */
  submit(dp: Datapath, vm: ResolvedVm, host: string): Promise<PrewarmResult | undefined>;
  /** busy: an action of this datapath is queued or running. */
  busy(dp: Datapath): boolean;
  /** dropImage removes a datapath's prewarm image and records why. */
  dropImage(dp: Datapath, vm: string, why: string): Promise<void>;
}

/** PrewarmerOptions tune the backoff of failed prewarms (ms): first delay and cap. */
export interface PrewarmerOptions {
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

/** SKIP_REASON matches the left-out reasons worth an event: a budget or placement keeps a VM from prewarm. */
const SKIP_REASON = /^(disk budget|memory budget|no host)/;

/** countPrewarmed sets the prewarmed-VMs gauge from the images the datapaths hold, per host. */
export function countPrewarmed(ctx: DaemonContext): void {
  const per = new Map<string, number>(ctx.config().hosts.map((h) => [h.name, 0]));
  for (const dp of ctx.datapaths.all()) {
    const host = dp.prewarmImage?.host;
    if (host !== undefined) per.set(host, (per.get(host) ?? 0) + 1);
  }
  ctx.metrics.prewarmedVms.reset();
  for (const [host, n] of per) ctx.metrics.prewarmedVms.set({ host }, n);
}

/** Prewarmer runs prewarm rounds (see the file comment); one round at a time, a kick during one repeats it. */
export class Prewarmer {
  private readonly inFlight = new Map<string, { host: string; memoryMiB: number }>();
  /** ending: each submitted prewarm until it ended and its end was handled. */
  private readonly ending = new Set<Promise<void>>();
  private readonly backoff = new Map<string, { delayMs: number; until: number }>();
  /** reported: the last left-out reason recorded per dpid, so a round repeats no event. */
  private readonly reported = new Map<string, string>();
  private readonly initialMs: number;
  private readonly maxMs: number;
  private timer: Cancel | undefined;
  private round: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly seam: PrewarmSeam,
    opts: PrewarmerOptions = {},
  ) {
    this.initialMs = opts.backoffInitialMs ?? 30_000;
    this.maxMs = opts.backoffMaxMs ?? 600_000;
  }

  /** inFlightCount is how many prewarms run or wait in the queue now. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** kick runs a round now (after start-up, a reload, a prewarm that ended); resolves when it is done. */
  kick(): Promise<void> {
    if (this.round) {
      this.again = true;
      return this.round;
    }
    this.round = (async () => {
      do {
        this.again = false;
        await this.plan();
      } while (this.again && !this.halted());
    })().finally(() => (this.round = undefined));
    return this.round;
  }

  /** idle resolves when no round runs and no prewarm is in flight (tests). */
  async idle(): Promise<void> {
    while (this.round || this.inFlight.size > 0) {
      await (this.round ?? new Promise((r) => setTimeout(r, 5)));
    }
  }

  /**
   * removed handles VMs a reload took out of the config: one that holds a prewarm image (booted only ahead
   * of a switch that never came) is removed as `rfboot vm remove` does: destroyed, undefined with its saved
   * state, its rfboot-made disk deleted. Its record stays, without the image, `missing`.
   */
  async removed(vms: readonly ResolvedVm[], config: RfbootConfig): Promise<void> {
    const { ctx } = this;
    for (const vm of vms) {
      const dp = ctx.datapaths.get(vm.dpidHex);
      const image = dp?.prewarmImage;
      if (!dp || !image || dp.connected || this.seam.busy(dp)) continue;
      const host = config.hosts.find((h) => h.name === image.host);
      try {
        const disk = host ? vm.plan(host).disk : undefined;
        await ctx.hosts.manager(image.host).remove(vm.name, disk ? diskPlanFrom(disk) : undefined);
      } catch (e) {
        ctx.log.warn(
          { dpid: dp.dpidHex, vm: vm.name, host: image.host, err: errorMessage(e) },
          "prewarm: VM removed from the config not removed from its host",
        );
        continue;
      }
      dp.prewarmImage = undefined;
      dp.placement = undefined;
      ctx.record.patch(dp.dpidHex, { prewarm: null, state: "missing" });
      ctx.record.event({
        dpid: dp.dpidHex,
        vm: vm.name,
        kind: "prewarm",
        detail: `dropped: removed from the config (domain undefined on ${image.host})`,
      });
      ctx.metrics.prewarms.inc({ outcome: "dropped" });
    }
    countPrewarmed(ctx);
  }

  /** stop ends the rounds: no new prewarm is submitted, the backoff timer goes. */
  stop(): void {
    this.stopped = true;
    this.timer?.();
    this.timer = undefined;
  }

  /**
   * drained resolves when every submitted prewarm has ended. The daemon's stop waits for it before it lets
   * the leases go and closes the store: a prewarm cut short destroys the VM it booted and records that.
   */
  async drained(): Promise<void> {
    while (this.ending.size > 0) await Promise.all([...this.ending]);
  }

  private halted(): boolean {
    return this.stopped || this.ctx.stopped();
  }

  /** plan runs one round: stale images dropped, then the plan's next prewarms submitted within the bounds. */
  private async plan(): Promise<void> {
    const { ctx } = this;
    const config = ctx.config();
    const policy = config.policies.prewarm;
    if (!policy.enabled || this.halted()) return;
    await this.dropStale(config);
    let records: VmRecord[];
    try {
      records = await ctx.store.listRecords();
    } catch (e) {
      ctx.log.warn({ err: errorMessage(e) }, "prewarm: records not read; trying again later");
      this.wakeIn(this.initialMs);
      return;
    }
    const byDpid = new Map(records.map((r) => [r.dpidHex, r]));
    // What this daemon knows of its images comes first: a record read while the write of an image saved a
    // moment ago was under way can miss it, and planning from it would boot and save that VM once more.
    for (const dp of ctx.datapaths.all()) {
      if (!dp.prewarmImage) continue;
      const rec = byDpid.get(dp.dpidHex) ?? ({ dpidHex: dp.dpidHex } as VmRecord);
      byDpid.set(dp.dpidHex, { ...rec, state: "prewarmed", prewarm: dp.prewarmImage, prewarming: null });
    }
    const connected = new Set(ctx.datapaths.connected().map((d) => d.dpidHex));
    const capacities = ctx.hosts.capacities();
    const plan = prewarmPlan(config, capacities, byDpid, connected);
    this.report(plan.leftOut);
    const caps = new Map(capacities.map((c) => [c.name, c]));
    const now = ctx.clock.now();
    let wake = Number.POSITIVE_INFINITY;
    for (const e of plan.order) {
      if (this.inFlight.size >= policy.concurrency || this.halted()) break;
      if (e.image === "fresh" || this.inFlight.has(e.dpidHex)) continue;
      const b = this.backoff.get(e.dpidHex);
      if (b && b.until > now) {
        wake = Math.min(wake, b.until);
        continue;
      }
      const dp = ctx.datapaths.obtain(e.dpidHex);
      if (dp.connected || this.seam.busy(dp)) continue;
      const cap = caps.get(e.host);
      const booting = [...this.inFlight.values()]
        .filter((f) => f.host === e.host)
        .reduce((sum, f) => sum + f.memoryMiB, 0);
      if (!cap || booting + e.memoryMiB > bootMemoryBudget(config, cap)) continue;
      const vm = resolveDatapath(config, BigInt(`0x${e.dpidHex}`));
      if (!vm) continue;
      this.launch(dp, vm, e.host);
    }
    if (Number.isFinite(wake)) this.wakeIn(wake - now);
  }

  /** dropStale removes the images of another config than their VM's current one (their VM boots anew). */
  private async dropStale(config: RfbootConfig): Promise<void> {
    for (const vm of listConfiguredVms(config)) {
      const dp = this.ctx.datapaths.get(vm.dpidHex);
      if (!dp?.prewarmImage || dp.connected || this.seam.busy(dp)) continue;
      const rec = { prewarm: dp.prewarmImage } as VmRecord;
      if (prewarmImageStatus(vm, rec) === "stale") await this.seam.dropImage(dp, vm.name, "config changed");
    }
  }

  /** report records each budget or placement reason that keeps a VM from prewarm, once per change. */
  private report(leftOut: readonly { dpidHex: string; vm: string; reason: string }[]): void {
    const { ctx } = this;
    const now = new Set<string>();
    for (const l of leftOut) {
      if (!SKIP_REASON.test(l.reason)) continue;
      now.add(l.dpidHex);
      if (this.reported.get(l.dpidHex) === l.reason) continue;
      this.reported.set(l.dpidHex, l.reason);
      ctx.metrics.prewarms.inc({ outcome: "skipped" });
      ctx.record.event({ dpid: l.dpidHex, vm: l.vm, kind: "prewarm", detail: `skipped: ${l.reason}` });
      ctx.log.info({ dpid: l.dpidHex, vm: l.vm, reason: l.reason }, "prewarm skipped");
    }
    for (const d of [...this.reported.keys()]) if (!now.has(d)) this.reported.delete(d);
  }

  /** launch submits one prewarm; its end (any outcome) starts the next round. */
  private launch(dp: Datapath, vm: ResolvedVm, host: string): void {
    const dpidHex = dp.dpidHex;
    this.inFlight.set(dpidHex, { host, memoryMiB: vm.memoryMiB });
    const ended: Promise<void> = this.seam
      .submit(dp, vm, host)
      .then(
        (r) => {
          if (r?.outcome === "leased-elsewhere") this.failed(dpidHex);
          else this.backoff.delete(dpidHex);
        },
        // Recorded by the action (event, log, metric, lastError): here only the wait before the next try.
        () => this.failed(dpidHex),
      )
      .finally(() => {
        this.inFlight.delete(dpidHex);
        this.ending.delete(ended);
        if (!this.halted()) void this.kick();
      });
    this.ending.add(ended);
  }

  /** failed doubles the dpid's backoff (from backoffInitialMs up to backoffMaxMs). */
  private failed(dpidHex: string): void {
    const prev = this.backoff.get(dpidHex);
    const delayMs = prev ? Math.min(prev.delayMs * 2, this.maxMs) : this.initialMs;
    this.backoff.set(dpidHex, { delayMs, until: this.ctx.clock.now() + delayMs });
  }

  /** wakeIn runs a round `ms` from now (a backoff ends), replacing an earlier wake-up. */
  private wakeIn(ms: number): void {
    this.timer?.();
    this.timer = this.ctx.clock.after(Math.max(0, ms), () => {
      this.timer = undefined;
      if (!this.halted()) void this.kick();
    });
  }
}
