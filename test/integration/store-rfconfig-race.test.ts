/**
 * rfconfig writes racing in the server: many clients upsert the same rows at once, with the unique indexes
 * (the normal case) and without them (a collection whose old duplicates prevent the indexes).
 */
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  applyRfconfigRows,
  ensureRfconfigIndexes,
  type RfconfigDoc,
} from "../../src/provisioner/store/rfconfig.js";
import type { RfconfigRow } from "../../src/provisioner/store/types.js";
import { describeWith, MONGO_URI } from "../helpers/env.js";

const ROWS: RfconfigRow[] = Array.from({ length: 40 }, (_, i) => ({
  vm_id: String(2888912904352 + Math.floor(i / 4)),
  vm_port: String((i % 4) + 1),
  ct_id: "0",
  dp_id: String(5 + Math.floor(i / 4)),
  dp_port: String((i % 4) + 1),
}));

describeWith(["mongo"], "rfconfig upserts racing from many clients", () => {
  const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
  let clients: MongoClient[] = [];

  beforeAll(async () => {
    clients = await Promise.all(Array.from({ length: 4 }, () => new MongoClient(MONGO_URI).connect()));
  });

  afterAll(async () => {
    await clients[0]?.db(database).dropDatabase();
    await Promise.all(clients.map((c) => c.close()));
  });

  /** race has every client write every row 3 times, one row per call, all calls at once. */
  async function race(collection: string, unique: boolean): Promise<void> {
    const calls = clients.flatMap((c) => {
      const rf = c.db(database).collection<RfconfigDoc>(collection);
      return [0, 1, 2].flatMap(() => ROWS.map((r) => applyRfconfigRows(rf, [r], unique)));
    });
    await Promise.all(calls);
  }

  async function rowsIn(collection: string) {
    const docs = await clients[0]!
      .db(database)
      .collection(collection)
      .find({}, { projection: { _id: 0 } })
      .toArray();
    return docs.sort((a, b) => `${a.vm_id}/${a.vm_port}`.localeCompare(`${b.vm_id}/${b.vm_port}`));
  }
  const expected = [...ROWS].sort((a, b) =>
    `${a.vm_id}/${a.vm_port}`.localeCompare(`${b.vm_id}/${b.vm_port}`),
  );

  it("with the unique indexes: 480 racing upserts leave exactly one row per VM port", async () => {
    const rf = clients[0]!.db(database).collection<RfconfigDoc>("rfconfig");
    expect(await ensureRfconfigIndexes(rf)).toBe(true);
    await race("rfconfig", true);
    expect(await rowsIn("rfconfig")).toEqual(expected);
  });

  it("without them (old duplicates present): de-duplication on write converges to one row each", async () => {
    const rf = clients[0]!.db(database).collection<RfconfigDoc>("rfconfig_dups");
    const dup = { ...ROWS[0]! };
    await rf.insertMany([{ ...dup }, { ...dup }] as never);
    expect(await ensureRfconfigIndexes(rf)).not.toBe(true);
    await race("rfconfig_dups", false);
    expect(await rowsIn("rfconfig_dups")).toEqual(expected);
  });
});
