/**
 * Start-up reconciliation: compare MongoDB's records with what every libvirt host really has, fix the
 * records (adopt, repair, never duplicate), and seed each datapath's placement and known definition, so the
 * first joins after a restart find their VMs where they are.
 */
import { errorMessage } from "../common/errors.js";
import { listConfiguredVms } from "./config/index.js";
import type { DaemonContext } from "./daemon-context.js";
import type { HostHealth } from "./host-health.js";
import { isOutage, observedState, reconcile, type DomainListing, type VmRecord } from "./store/index.js";

/** reconcileAtStart probes every host, reconciles the records with them, and returns the actions taken. */
export async function reconcileAtStart(ctx: DaemonContext, health: HostHealth): Promise<number | undefined> {
  const probes = await ctx.hosts.probeAll();
  const byHost = new Map<string, DomainListing[]>();
  for (const p of probes) {
    if (!p.reachable) {
      ctx.log.warn({ host: p.name, err: p.error }, "libvirt host unreachable at start-up");
      health.markDown(p.name);
      continue;
    }
    byHost.set(
      p.name,
      p.domains.map((d) => ({ host: p.name, name: d.name, uuid: d.uuid, state: d.state })),
    );
  }
  const configured = listConfiguredVms(ctx.config());
  const byName = new Map(configured.map((v) => [v.name, v]));
  for (const [host, list] of byHost) {
    for (const d of list) {
      const vm = byName.get(d.name);
      if (!vm) continue;
      const dp = ctx.datapaths.obtain(vm.dpidHex);
      dp.vmName = vm.name;
      dp.placement = { vm: d.name, host, memoryMiB: vm.memoryMiB, running: d.state === "running" };
    }
  }
  let records: VmRecord[];
  try {
    records = await ctx.store.listRecords();
  } catch (e) {
    // Without the records nothing can be compared; the joins that follow still adopt what the hosts run.
    if (isOutage(e)) ctx.log.warn({ err: errorMessage(e) }, "reconciliation skipped: MongoDB unreachable");
    else ctx.log.error({ err: errorMessage(e) }, "reconciliation skipped: the records could not be read");
    return undefined;
  }
  const actions = reconcile(
    records,
    byHost,
    configured.map((v) => ({ dpidHex: v.dpidHex, name: v.name })),
  );
  for (const a of actions) {
    if ("patch" in a) await ctx.store.patchRecord(a.dpidHex, a.patch);
    if (a.type === "duplicate" || a.type === "conflict" || a.type === "unreachable") {
      ctx.log.warn({ action: a }, "reconciliation found a problem it will not fix by itself");
    }
  }
  clearEndedPrewarms(ctx, records, byHost);
  for (const r of records) {
    if (!r.vmName) continue;
    const dp = ctx.datapaths.obtain(r.dpidHex);
    dp.vmName ??= r.vmName;
    // The record's fingerprint is written only once its domain was defined from that config (ensure).
    if (r.host && r.uuid && r.configFingerprint) dp.definedAs = `${r.host} ${r.uuid} ${r.configFingerprint}`;
    // A prewarm image is restored at the VM's first start; placement keeps the VM on the image's host.
    if (r.prewarm) dp.prewarmImage = r.prewarm;
    if (r.host && !dp.placement && !byHost.has(r.host)) {
      // The record's host did not answer: keep the VM there (stable placement) until it is gone for good.
      dp.placement = { vm: r.vmName, host: r.host, memoryMiB: byName.get(r.vmName)?.memoryMiB ?? 0 };
    }
  }
  ctx.log.info({ records: records.length, actions: actions.length }, "reconciled MongoDB with libvirt");
  return actions.length;
}

/**
 * clearEndedPrewarms drops the `prewarming` mark of records whose prewarm boot is over: a mark outlives its
 * boot only when an rfboot died during it. A VM whose domain no longer runs on the mark's host is not being
 * booted; with prewarm off nothing will finish a boot. A domain that still runs keeps its mark: the prewarm
 * plan takes that boot over (or another instance, holding its lease, is still at it).
 */
function clearEndedPrewarms(
  ctx: DaemonContext,
  records: readonly VmRecord[],
  byHost: ReadonlyMap<string, DomainListing[]>,
): void {
  const enabled = ctx.config().policies.prewarm.enabled;
  for (const r of records) {
    const host = r.prewarming?.host;
    if (host === undefined) continue;
    const listed = byHost.get(host);
    if (enabled && listed === undefined) continue; // its host did not answer: nothing is known of the boot
    const runs = listed?.some((d) => d.name === r.vmName && observedState(d.state) === "running") ?? false;
    if (enabled && runs) continue;
    ctx.record.patch(r.dpidHex, { prewarming: null });
    ctx.log.info({ dpid: r.dpidHex, vm: r.vmName, host }, "prewarm mark of an earlier run cleared");
  }
}
