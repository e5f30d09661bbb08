/**
 * Writing RouteFlow's `rfconfig` collection: one row per VM data port, `{vm_id, vm_port, ct_id, dp_id,
 * dp_port}` as decimal strings (shared/routeflow/README.md).
 *
 * Key: rfserver looks a row up by (vm_id, vm_port) on PortRegister and by (ct_id, dp_id, dp_port) on
 * DatapathPortRegister, so BOTH must identify one row. Rows are upserted by (vm_id, vm_port), the VM
 * interface, which is what rfboot configures; a row that held the same switch port for another interface is
 * a stale mapping and is replaced. Two unique indexes make this hold under concurrent writers (FerretDB 1.24
 * enforces them, also under racing upserts: the loser gets E11000 and retries as an update).
 */
import type { Collection, ObjectId } from "mongodb";
import { isDuplicateKey, isTransient } from "./errors.js";
import type { RfconfigRow } from "./types.js";

/** RfconfigDoc is an `rfconfig` document as found: values are normally strings, but others write it too. */
export interface RfconfigDoc {
  _id: ObjectId;
  vm_id: unknown;
  vm_port: unknown;
  ct_id: unknown;
  dp_id: unknown;
  dp_port: unknown;
}

/**
 * ensureRfconfigIndexes creates the two unique indexes; returns true, or the error that prevented it (for
 * instance duplicates already in the collection). Transient errors are thrown.
 */
export async function ensureRfconfigIndexes(rf: Collection<RfconfigDoc>): Promise<true | unknown> {
  try {
    await rf.createIndex({ vm_id: 1, vm_port: 1 }, { unique: true, name: "rfboot_vm_port_unique" });
    await rf.createIndex({ ct_id: 1, dp_id: 1, dp_port: 1 }, { unique: true, name: "rfboot_dp_port_unique" });
    return true;
  } catch (err) {
    if (isTransient(err)) throw err;
    return err;
  }
}

/**
 * applyRfconfigRows writes a batch with one scan of `rfconfig` to read what is there (only `_id` lookups are
 * indexed on FerretDB), then touches only what differs: a repeated join costs one read. With `unique` false
 * (no unique indexes), duplicates that concurrent writers may create are removed after each insert.
 * Idempotent: applying the same batch again changes nothing.
 */
export async function applyRfconfigRows(
  rf: Collection<RfconfigDoc>,
  rows: readonly RfconfigRow[],
  unique: boolean,
): Promise<void> {
  const existing = await rf
    .find({
      $or: [
        ...rows.map((r) => ({ vm_id: r.vm_id, vm_port: r.vm_port })),
        ...rows.map((r) => ({ ct_id: r.ct_id, dp_id: r.dp_id, dp_port: r.dp_port })),
      ],
    })
    .sort({ _id: 1 })
    .toArray();
  const gone = new Set<string>();
  for (const row of rows) {
    const same = (d: RfconfigDoc) => d.vm_id === row.vm_id && d.vm_port === row.vm_port;
    // The switch port may have been mapped to another VM interface before: that mapping is replaced.
    for (const d of existing) {
      if (gone.has(d._id.toHexString()) || same(d)) continue;
      if (d.ct_id === row.ct_id && d.dp_id === row.dp_id && d.dp_port === row.dp_port) {
        await rf.deleteOne({ _id: d._id });
        gone.add(d._id.toHexString());
      }
    }
    const mine = existing.filter((d) => same(d) && !gone.has(d._id.toHexString()));
    const [first, ...extra] = mine;
    if (!first) {
      await insertRow(rf, row, unique);
    } else if (first.ct_id !== row.ct_id || first.dp_id !== row.dp_id || first.dp_port !== row.dp_port) {
      await rf.updateOne(
        { _id: first._id },
        { $set: { ct_id: row.ct_id, dp_id: row.dp_id, dp_port: row.dp_port } },
      );
    }
    // Duplicates left by an earlier loader (possible only without the unique indexes): keep the oldest.
    for (const d of extra) {
      await rf.deleteOne({ _id: d._id });
      gone.add(d._id.toHexString());
    }
  }
}

async function insertRow(rf: Collection<RfconfigDoc>, row: RfconfigRow, unique: boolean): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await rf.updateOne(
        { vm_id: row.vm_id, vm_port: row.vm_port },
        { $set: { ct_id: row.ct_id, dp_id: row.dp_id, dp_port: row.dp_port } },
        { upsert: true },
      );
      break;
    } catch (err) {
      // A concurrent writer inserted the same row first (unique index): the retry updates that row.
      if (!isDuplicateKey(err) || i >= 3) throw err;
    }
  }
  if (!unique) {
    // No unique index to lean on: concurrent writers may both have inserted. Keep the oldest row of each key,
    // delete the rest; this converges when several writers do it at once (all keep the same row).
    for (const key of [
      { vm_id: row.vm_id, vm_port: row.vm_port },
      { ct_id: row.ct_id, dp_id: row.dp_id, dp_port: row.dp_port },
    ]) {
      const ids = (
        await rf
          .find(key, { projection: { _id: 1 } })
          .sort({ _id: 1 })
          .toArray()
      ).map((d) => d._id);
      for (const id of ids.slice(1)) await rf.deleteOne({ _id: id });
    }
  }
}
