/**
 * VmKeeper keeps a connected switch's VM whole, as RouteFlow needs it: a VM that stops behind rfboot's back
 * (shut off, crashed, destroyed by hand) is started again with a backoff (`policies.vmStopped`), and a port
 * added to or deleted from the switch reaches the running VM as a data NIC and RouteFlow's `rfconfig` row
 * (`policies.portDeleted`). Port changes of one datapath apply one at a time, after any action under way.
 */
import { VirshError, errorMessage } from "../common/errors.js";
import type { PortEvent } from "../controller/index.js";
import { sleep } from "./clock.js";
import type { DaemonContext } from "./daemon-context.js";
import type { Datapath } from "./datapath.js";
import type { HotplugResult, NicHotplug } from "./libvirt/index.js";
import { planPortChange } from "./port-change.js";
import type { Provisioning } from "./provisioning.js";

/** BUSY_WAIT_MS bounds how long a port change waits for the datapath's ensure or leave under way. */
const BUSY_WAIT_MS = 120_000;

/** VmKeeper acts on stopped VMs and on port changes of connected switches. */
export class VmKeeper {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: DaemonContext,
    private readonly provisioning: Provisioning,
    private readonly hotplug: NicHotplug,
  ) {}

  /**
   * vmStopped handles a VM found stopped (a libvirt event or a probe) while rfboot runs no action for it.
   * Only a VM whose switch is connected is started again: after a leave the stop is the leave policy's.
   */
  vmStopped(dp: Datapath, why: string): void {
    const { ctx } = this;
    const vm = dp.vm;
    if (!vm || !dp.connected || ctx.stopped()) return;
    const policy = ctx.config().policies.vmStopped;
    if (policy.action !== "restart") {
      ctx.record.event({ dpid: dp.dpidHex, vm: vm.name, kind: "stopped", detail: `${why} (policy: record)` });
      ctx.log.warn({ dpid: dp.dpidHex, vm: vm.name, why }, "VM stopped while its switch is connected");
      return;
    }
    const delayMs = dp.nextRestartDelay(
      ctx.clock.now(),
      policy.backoffSeconds * 1000,
      policy.maxBackoffSeconds * 1000,
      policy.resetSeconds * 1000,
    );
    ctx.log.warn(
      { dpid: dp.dpidHex, vm: vm.name, why, delayMs },
      "VM stopped while its switch is connected: starting it again",
    );
    ctx.record.event({
      dpid: dp.dpidHex,
      vm: vm.name,
      kind: "restart",
      detail: `${why}; starting it again in ${delayMs} ms`,
    });
    this.provisioning.ensureAfter(dp, delayMs);
  }

  /** portChanged queues a switch port's change for the datapath's VM (one change at a time per datapath). */
  portChanged(dp: Datapath, e: PortEvent): void {
    const key = dp.dpidHex;
    const next = (this.chains.get(key) ?? Promise.resolve())
      .then(() => this.applyPort(dp, e))
      .catch((err: unknown) => this.portFailed(dp, e, err));
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  /** idle resolves once every queued port change has been applied (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all(this.chains.values());
  }

  private async applyPort(dp: Datapath, e: PortEvent): Promise<void> {
    const { ctx } = this;
    const vm = dp.vm;
    const hostName = dp.placement?.host;
    const host = ctx.config().hosts.find((h) => h.name === hostName);
    // Without a placed VM there is nothing running to change: the next join lays the VM out with its ports.
    if (!vm || !host || !dp.connected) return;
    const plan = planPortChange({
      config: ctx.config(),
      vm,
      host,
      event: { reason: e.reason, port: e.port },
    });
    const log = { dpid: dp.dpidHex, vm: vm.name, port: e.port.no, reason: e.reason, action: plan.action };
    if (plan.action === "none") return;
    if (plan.action === "keep" || plan.action === "next-join") {
      ctx.log.info(log, plan.message);
      ctx.record.event({ dpid: dp.dpidHex, vm: vm.name, kind: "port", detail: plan.message });
      return;
    }
    await this.afterActions(dp);
    let r: HotplugResult;
    if (plan.action === "attach") {
      if (!dp.joinPorts.includes(e.port.no))
        dp.joinPorts = [...dp.joinPorts, e.port.no].sort((a, b) => a - b);
      dp.vm = plan.vm;
      // The row first: rfserver must find it when the port registers.
      await ctx.store.upsertRfconfigRows([plan.row]);
      // On a data-plane host the NIC's patch pair comes first and its tag goes into the NIC.
      const nic = await ctx.dataPlane.taggedNic(plan.vm, host, plan.nic);
      r = await this.hotplug.attachDataNic(host.uri, vm.name, nic);
      if (r.action === "attached")
        this.lateRows(dp, vm.name, `port ${e.port.no} added`, [
          `${plan.row.vm_id}/${plan.row.vm_port} -> ${plan.row.dp_id}/${plan.row.dp_port}`,
        ]);
    } else {
      r = await this.hotplug.detachDataNic(host.uri, vm.name, plan.nic);
      if (host.dataPlane) await ctx.dataPlane.unlink(vm.name, [plan.nic.vmPort]);
      await ctx.store.deleteRfconfigRows([plan.row]);
      dp.joinPorts = dp.joinPorts.filter((n) => n !== e.port.no);
    }
    ctx.log.info({ ...log, result: r.action, flags: r.flags }, r.message);
    ctx.record.event({
      dpid: dp.dpidHex,
      vm: vm.name,
      kind: "port",
      detail: `${plan.message}: ${r.message}`,
    });
    ctx.emit("port", { dpidHex: dp.dpidHex, vm: vm.name, port: e.port.no, action: r.action });
  }

  /**
   * lateRows handles rows written after the VM and the switch registered: rfserver matches a row only when a
   * registration arrives, so they stay unmatched until the switch reconnects (rfproxy registers its ports
   * again) and the VM's rfclient registers the interface (it does so once, at its start). The operator is
   * told (warning, `late-rows` event, the record's lastError); under `policies.lateRows: reconnect` rfboot
   * closes the switch's connection itself, which a relay's switch answers by reconnecting at once.
   */
  private lateRows(dp: Datapath, vm: string, why: string, rows: readonly string[]): void {
    const { ctx } = this;
    const reconnect = ctx.config().policies.lateRows.action === "reconnect";
    // A switch that left meanwhile has no connection to close: it registers again when it comes back.
    const dpid = dp.conn?.dpid;
    const done =
      reconnect &&
      dpid !== undefined &&
      ctx.reconnect(dpid, `rfconfig rows written late (${why}): re-registering`);
    const message =
      `rfconfig row(s) ${rows.join(", ")} written after the VM and the switch registered (${why}): ` +
      "rfserver matches rows only when a registration arrives. " +
      (done
        ? "rfboot closed the switch's connection so that rfproxy registers its ports again; "
        : "Reconnect the switch so that rfproxy registers its ports again (policies.lateRows: reconnect does it " +
          "in relay mode), and ") +
      `restart rfclient in ${vm} so that it registers the new interface`;
    ctx.log.warn({ dpid: dp.dpidHex, vm, rows, reconnected: done }, message);
    ctx.record.event({ dpid: dp.dpidHex, vm, kind: "late-rows", detail: message });
    ctx.record.patch(dp.dpidHex, { lastError: { kind: "late-rows", message, at: ctx.clock.date() } });
  }

  /** afterActions waits until no ensure or leave of the datapath is queued or running (bounded). */
  private async afterActions(dp: Datapath): Promise<void> {
    const until = this.ctx.clock.now() + BUSY_WAIT_MS;
    while (this.provisioning.busy(dp) && this.ctx.clock.now() < until) await sleep(this.ctx.clock, 100);
  }

  /**
   * portFailed tells the user what did not happen: where the driver cannot hot-plug, the change waits for
   * the VM's next start (its definition has it when libvirt took `--config`), else the cause.
   */
  private portFailed(dp: Datapath, e: PortEvent, err: unknown): void {
    const { ctx } = this;
    const unsupported = err instanceof VirshError && err.kind === "hotplug-unsupported";
    const detail = `port ${e.reason} ${e.port.no}: ${errorMessage(err)}`;
    ctx.record.event({ dpid: dp.dpidHex, vm: dp.vmName, kind: unsupported ? "port" : "error", detail });
    if (unsupported) ctx.log.warn({ dpid: dp.dpidHex, vm: dp.vmName, port: e.port.no }, errorMessage(err));
    else {
      ctx.record.patch(dp.dpidHex, {
        lastError: {
          kind: err instanceof VirshError ? err.kind : "port",
          message: detail,
          at: ctx.clock.date(),
        },
      });
      ctx.log.error(
        { dpid: dp.dpidHex, vm: dp.vmName, port: e.port.no, err: errorMessage(err) },
        "port change failed",
      );
    }
  }
}
