/**
 * rfconfig beside RouteFlow's own loader, on a real MongoDB-wire server: many clients upsert the same rows at
 * once; rfserver's loader inserts its CSV (no `_id`, acknowledged) at every start into the collection rfboot
 * writes; earlier rfboot versions' unique indexes are dropped; conflicting rows are reported, not touched.
 */
import { randomBytes } from "node:crypto";
import { MongoClient, type Collection } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyRfconfigRows,
  dropLegacyRfconfigIndexes,
  LEGACY_INDEXES,
  type RfconfigDoc,
} from "../../src/provisioner/store/rfconfig.js";
import { MongoStore } from "../../src/provisioner/store/index.js";
import type { RfconfigRow } from "../../src/provisioner/store/types.js";
import { describeWith, MONGO_URI } from "../helpers/env.js";

const ROWS: RfconfigRow[] = Array.from({ length: 40 }, (_, i) => ({
  vm_id: String(2888912904352 + Math.floor(i / 4)),
  vm_port: String((i % 4) + 1),
  ct_id: "0",
  dp_id: String(5 + Math.floor(i / 4)),
  dp_port: String((i % 4) + 1),
}));
const key = (r: { vm_id: unknown; vm_port: unknown }) => `${String(r.vm_id)}/${String(r.vm_port)}`;
const byKey = <T extends { vm_id: unknown; vm_port: unknown }>(rows: T[]) =>
  [...rows].sort((a, b) => key(a).localeCompare(key(b)));

describeWith(["mongo"], "rfconfig beside RouteFlow's loader", () => {
  const database = `rfbt_rfcfg_${randomBytes(4).toString("hex")}`;
  let clients: MongoClient[] = [];
  const col = (name: string): Collection<RfconfigDoc> =>
    clients[0]!.db(database).collection<RfconfigDoc>(name);
  /** loader does what rfserver does at every start: insert every CSV row, no `_id`, acknowledged, one by one. */
  const loader = async (name: string, rows: readonly RfconfigRow[]) => {
    const rf = clients[0]!.db(database).collection(name);
    for (const r of rows) await rf.insertOne({ ...r });
  };
  const rowsIn = async (name: string) =>
    byKey(
      await col(name)
        .find({}, { projection: { _id: 0 } })
        .toArray(),
    );

  beforeAll(async () => {
    clients = await Promise.all(Array.from({ length: 4 }, () => new MongoClient(MONGO_URI).connect()));
  });

  afterAll(async () => {
    await clients[0]?.db(database).dropDatabase();
    await Promise.all(clients.map((c) => c.close()));
  });

  it("480 racing upserts from 4 clients leave exactly one row per VM port, with no index on rfconfig", async () => {
    await Promise.all(
      clients.flatMap((c) => {
        const rf = c.db(database).collection<RfconfigDoc>("race");
        return [0, 1, 2].flatMap(() => ROWS.map((r) => applyRfconfigRows(rf, [r])));
      }),
    );
    expect(await rowsIn("race")).toEqual(byKey(ROWS));
    expect((await col("race").indexes()).map((i) => i.name)).toEqual(["_id_"]);
  });

  describe("rows first (rfboot), then rfserver starts twice", () => {
    it("the loader's acknowledged inserts all succeed; rfboot's rows survive and rfboot adds no copy", async () => {
      await applyRfconfigRows(col("first"), ROWS);
      await loader("first", ROWS);
      await loader("first", ROWS);
      expect(await col("first").countDocuments({})).toBe(120);
      // rfboot runs again (a restart, a second instance): nothing added, nothing deleted, no conflict.
      expect(await applyRfconfigRows(col("first"), ROWS)).toEqual([]);
      expect(await col("first").countDocuments({})).toBe(120);
      expect(await col("first").countDocuments({ _id: { $regex: /^rfboot:/ } } as never)).toBe(40);
      // rfserver's lookup by VM interface finds the mapping (all copies agree).
      const found = await col("first").find({ vm_id: ROWS[5]!.vm_id, vm_port: ROWS[5]!.vm_port }).toArray();
      expect(new Set(found.map((d) => `${String(d.dp_id)}/${String(d.dp_port)}`))).toEqual(
        new Set([`${ROWS[5]!.dp_id}/${ROWS[5]!.dp_port}`]),
      );
    });
  });

  it("loader first: rfboot's equal rows are taken as written; a conflicting row is reported and left alone", async () => {
    await loader("second", ROWS.slice(0, 8));
    const moved = { ...ROWS[8]!, dp_port: "9" }; // the loader maps VM 2's eth1 to switch port 9
    await loader("second", [moved]);
    const conflicts = await applyRfconfigRows(col("second"), ROWS.slice(0, 12));
    expect(conflicts).toEqual([
      expect.objectContaining({ row: ROWS[8], other: moved, on: "vm-port", action: "reported" }),
    ]);
    // 9 loader rows + rfboot's own 4 rows of VM 2 (its eth1 beside the loader's conflicting one).
    expect(await col("second").countDocuments({})).toBe(13);
    expect(await col("second").countDocuments({ vm_id: moved.vm_id, dp_port: "9" })).toBe(1);
    // Under policy replace the conflicting row goes; rfboot's stays.
    const replaced = await applyRfconfigRows(col("second"), ROWS.slice(8, 9), "replace");
    expect(replaced.map((c) => c.action)).toEqual(["replaced"]);
    expect(await col("second").countDocuments({ vm_id: moved.vm_id, dp_port: "9" })).toBe(0);
    expect(await rowsIn("second")).toEqual(byKey(ROWS.slice(0, 12)));
  });

  it("a switch port rfboot mapped to another interface before is moved, not duplicated", async () => {
    const a = ROWS[0]!;
    await applyRfconfigRows(col("remap"), [a]);
    const b = { ...a, vm_port: "7" }; // the same switch port now belongs to eth7
    expect(await applyRfconfigRows(col("remap"), [b])).toEqual([]);
    expect(await rowsIn("remap")).toEqual([b]);
  });

  it("MongoStore drops earlier rfboot versions' unique indexes at start, logged once; the loader then succeeds", async () => {
    const rf = col("rfconfig");
    await rf.createIndex({ vm_id: 1, vm_port: 1 }, { unique: true, name: LEGACY_INDEXES[0] });
    await rf.createIndex({ ct_id: 1, dp_id: 1, dp_port: 1 }, { unique: true, name: LEGACY_INDEXES[1] });
    await loader("rfconfig", ROWS.slice(0, 1));
    // What rfserver met: its second start dies on the first row.
    await expect(loader("rfconfig", ROWS.slice(0, 1))).rejects.toMatchObject({ code: 11000 });
    const warnings: string[] = [];
    const logger = {
      warn: (_o: unknown, m?: string) => warnings.push(String(m)),
      info: () => undefined,
      debug: () => undefined,
      error: () => undefined,
      child: () => logger,
    };
    const store = await MongoStore.open({ uri: MONGO_URI, database, logger: logger as never });
    try {
      expect((await rf.indexes()).map((i) => i.name)).toEqual(["_id_"]);
      expect(warnings.filter((w) => /dropped the unique indexes/.test(w))).toHaveLength(1);
      await loader("rfconfig", ROWS.slice(0, 1));
      expect(await dropLegacyRfconfigIndexes(rf)).toEqual([]);
      // A conflict met through the store is recorded where the operator looks.
      await loader("rfconfig", [{ ...ROWS[1]!, dp_port: "42" }]);
      expect(await store.upsertRfconfigRows([ROWS[1]!])).toBe("written");
      expect(await store.drain(10_000)).toBe(true);
      const rec = await store.getRecord(BigInt(ROWS[1]!.dp_id).toString(16).padStart(16, "0"));
      expect(rec?.lastError).toMatchObject({ kind: "rfconfig-conflict" });
      expect(rec?.lastError?.message).toMatch(/also mapped to datapath 5 port 42 .* left alone/);
      const events = await store.recentEvents(10);
      expect(events.some((e) => e.kind === "rfconfig-conflict")).toBe(true);
    } finally {
      await store.close();
    }
  });
});
