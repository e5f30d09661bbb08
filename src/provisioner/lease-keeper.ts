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
   * claimNow takes the datapath's lease for this instance. While MongoDB is out (known from the outbox, or
   * the claim's own failure is an outage) it boots anyway: the VM runs while the database is away and the
   * record follows. Any other failure is thrown (the VM is not booted: whether another instance holds the
   * datapath is unknown); the caller records it and retries. `quiet`: an unchecked lease is not logged again.
   */
  private async claimNow(dp: Datapath, quiet = false): Promise<Claim> {
    const { ctx } = this;
    const dpidHex = dp.dpidHex;
    // Held and renewed with time to spare (a rejoin, a restart of the VM): no round trip on the join's path.
    if (dp.leased && dp.leaseUntil - ctx.clock.now() > leaseMarginMs(this.opts.ttlMs)) return "held";
    if (!ctx.store.stats().online) {
      // Known outage (the outbox is buffering): do not spend a server-selection timeout per VM finding out.
      if (!quiet) ctx.log.warn({ dpid: dpidHex }, "lease not checked: MongoDB unreachable");
      return "unchecked";
    }
    try {
      const at = ctx.clock.now();
      let ok = await ctx.store.claim(dpidHex, ctx.instanceId, this.opts.ttlMs);
      if (!ok && (await this.releaseDeadLocalLease(dpidHex))) {
        ok = await ctx.store.claim(dpidHex, ctx.instanceId, this.opts.ttlMs);
      }
      if (ok) {
        dp.leased = true;
        dp.leaseUntil = at + this.opts.ttlMs;
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
   * renewLeases keeps the leases of the datapaths this instance serves (switch connected, or an action
   * queued or running) and releases the others, so another instance can act for a switch that moved to it.
   */
  async renew(busy: (dp: Datapath) => boolean): Promise<void> {
    const { ctx } = this;
    const keep: string[] = [];
    for (const dp of ctx.datapaths.all()) {
      if (!dp.leased) continue;
      if (!dp.connected && !busy(dp)) {
        dp.leased = false;
        dp.leaseUntil = 0;
        await this.release(dp);
        continue;
      }
      keep.push(dp.dpidHex);
    }
    if (keep.length === 0) return;
    try {
      const at = ctx.clock.now();
      // One scan and one update for all of them, not a round trip per datapath.
      const { lost } = await ctx.store.renewAll(ctx.instanceId, this.opts.ttlMs, undefined, keep);
      const gone = new Set(lost);
      for (const d of keep) {
        const dp = ctx.datapaths.get(d);
        if (!dp) continue;
        dp.leased = !gone.has(d);
        dp.leaseUntil = dp.leased ? at + this.opts.ttlMs : 0;
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
    dp.leaseUntil = 0;
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
}
