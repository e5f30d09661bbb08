/**
 * The RouteFlow mapping: one `rfconfig` row per data port, exactly as rfserver reads it
 * (RouteFlow's `rfconfig` collection): every field a decimal string (rfserver queries with `str(v)`
 * and reads back with `int(v)`), vm_id = eth0's MAC as a 48-bit integer, dp_id the full 64-bit dpid,
 * ct_id always "0".
 */
import type { ResolvedVm } from "./config/index.js";

/** RfconfigRow is one `db.rfconfig` document (all decimal strings). */
export interface RfconfigRow {
  readonly vm_id: string;
  readonly vm_port: string;
  readonly ct_id: "0";
  readonly dp_id: string;
  readonly dp_port: string;
}

/** RFCONFIG_FIELDS lists the row's fields in RouteFlow's CSV column order. */
export const RFCONFIG_FIELDS = ["vm_id", "vm_port", "ct_id", "dp_id", "dp_port"] as const;

/**
 * rfconfigRows gives `vm`'s rows, sorted by vm_port: `02:a0:a0:a0:a0:a0`, port 1 on dpid 5 ->
 * `{vm_id: "2888912904352", vm_port: "1", ct_id: "0", dp_id: "5", dp_port: "1"}`. BigInt all the way, so
 * dpids beyond 2^53 stay exact.
 */
export function rfconfigRows(vm: Pick<ResolvedVm, "vmId" | "dpid" | "ports">): RfconfigRow[] {
  const vmId = vm.vmId.toString(10);
  const dpId = vm.dpid.toString(10);
  return [...vm.ports]
    .sort((a, b) => a.vmPort - b.vmPort)
    .map((p) => ({
      vm_id: vmId,
      vm_port: String(p.vmPort),
      ct_id: "0",
      dp_id: dpId,
      dp_port: String(p.dpPort),
    }));
}

/** rfconfigRowKey identifies a row for upserts: RouteFlow looks rows up by (vm_id, vm_port) and (dp_id, dp_port). */
export function rfconfigRowKey(row: RfconfigRow): string {
  return `${row.vm_id}/${row.vm_port}/${row.ct_id}/${row.dp_id}/${row.dp_port}`;
}
