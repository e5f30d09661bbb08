/**
 * Host health: every `policies.hostLoss.probeSeconds` each libvirt host is probed once. A host that stops
 * answering is reported (log, event `host-lost`, lastError `host-unreachable` on its VMs' records); with
 * `replace`, once it has been lost for `afterSeconds`, the VMs of connected switches are placed and started
 * elsewhere, and when it answers again the stale copies left there are stopped. A VM of a connected switch
 * that is gone from its reachable host (undefined; or not running right after the host came back, e.g. it
 * rebooted) is ensured again.
 */
import { errorMessage } from "../common/errors.js";
import type { DaemonContext } from "./daemon-context.js";
import { isActive, type HostProbe } from "./libvirt/index.js";
import type { Provisioning } from "./provisioning.js";

/** HostHealth tracks which hosts are lost since when, and acts on each probe round. */
export class HostHealth {
  /** downSince: host -> clock.now() when it was first found unreachable (cleared when it answers). */
  private readonly downSince = new Map<string, number>();
  private round: Promise<void> | undefined;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly provisioning: Provisioning,
  ) {}

  /** markDown notes a host found unreachable outside a probe round (start-up reconciliation). */
  markDown(host: string): void {
    if (!this.downSince.has(host)) this.downSince.set(host, this.ctx.clock.now());
  }

  /** forget drops a host removed from the config. */
  forget(host: string): void {
    this.downSince.delete(host);
  }

  /** isDown: the host did not answer its last probe. */
  isDown(host: string): boolean {
    return this.downSince.has(host);
  }

  /** mayLeave: the hostLoss policy allows re-placing the VMs of this (lost) host now. */
  mayLeave(host: string): boolean {
    const policy = this.ctx.config().policies.hostLoss;
    const since = this.downSince.get(host);
    return (
      policy.action === "replace" &&
      since !== undefined &&
      this.ctx.clock.now() - since >= policy.afterSeconds * 1000
    );
  }

  /** check runs one probe round; concurrent calls share it. */
  check(): Promise<void> {
    this.round ??= this.checkOnce()
      .catch((e: unknown) => this.ctx.log.error({ err: errorMessage(e) }, "host check failed"))
      .finally(() => {
        this.round = undefined;
      });
    return this.round;
  }

  /** settled resolves when a running round has finished. */
  async settled(): Promise<void> {
    await this.round;
  }

  private async checkOnce(): Promise<void> {
    const { ctx } = this;
    if (ctx.stopped()) return;
    const probes = await ctx.hosts.probeAll();
    for (const p of probes) {
      if (ctx.stopped()) return;
      const since = this.downSince.get(p.name);
      if (!p.reachable) {
        if (since === undefined) {
          this.downSince.set(p.name, ctx.clock.now());
          this.onLost(p);
        }
        if (this.mayLeave(p.name)) this.replaceFrom(p.name);
        continue;
      }
      let back = false;
      if (since !== undefined) {
        back = true;
        this.downSince.delete(p.name);
        await this.onBack(p, ctx.clock.now() - since);
      }
      this.converge(p, back);
    }
  }

  private onLost(p: HostProbe): void {
    const { ctx } = this;
    const on = ctx.datapaths.onHost(p.name);
    const vms = on.flatMap((d) => (d.vmName ? [d.vmName] : []));
    const error = p.error ?? "no answer";
    const policy = ctx.config().policies.hostLoss;
    ctx.log.error(
      { host: p.name, err: error, vms, policy: policy.action, afterSeconds: policy.afterSeconds },
      policy.action === "replace"
        ? "libvirt host unreachable: its VMs are re-placed if it stays away"
        : "libvirt host unreachable: its VMs are reported, not moved (policies.hostLoss.action: report)",
    );
    ctx.record.event({ kind: "host-lost", detail: `${p.name}: ${error}` });
    for (const dp of on) {
      ctx.record.patch(dp.dpidHex, {
        lastError: {
          kind: "host-unreachable",
          message: `libvirt host ${p.name} does not answer: ${error}`,
          at: ctx.clock.date(),
        },
      });
    }
    ctx.emit("hostLost", { host: p.name, error, vms });
  }

  private replaceFrom(host: string): void {
    const { ctx } = this;
    for (const dp of ctx.datapaths.onHost(host)) {
      const vm = dp.vm;
      if (!dp.connected || !vm || this.provisioning.busy(dp)) continue;
      dp.placement = undefined;
      dp.replacedFrom = host;
      ctx.log.warn({ dpid: dp.dpidHex, vm: vm.name, from: host }, "re-placing a VM of a lost libvirt host");
      ctx.record.event({
        dpid: dp.dpidHex,
        vm: vm.name,
        kind: "replace",
        detail: `away from lost host ${host}`,
      });
      ctx.emit("replaced", { dpidHex: dp.dpidHex, vm: vm.name, from: host });
      this.provisioning.submitEnsure(dp, ctx.clock.now());
    }
  }

  private async onBack(p: HostProbe, downMs: number): Promise<void> {
    const { ctx } = this;
    ctx.log.info({ host: p.name, downMs }, "libvirt host reachable again");
    ctx.record.event({ kind: "host-back", detail: `${p.name} after ${downMs} ms` });
    ctx.emit("hostBack", { host: p.name, downMs });
    // Ensures waiting out their backoff (up to retryMaxMs) for this host go now: it answers again.
    for (const dp of ctx.datapaths.onHost(p.name)) {
      if (dp.connected && dp.vm) this.provisioning.retryNow(dp);
    }
    // A VM moved away while this host was lost may still run here (it lost its network, not its power):
    // two copies of one routing VM must not run, so the stale one is stopped (its definition is kept).
    for (const dp of ctx.datapaths.all()) {
      if (dp.replacedFrom !== p.name) continue;
      dp.replacedFrom = undefined;
      const vm = dp.vmName;
      const now = dp.placement?.host;
      const there = p.domains.find((d) => d.name === vm);
      if (!vm || !now || now === p.name || !there || !isActive(there.state)) continue;
      try {
        await ctx.hosts.manager(p.name).leave(vm, "destroy");
        ctx.log.warn({ vm, host: p.name, runsOn: now }, "stopped the stale copy of a re-placed VM");
      } catch (e) {
        ctx.log.error({ vm, host: p.name, err: errorMessage(e) }, "could not stop the stale copy of a VM");
      }
    }
  }

  private converge(p: HostProbe, hostCameBack: boolean): void {
    const { ctx } = this;
    for (const dp of ctx.datapaths.connected()) {
      const vm = dp.vm;
      if (!vm || this.provisioning.busy(dp) || dp.retryWaiting) continue;
      if ((dp.ensuredAt ?? 0) > p.probedAt.getTime()) continue;
      if (dp.placement?.host !== p.name) continue;
      const d = p.domains.find((x) => x.name === vm.name);
      if (d && (!hostCameBack || isActive(d.state))) continue;
      ctx.log.warn(
        { dpid: dp.dpidHex, vm: vm.name, host: p.name, state: d?.state ?? "undefined" },
        "the VM of a connected switch is gone from its host: ensuring it again",
      );
      this.provisioning.submitEnsure(dp, ctx.clock.now());
    }
  }
}
