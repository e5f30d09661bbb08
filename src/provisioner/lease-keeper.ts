/**
 * Leases of the datapaths this instance serves: several rfboot instances may share one MongoDB, and a dpid
 * is acted on by the instance holding its lease. Claimed from the join on, beside the work that only
 * reads (the domain's state), and confirmed before anything of the VM changes; renewed while the switch is
 * served, released when it is not.
 */
import { hostname } from "node:os";
import { StoreError, errorMessage } from "../common/errors.js";
import { processAlive } from "../common/proc.js";
import type { DaemonContext } from "./daemon-context.js";
import type { Datapath } from "./datapath.js";
import { isOutage, leaseMarginMs } from "./store/index.js";

/** leaseRenewMs is how often the daemon renews its leases (and hands over those asked for): a third of the ttl. */
export function leaseRenewMs(ttlMs: number): number {
  return Math.max(1000, ttlMs / 3);
}

/** LeaseKeeperOptions: the lease ttl, and how to tell whether a local pid still runs. */
export interface LeaseKeeperOptions {
  ttlMs: number;
  /**
   * processAlive tells whether a local pid runs (a dead predecessor's lease is taken over); a zombie is dead:
   * a killed rfboot stays one where PID 1 does not reap.
   */
  processAlive?: (pid: number) => boolean;
}

/** Claim is a claim's outcome: the lease is this instance's, another's, or unknown (MongoDB away: boot anyway). */
type Claim = "held" | "refused" | "unchecked";

/** LeaseKeeper claims, renews and releases the leases of this instance's datapaths. */
export class LeaseKeeper {
  private readonly processAlive: (pid: number) => boolean;
  /** early: claims begun at a join, by dpid, for the ensure that follows to take (see begin). */
  private readonly early = new Map<string, Promise<Claim>>();
  /** inflight: claims under way, by dpid: a join's claim made while one ahead runs takes that one. */
  private readonly inflight = new Map<string, Promise<Claim>>();
  /** asked: dpids whose holder this instance asked for the lease since their switch's join (want). */
  private readonly asked = new Set<string>();
  /** wanting: dpids with a want of this instance in the database, withdrawn once the lease is won. */
  private readonly wanting = new Set<string>();
  /** handedOver: dpids whose lease this instance gave up to another's want, and when (not claimed ahead). */
  private readonly handedOver = new Map<string, number>();
  /** releasing: releases under way, by dpid: a claim of the same lease waits for its end. */
  private readonly releasing = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: DaemonContext,
    private readonly opts: LeaseKeeperOptions,
  ) {
    this.processAlive = opts.processAlive ?? processAlive;
  }

  /**
   * begin starts the datapath's claim now (its switch joined), so that its round trip runs while the join is
   * recorded and its ensure is queued and reads the domain's state; the ensure's `claim` then takes it. Made
   * before the join's record patch, the claim goes to MongoDB first (the store holds its bookkeeping while a
   * claim is under way), not behind it.
   */
  begin(dp: Datapath): void {
    this.asked.delete(dp.dpidHex);
    // A claim begun at an earlier join and never taken (the VM could not be placed) is stale: replaced.
    const p = this.claimNow(dp);
    // Its outcome is the ensure's to report; unclaimed, a failure must not surface as an unhandled rejection.
    p.catch(() => undefined);
    this.early.set(dp.dpidHex, p);
  }

  /**
   * claim takes the datapath's lease for this instance: the claim begun at its join when there is one (if
   * what it won is still fresh), else a new one. False when another instance holds the lease.
   */
  async claim(dp: Datapath): Promise<boolean> {
    const p = this.early.get(dp.dpidHex);
    this.early.delete(dp.dpidHex);
    const first = p ? await p : undefined;
    if (first === "refused") return false;
    // The ensure may have waited in the queue since: a lease won then and close to its expiry is claimed anew.
    // One unchecked at the join is asked again (the outage may be over), quietly: the join's warning said it.
    return (await this.claimNow(dp, first === "unchecked")) !== "refused";
  }

  /**
   * ahead claims the lease of a configured VM whose switch is not connected (policies.leaseAhead), so that
   * its join starts the VM with no database round trip on the way; kept by `renew` until another instance
   * asks for it. True when held. Quiet: refused (another instance holds it), unchecked (MongoDB away) or
   * failed, the join claims it as without this. A lease given up to another instance's want within a ttl is
   * not taken back ahead.
   */
  async ahead(dp: Datapath): Promise<boolean> {
    const gaveAt = this.handedOver.get(dp.dpidHex);
    if (gaveAt !== undefined && this.ctx.clock.now() - gaveAt < this.opts.ttlMs) return false;
    if (dp.connected) return false;
    try {
      return (await this.claimNow(dp, true)) === "held";
    } catch (e) {
      this.ctx.log.debug({ dpid: dp.dpidHex, err: errorMessage(e) }, "lease not claimed ahead");
      return false;
    }
  }

  /**
   * refused reports a join's claim refused (another instance holds the lease): the first refusal since the
   * switch joined asks the holder for it (want), which a holder keeping it ahead of a switch of its own
   * that is not connected gives up at its next renewal. Returns the delay before claiming again: a little
   * over that renewal's period after asking, the lease's ttl otherwise (the holder serves the switch too).
   */
  refused(dp: Datapath): number {
    const { ctx } = this;
    const renewMs = leaseRenewMs(this.opts.ttlMs);
    if (this.asked.has(dp.dpidHex) || !ctx.store.want) return this.opts.ttlMs;
    this.asked.add(dp.dpidHex);
    this.wanting.add(dp.dpidHex);
    ctx.store.want(dp.dpidHex, ctx.instanceId).catch((e: unknown) => {
      ctx.log.debug({ dpid: dp.dpidHex, err: errorMessage(e) }, "lease not asked for");
    });
    return renewMs + Math.min(1000, renewMs / 10);
  }

  /**
   * claimNow takes the datapath's lease for this instance, or joins the claim of it under way. While MongoDB
   * is out (known from the outbox, or the claim's own failure is an outage) it boots anyway: the VM runs while
   * the database is away and the record follows. Any other failure is thrown (the VM is not booted: whether
   * another instance holds the datapath is unknown); the caller records it and retries. `quiet`: an unchecked
   * lease is not logged again.
   */
  private claimNow(dp: Datapath, quiet = false): Promise<Claim> {
    // Held and renewed with time to spare (a rejoin, a restart of the VM, a lease held ahead): no round trip
    // on the join's path.
    if (dp.leased && dp.leaseUntil - this.ctx.clock.now() > leaseMarginMs(this.opts.ttlMs))
      return Promise.resolve("held");
    const running = this.inflight.get(dp.dpidHex);
    if (running) return running;
    const p = this.claimOnce(dp, quiet).finally(() => {
      if (this.inflight.get(dp.dpidHex) === p) this.inflight.delete(dp.dpidHex);
    });
    this.inflight.set(dp.dpidHex, p);
    return p;
  }

  private async claimOnce(dp: Datapath, quiet: boolean): Promise<Claim> {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    if (!ctx.store.stats().online) {
      // Known outage (the outbox is buffering): do not spend a server-selection timeout per VM finding out.
      if (!quiet) ctx.log.warn({ dpid: dpidHex }, "lease not checked: MongoDB unreachable");
      return "unchecked";
    }
    // A release of this lease under way goes first: a claim beside it could extend the lease the release
    // then expires, and this instance would act on a lease nobody holds.
    // Awaited only then: otherwise the claim is sent within the join's own turn, ahead of its other work.
    const releasing = this.releasing.get(dpidHex);
    if (releasing) await releasing;
    try {
      const at = ctx.clock.now();
      let ok = await ctx.store.claim(dpidHex, ctx.instanceId, this.opts.ttlMs);
      if (!ok && (await this.releaseDeadLocalLease(dpidHex))) {
        ok = await ctx.store.claim(dpidHex, ctx.instanceId, this.opts.ttlMs);
      }
      if (ok) {
        dp.leased = true;
        dp.leaseUntil = at + this.opts.ttlMs;
        this.handedOver.delete(dpidHex);
        if (this.wanting.delete(dpidHex)) {
          ctx.store.unwant?.(dpidHex, ctx.instanceId).catch(() => undefined);
        }
      }
      return ok ? "held" : "refused";
    } catch (e) {
      if (isOutage(e)) {
        if (!quiet)
          ctx.log.warn({ dpid: dpidHex, err: errorMessage(e) }, "lease not checked: MongoDB unreachable");
        return "unchecked";
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
   * renew keeps the leases of the datapaths this instance serves (switch connected, or an action queued or
   * running) and those `ahead` says to hold while their switch is away (leases ahead), and releases the
   * others, so another instance can act for a switch that moved to it. A lease held ahead that another
   * instance asked for (want) is given up, unless its switch has come back here meanwhile.
   */
  async renew(
    busy: (dp: Datapath) => boolean,
    ahead: (dp: Datapath) => boolean = () => false,
  ): Promise<void> {
    const { ctx } = this;
    const keep: string[] = [];
    for (const dp of ctx.datapaths.all()) {
      if (!dp.leased) continue;
      if (!dp.connected && !busy(dp) && !ahead(dp)) {
        await this.giveUp(dp);
        continue;
      }
      keep.push(dp.dpidHex);
    }
    if (keep.length === 0) return;
    try {
      const at = ctx.clock.now();
      // One scan and one update for all of them, not a round trip per datapath.
      const { lost, wanted = [] } = await ctx.store.renewAll(
        ctx.instanceId,
        this.opts.ttlMs,
        undefined,
        keep,
      );
      const gone = new Set(lost);
      for (const d of keep) {
        const dp = ctx.datapaths.get(d);
        if (!dp) continue;
        dp.leased = !gone.has(d);
        dp.leaseUntil = dp.leased ? at + this.opts.ttlMs : 0;
      }
      const handOver = wanted
        .map((d) => ctx.datapaths.get(d))
        .filter((dp): dp is Datapath => dp !== undefined && dp.leased && !dp.connected && !busy(dp));
      if (handOver.length > 0) {
        ctx.log.info(
          { dpids: handOver.map((dp) => dp.dpidHex) },
          "leases held ahead given up: another rfboot instance's switch asked for them",
        );
        for (const dp of handOver) this.handedOver.set(dp.dpidHex, ctx.clock.now());
        await Promise.all(handOver.map((dp) => this.giveUp(dp)));
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

  /**
   * giveUp marks the datapath unleased at once, decided in the same turn as the check that chose it (a join
   * from then on claims anew), then releases the lease.
   */
  private giveUp(dp: Datapath): Promise<void> {
    dp.leased = false;
    return this.release(dp);
  }

  /** release gives up a datapath's lease; a failure leaves it to expire after its ttl. */
  async release(dp: Datapath): Promise<void> {
    dp.leaseUntil = 0;
    const p = this.ctx.store.release(dp.dpidHex, this.ctx.instanceId).then(
      () => undefined,
      (e: unknown) => {
        const level = isOutage(e) ? "debug" : "warn";
        this.ctx.log[level](
          { dpid: dp.dpidHex, err: errorMessage(e) },
          "lease not released; it expires by itself",
        );
      },
    );
    this.releasing.set(dp.dpidHex, p);
    await p;
    if (this.releasing.get(dp.dpidHex) === p) this.releasing.delete(dp.dpidHex);
  }
}
