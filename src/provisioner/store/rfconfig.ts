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
import { ObjectId, type Collection } from "mongodb";
import { insertUnordered, isDuplicateKey, isTransient } from "./errors.js";
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
 * applyRfconfigRows writes rows in order, as if each were upserted alone. With the unique indexes, rows that
 * share no key with another row of the batch are first inserted blindly in one insertMany (insertFresh): a
 * burst of new VMs costs one command. The rest (rows already stored, or conflicting within the batch) take
 * the read-compare path: one scan of `rfconfig` for them all (only `_id` lookups are indexed on FerretDB),
 * the rows found kept in memory and updated as the batch changes them, only what differs written (a
 * repeated join costs a refused insert and one read), new rows in one insertMany after the deletions and
 * updates; a row a concurrent writer inserted first fails with a duplicate key and is upserted instead.
 * With `unique` false (no unique indexes), rows are inserted one by one and duplicates that concurrent
 * writers may create are removed after each insert. Idempotent: applying the same batch again changes
 * nothing.
 */
export async function applyRfconfigRows(
  rf: Collection<RfconfigDoc>,
  batch: readonly RfconfigRow[],
  unique: boolean,
): Promise<void> {
  let rows = batch;
  if (rows.length === 0) return;
  if (unique) rows = await insertFresh(rf, rows);
  if (rows.length === 0) return;
  type Known = RfconfigDoc & { pending?: true };
  const snap: Known[] = await rf
    .find({
      $or: [
        { vm_id: { $in: [...new Set(rows.map((r) => r.vm_id))] } },
        { dp_id: { $in: [...new Set(rows.map((r) => r.dp_id))] } },
      ],
    })
    .sort({ _id: 1 })
    .toArray();
  const drop = async (d: Known) => {
    if (!d.pending) await rf.deleteOne({ _id: d._id });
    snap.splice(snap.indexOf(d), 1);
  };
  for (const row of rows) {
    const sameKey = (d: Known) => d.vm_id === row.vm_id && d.vm_port === row.vm_port;
    const sameDp = (d: Known) => d.ct_id === row.ct_id && d.dp_id === row.dp_id && d.dp_port === row.dp_port;
    // The switch port may have been mapped to another VM interface before: that mapping is replaced.
    for (const d of snap.filter((x) => !sameKey(x) && sameDp(x))) await drop(d);
    const [first, ...extra] = snap.filter(sameKey);
    // Duplicates left by an earlier loader (possible only without the unique indexes): keep the oldest.
    for (const d of extra) await drop(d);
    if (first && sameDp(first)) continue;
    const dp = { ct_id: row.ct_id, dp_id: row.dp_id, dp_port: row.dp_port };
    if (first?.pending) {
      Object.assign(first, dp);
      continue;
    }
    if (first) {
      const r = await rf.updateOne({ _id: first._id }, { $set: dp });
      if (r.matchedCount === 1) {
        Object.assign(first, dp);
        continue;
      }
      // Deleted meanwhile by another writer: insert it again.
      snap.splice(snap.indexOf(first), 1);
    }
    if (unique) {
      snap.push({ _id: new ObjectId(), ...row, pending: true });
    } else {
      const id = await insertRow(rf, row, unique);
      snap.push({ _id: id, ...row });
    }
  }
  // New rows, displaced rows already deleted: one insertMany; a concurrent writer's row makes one fail.
  const fresh = snap.filter((d) => d.pending).map(rowOf);
  const dup = await insertUnordered(rf, fresh.map(rowDoc));
  for (const i of [...dup].sort((a, b) => a - b)) await insertRow(rf, fresh[i]!, unique);
}

/**
 * insertFresh inserts, without reading first, the rows that share neither key (VM interface, switch port)
 * with another row of the batch, in one unordered insertMany: with the unique indexes an insert that
 * succeeds is exactly what the upsert would have done (no row held either key). It returns the rows left
 * for the read-compare path, in order: those a stored row conflicts with (duplicate key) and those that
 * conflict within the batch. A burst of new VMs thus costs one command, not a scan of `rfconfig` and one.
 */
async function insertFresh(
  rf: Collection<RfconfigDoc>,
  rows: readonly RfconfigRow[],
): Promise<RfconfigRow[]> {
  const count = new Map<string, number>();
  const keys = (r: RfconfigRow) => [`v ${r.vm_id}/${r.vm_port}`, `d ${r.ct_id}/${r.dp_id}/${r.dp_port}`];
  for (const r of rows) for (const k of keys(r)) count.set(k, (count.get(k) ?? 0) + 1);
  const alone = rows.filter((r) => keys(r).every((k) => count.get(k) === 1));
  const dup = await insertUnordered(rf, alone.map(rowDoc));
  const inserted = new Set(alone.filter((_, i) => !dup.has(i)));
  return rows.filter((r) => !inserted.has(r));
}

/** rowDoc is the stored form of a row: RouteFlow's five fields, nothing else. */
function rowDoc(r: RfconfigRow): RfconfigDoc {
  return {
    vm_id: r.vm_id,
    vm_port: r.vm_port,
    ct_id: r.ct_id,
    dp_id: r.dp_id,
    dp_port: r.dp_port,
  } as unknown as RfconfigDoc;
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

/** insertRow upserts one row by its VM interface and returns the `_id` of the row that holds it. */
async function insertRow(rf: Collection<RfconfigDoc>, row: RfconfigRow, unique: boolean): Promise<ObjectId> {
  let id: ObjectId | undefined;
  if (unique) {
    // The snapshot showed no row for this interface, and the unique indexes make a plain insert safe: no
    // scan (an upsert's filter is one on FerretDB). A concurrent writer's row makes it fail; then upsert.
    try {
      return (await rf.insertOne(rowDoc(row))).insertedId;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }
  for (let i = 0; ; i++) {
    try {
      const r = await rf.updateOne(
        { vm_id: row.vm_id, vm_port: row.vm_port },
        { $set: { ct_id: row.ct_id, dp_id: row.dp_id, dp_port: row.dp_port } },
        { upsert: true },
      );
      id = (r.upsertedId as ObjectId | null) ?? undefined;
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
      for (const x of ids.slice(1)) await rf.deleteOne({ _id: x });
      if (key.vm_port !== undefined && ids[0]) id = ids[0];
    }
  }
  // Matched a row another writer had just inserted: look its id up (rare).
  return (
    id ??
    (await rf.findOne({ vm_id: row.vm_id, vm_port: row.vm_port }, { projection: { _id: 1 } }))?._id ??
    new ObjectId()
  );
}

/**
 * deleteExactRfconfigRows deletes one document per row that matches all five fields as decimal strings, and
 * returns how many it deleted. Rows carry no writer's mark (rfserver converts every field but `_id` with
 * `int()`), so a row equal in all five fields is the only way to recognise one rfboot wrote; deleting one copy
 * per row, not every copy, leaves an identical row another loader appended (possible only without the unique
 * indexes) where it was. A row repeated in `rows` counts once.
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
    const res = await rf.deleteOne({
      vm_id: r.vm_id,
      vm_port: r.vm_port,
      ct_id: r.ct_id,
      dp_id: r.dp_id,
      dp_port: r.dp_port,
    });
    deleted += res.deletedCount;
  }
  return deleted;
}
