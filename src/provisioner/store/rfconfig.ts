/**
 * Writing RouteFlow's `rfconfig` collection: one row per VM data port, `{vm_id, vm_port, ct_id, dp_id,
 * dp_port}` as decimal strings.
 *
 * The collection is RouteFlow's, and its own loader shares it: rfserver inserts every row of its mapping CSV
 * at each start, without `_id` and without a uniqueness check, and dies on a duplicate-key error. So rfboot
 * puts no index on it. Its rows are recognised by their `_id` instead: `rfboot:<vm_id>/<vm_port>`, one per VM
 * interface (rfserver reads every field but `_id`). The unique `_id` index every collection has makes a
 * rerun, a restart or a second instance write the same document again, never a second copy.
 *
 * Rows of other writers (an ObjectId `_id`: RouteFlow's loader, an operator, an older rfboot) are never
 * changed by default. One equal to rfboot's in all five fields stands for it: rfboot adds no copy beside it.
 * One that maps the same VM interface to another switch port, or the same switch port to another VM
 * interface, is a conflict: rfserver takes the first row it finds, so the mapping is ambiguous. It is
 * reported, and removed only under the `replace` policy.
 */
import type { Collection, ObjectId } from "mongodb";
import { insertUnordered, isDuplicateKey } from "./errors.js";
import type { RfconfigRow } from "./types.js";

/** RfconfigDoc is an `rfconfig` document as found: values are normally strings, but others write it too. */
export interface RfconfigDoc {
  /** rfboot's rows: `rfboot:<vm_id>/<vm_port>`; RouteFlow's loader's: an ObjectId. */
  _id: ObjectId | string;
  vm_id: unknown;
  vm_port: unknown;
  ct_id: unknown;
  dp_id: unknown;
  dp_port: unknown;
}

/** ROW_ID_PREFIX starts the `_id` of every row rfboot writes. */
export const ROW_ID_PREFIX = "rfboot:";

/** rowId is the `_id` of rfboot's row for one VM interface. */
export function rowId(row: Pick<RfconfigRow, "vm_id" | "vm_port">): string {
  return `${ROW_ID_PREFIX}${row.vm_id}/${row.vm_port}`;
}

/** isOurs says whether a document is a row rfboot wrote (its `_id` is rfboot's). */
export function isOurs(d: Pick<RfconfigDoc, "_id">): boolean {
  return typeof d._id === "string" && d._id.startsWith(ROW_ID_PREFIX);
}

/** LEGACY_INDEXES are the unique indexes earlier rfboot versions put on `rfconfig`; RouteFlow's loader dies on them. */
export const LEGACY_INDEXES = ["rfboot_vm_port_unique", "rfboot_dp_port_unique"] as const;

/**
 * dropLegacyRfconfigIndexes drops the unique indexes of earlier rfboot versions, if there, and returns the
 * names dropped. A missing collection has none.
 */
export async function dropLegacyRfconfigIndexes(rf: Collection<RfconfigDoc>): Promise<string[]> {
  let names: string[];
  try {
    names = (await rf.indexes()).map((i) => String(i.name));
  } catch (err) {
    // NamespaceNotFound (26): no collection yet, so no index.
    if ((err as { code?: unknown }).code === 26) return [];
    throw err;
  }
  const dropped: string[] = [];
  for (const n of LEGACY_INDEXES) {
    if (!names.includes(n)) continue;
    try {
      await rf.dropIndex(n);
      dropped.push(n);
    } catch (err) {
      // IndexNotFound (27): another instance dropped it first.
      if ((err as { code?: unknown }).code !== 27) throw err;
    }
  }
  return dropped;
}

/** ConflictPolicy says what happens to another writer's row that conflicts with one of rfboot's. */
export type ConflictPolicy = "report" | "replace";

/** RfconfigConflict is another writer's row that maps rfboot's VM interface or switch port elsewhere. */
export interface RfconfigConflict {
  /** The row rfboot writes. */
  readonly row: RfconfigRow;
  /** The other row, as stored (fields as strings), and its `_id` as text. */
  readonly other: RfconfigRow;
  readonly otherId: string;
  /** vm-port: same VM interface, another switch port; dp-port: same switch port, another VM interface. */
  readonly on: "vm-port" | "dp-port";
  /** reported: left alone; replaced: deleted (policy replace). */
  readonly action: "reported" | "replaced";
}

const sameVm = (a: RfconfigRow, b: RfconfigRow) => a.vm_id === b.vm_id && a.vm_port === b.vm_port;
const sameDp = (a: RfconfigRow, b: RfconfigRow) =>
  a.ct_id === b.ct_id && a.dp_id === b.dp_id && a.dp_port === b.dp_port;
const equal = (a: RfconfigRow, b: RfconfigRow) => sameVm(a, b) && sameDp(a, b);

/**
 * applyRfconfigRows writes rows in order, as if each were upserted alone by its VM interface, and returns the
 * conflicts it found. Per row:
 * - rfboot's row for that interface is inserted, or updated when its switch side changed;
 * - rfboot's row that held the same switch port for another interface is a stale mapping: deleted;
 * - another writer's row equal in all five fields stands for rfboot's: no copy is added;
 * - another writer's conflicting row is reported, and deleted only with policy `replace`.
 * Cost: one read of the rows of the batch's VMs and switches, one insertMany of the new rows, and one
 * command per change. Idempotent: applying the same batch again writes nothing.
 */
export async function applyRfconfigRows(
  rf: Collection<RfconfigDoc>,
  batch: readonly RfconfigRow[],
  policy: ConflictPolicy = "report",
): Promise<RfconfigConflict[]> {
  if (batch.length === 0) return [];
  const snap: { _id: ObjectId | string; row: RfconfigRow; ours: boolean }[] = (
    await rf
      .find({
        $or: [
          { vm_id: { $in: [...new Set(batch.map((r) => r.vm_id))] } },
          { dp_id: { $in: [...new Set(batch.map((r) => r.dp_id))] } },
        ],
      })
      .toArray()
  ).map((d) => ({ _id: d._id, row: rowOf(d), ours: isOurs(d) }));
  const conflicts: RfconfigConflict[] = [];
  const fresh = new Map<string, RfconfigRow>();
  const drop = async (d: (typeof snap)[number]) => {
    await rf.deleteOne({ _id: d._id });
    snap.splice(snap.indexOf(d), 1);
  };
  for (const row of batch) {
    const id = rowId(row);
    // rfboot's own stale mapping of this switch port (another interface held it): replaced.
    for (const d of snap.filter((x) => x.ours && x._id !== id && sameDp(x.row, row))) {
      fresh.delete(String(d._id));
      await drop(d);
    }
    for (const d of snap.filter((x) => !x.ours && !equal(x.row, row))) {
      const on = sameVm(d.row, row) ? "vm-port" : sameDp(d.row, row) ? "dp-port" : undefined;
      if (!on) continue;
      const action = policy === "replace" ? "replaced" : "reported";
      conflicts.push({ row, other: d.row, otherId: String(d._id), on, action });
      if (action === "replaced") await drop(d);
    }
    const mine = snap.find((x) => x._id === id);
    const standIn = snap.some((x) => !x.ours && equal(x.row, row));
    if (mine) {
      if (equal(mine.row, row)) continue;
      mine.row = row;
      if (fresh.has(id)) {
        fresh.set(id, row);
        continue;
      }
      await rf.updateOne({ _id: id }, { $set: { ct_id: row.ct_id, dp_id: row.dp_id, dp_port: row.dp_port } });
      continue;
    }
    if (standIn) continue;
    snap.push({ _id: id, row, ours: true });
    fresh.set(id, row);
  }
  const rows = [...fresh.values()];
  const dup = await insertUnordered(rf, rows.map(rowDoc));
  // A concurrent writer (another instance, the same rows) inserted one first: make it say what this batch says.
  for (const i of dup) {
    const r = rows[i]!;
    await rf.replaceOne({ _id: rowId(r) }, rowDoc(r), { upsert: true }).catch((err: unknown) => {
      if (!isDuplicateKey(err)) throw err;
    });
  }
  return conflicts;
}

/** rowDoc is the stored form of a row: rfboot's `_id` and RouteFlow's five fields, nothing else. */
function rowDoc(r: RfconfigRow): RfconfigDoc {
  return {
    _id: rowId(r),
    vm_id: r.vm_id,
    vm_port: r.vm_port,
    ct_id: r.ct_id,
    dp_id: r.dp_id,
    dp_port: r.dp_port,
  };
}

/** rowOf reads a row back from a document (its fields as strings). */
function rowOf(d: RfconfigDoc): RfconfigRow {
  return {
    vm_id: String(d.vm_id),
    vm_port: String(d.vm_port),
    ct_id: String(d.ct_id),
    dp_id: String(d.dp_id),
    dp_port: String(d.dp_port),
  };
}

/**
 * removeOwnRfconfigRows deletes rfboot's rows of one VM (vm_id, decimal string) and returns how many. Other
 * writers' rows of that VM stay: they are RouteFlow's.
 */
export async function removeOwnRfconfigRows(rf: Collection<RfconfigDoc>, vmId: string): Promise<number> {
  const ids = (await rf.find({ vm_id: vmId }, { projection: { _id: 1 } }).toArray())
    .filter(isOurs)
    .map((d) => d._id);
  if (ids.length === 0) return 0;
  return (await rf.deleteMany({ _id: { $in: ids } })).deletedCount;
}

/**
 * deleteExactRfconfigRows deletes rfboot's row for each of `rows` when it matches all five fields, and
 * returns how many it deleted. Another writer's equal row is RouteFlow's and stays. A row repeated in `rows`
 * counts once.
 */
export async function deleteExactRfconfigRows(
  rf: Collection<RfconfigDoc>,
  rows: readonly RfconfigRow[],
): Promise<number> {
  const seen = new Set<string>();
  let deleted = 0;
  for (const r of rows) {
    const key = `${r.vm_id}/${r.vm_port}/${r.ct_id}/${r.dp_id}/${r.dp_port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const res = await rf.deleteOne({ _id: rowId(r), ct_id: r.ct_id, dp_id: r.dp_id, dp_port: r.dp_port });
    deleted += res.deletedCount;
  }
  return deleted;
}
