/**
 * RouteFlow's rows of the configured VMs, written ahead: at start-up and on reload, before any switch
 * joins, so that a join's path has no MongoDB write for them. rfserver looks `rfconfig` up on every
 * registration, so rows present early are what it needs; a template-derived VM's rows exist only once its
 * switch joined, and are written then.
 */
import { errorMessage } from "../common/errors.js";
import type { ResolvedVm } from "./config/index.js";
import type { DaemonContext } from "./daemon-context.js";
import { rfconfigRows } from "./mapping.js";

/** RowsAhead remembers which configured VMs' rows MongoDB confirmed, and with which content. */
export class RowsAhead {
  /** confirmed: VM name -> the rows (as text) MongoDB confirmed. */
  private readonly confirmed = new Map<string, string>();

  constructor(private readonly ctx: DaemonContext) {}

  /**
   * write upserts the rows of `vms` (configured ones; others are skipped) in one call. Confirmed rows need
   * no write at the VM's join; while MongoDB is away the write is buffered and the join writes them again
   * (the outbox merges the two), so a VM never starts before its rows were at least handed to the store.
   */
  async write(vms: readonly ResolvedVm[]): Promise<void> {
    const configured = vms
      .filter((v) => v.source === "configured")
      .map((v) => ({ v, rows: rfconfigRows(v) }));
    for (const { v } of configured) this.confirmed.delete(v.name);
    const rows = configured.flatMap((c) => c.rows);
    if (rows.length === 0) return;
    try {
      const outcome = await this.ctx.store.upsertRfconfigRows(rows);
      if (outcome !== "written") {
        this.ctx.log.info(
          { rows: rows.length },
          "rfconfig rows of the configured VMs buffered: MongoDB away",
        );
        return;
      }
      for (const c of configured) this.confirmed.set(c.v.name, JSON.stringify(c.rows));
      this.ctx.log.info(
        { vms: configured.length, rows: rows.length },
        "rfconfig rows of the configured VMs written",
      );
    } catch (e) {
      this.ctx.log.error(
        { rows: rows.length, err: errorMessage(e) },
        "rfconfig rows of the configured VMs not written; each VM's join writes its own",
      );
    }
  }

  /** inPlace says whether MongoDB confirmed exactly `vm`'s rows (its join need not write them). */
  inPlace(vm: ResolvedVm): boolean {
    return vm.source === "configured" && this.confirmed.get(vm.name) === JSON.stringify(rfconfigRows(vm));
  }
}
