/**
 * MongoStore against a real MongoDB-wire server (FerretDB/SQLite in the lab): rfconfig in RouteFlow's exact
 * format, records, the event log and the read-only PortRegister observer.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MongoClient, ObjectId, type Db } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigError, StoreError } from "../../src/common/errors.js";
import { MongoStore, type RfconfigRow } from "../../src/provisioner/store/index.js";
import { describeWith, MONGO_URI, SHARED } from "../helpers/env.js";

/** rftest2Rows reads RouteFlow's own rftest2config.csv as rfserver would load it (hex ids -> decimal). */
function rftest2Rows(): RfconfigRow[] {
  const text = readFileSync(join(SHARED, "routeflow/rftest-config/rftest2config.csv"), "utf8");
  return text
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => {
      const [vm, vmPort, ct, dp, dpPort] = line.trim().split(",");
      return {
        vm_id: BigInt(`0x${vm}`).toString(),
        vm_port: vmPort!,
        ct_id: ct!,
        dp_id: BigInt(`0x${dp}`).toString(),
        dp_port: dpPort!,
      };
    });
}

const sortRows = (rows: RfconfigRow[]) =>
  [...rows].sort((a, b) => `${a.vm_id}/${a.vm_port}`.localeCompare(`${b.vm_id}/${b.vm_port}`));

describeWith(["mongo"], "MongoStore on a real MongoDB-wire server", () => {
  const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
  let raw: MongoClient;
  let db: Db;
  let store: MongoStore;
  let store2: MongoStore;

  beforeAll(async () => {
    raw = await new MongoClient(MONGO_URI).connect();
    db = raw.db(database);
    store = await MongoStore.open({ uri: MONGO_URI, database, owner: "test-a", eventsMax: 20 });
    store2 = await MongoStore.open({ uri: MONGO_URI, database, owner: "test-b", eventsMax: 20 });
  });

  afterAll(async () => {
    await store?.close();
    await store2?.close();
    await db?.dropDatabase();
    await raw?.close();
  });

  it("writes rftest2's rfconfig rows exactly as RouteFlow stores them, and only once", async () => {
    const rows = rftest2Rows();
    expect(rows[0]).toEqual({ vm_id: "3095879798992", vm_port: "1", ct_id: "0", dp_id: "8", dp_port: "1" });
    expect(await store.upsertRfconfigRows(rows)).toBe("written");
    expect(await store.upsertRfconfigRows(rows)).toBe("written");
    const docs = await db.collection("rfconfig").find({}).toArray();
    expect(docs).toHaveLength(14);
    for (const d of docs) {
      // Exactly RouteFlow's fields, every value a decimal string (rfserver queries with str(v)).
      expect(Object.keys(d).sort()).toEqual(["_id", "ct_id", "dp_id", "dp_port", "vm_id", "vm_port"]);
      // rfboot's rows carry its `_id` (one per VM interface): a rerun writes the same document again.
      expect(d._id).toBe(`rfboot:${String(d.vm_id)}/${String(d.vm_port)}`);
      for (const k of ["vm_id", "vm_port", "ct_id", "dp_id", "dp_port"])
        expect(d[k]).toMatch(/^(0|[1-9][0-9]*)$/);
    }
    // rfserver's own lookups find exactly one row each.
    expect(await db.collection("rfconfig").countDocuments({ vm_id: "2888912904352", vm_port: "2" })).toBe(1);
    expect(await db.collection("rfconfig").countDocuments({ ct_id: "0", dp_id: "5", dp_port: "2" })).toBe(1);
    expect(sortRows(await store.listRfconfigRows())).toEqual(sortRows(rows));
  });

  it("updates a changed mapping in place and replaces a row that held the same switch port", async () => {
    const foreign = { vm_id: "99", vm_port: "1", ct_id: "0", dp_id: "99", dp_port: "1" };
    await db.collection("rfconfig").insertOne({ ...foreign });
    // rfvmA's eth4 moves from switch port 4 to port 9.
    await store.upsertRfconfigRows([
      { vm_id: "2888912904352", vm_port: "4", ct_id: "0", dp_id: "5", dp_port: "9" },
    ]);
    // Switch 5 port 3 now belongs to rfvmB's eth3 (a remap): rfvmA's eth3 row must go, not linger.
    await store.upsertRfconfigRows([
      { vm_id: "2957901869232", vm_port: "3", ct_id: "0", dp_id: "5", dp_port: "3" },
    ]);
    const rf = db.collection("rfconfig");
    expect(await rf.countDocuments({})).toBe(14);
    expect(
      await rf.find({ vm_id: "2888912904352", vm_port: "4" }, { projection: { _id: 0 } }).toArray(),
    ).toEqual([{ vm_id: "2888912904352", vm_port: "4", ct_id: "0", dp_id: "5", dp_port: "9" }]);
    expect(await rf.countDocuments({ vm_id: "2888912904352", vm_port: "3" })).toBe(0);
    expect(await rf.find({ dp_id: "5", dp_port: "3" }, { projection: { _id: 0 } }).toArray()).toEqual([
      { vm_id: "2957901869232", vm_port: "3", ct_id: "0", dp_id: "5", dp_port: "3" },
    ]);
    // The row rfboot never wrote is untouched.
    expect(await rf.find({ vm_id: "99" }, { projection: { _id: 0 } }).toArray()).toEqual([foreign]);
    // Restore rftest2 for the following tests.
    await store.removeRfconfigRows("2957901869232");
    await store.upsertRfconfigRows(rftest2Rows());
    await rf.deleteMany({ vm_id: "99" });
    expect(sortRows(await store.listRfconfigRows())).toEqual(sortRows(rftest2Rows()));
  });

  it("applies a batch row by row: a port freed by one row can be taken by the next", async () => {
    const rf = db.collection("rfconfig");
    const before = await rf.countDocuments({});
    await store.upsertRfconfigRows([{ vm_id: "77", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "1" }]);
    // Concurrent callers whose writes the outbox batches together (one read of rfconfig for all of them).
    await Promise.all([
      store.upsertRfconfigRows([{ vm_id: "77", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "2" }]),
      store.upsertRfconfigRows([{ vm_id: "78", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "1" }]),
      store.upsertRfconfigRows([{ vm_id: "79", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "2" }]),
      store.upsertRfconfigRows([{ vm_id: "77", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "3" }]),
    ]);
    const got = await rf
      .find({ dp_id: "700" }, { projection: { _id: 0 } })
      .sort({ vm_id: 1 })
      .toArray();
    expect(got).toEqual([
      { vm_id: "77", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "3" },
      { vm_id: "78", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "1" },
      { vm_id: "79", vm_port: "1", ct_id: "0", dp_id: "700", dp_port: "2" },
    ]);
    await rf.deleteMany({ dp_id: "700" });
    expect(await rf.countDocuments({})).toBe(before);
  });

  it("rejects anything but canonical decimal strings, naming the field, and writes nothing", async () => {
    const good = { vm_id: "1", vm_port: "1", ct_id: "0", dp_id: "7", dp_port: "1" };
    const bad: [Record<string, unknown>, string][] = [
      [{ ...good, dp_id: { $gt: "" } }, "rows[0].dp_id"],
      [{ ...good, vm_id: 5 }, "rows[0].vm_id"],
      [{ ...good, vm_port: "05" }, "rows[0].vm_port"],
      [{ ...good, dp_port: "-1" }, "rows[0].dp_port"],
      [{ ...good, dp_id: "0x5" }, "rows[0].dp_id"],
      [{ ...good, vm_id: "281474976710656" }, "rows[0].vm_id"], // 2^48: not a MAC
      [{ ...good, $where: "1" }, "rows[0].$where"],
      [{ ...good, ct_id: undefined }, "rows[0].ct_id"],
    ];
    for (const [row, path] of bad) {
      const err = await Promise.resolve()
        .then(() => store.upsertRfconfigRows([row as unknown as RfconfigRow]))
        .catch((e: unknown) => e);
      expect(err, path).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).path).toBe(`upsertRfconfigRows.${path}`);
    }
    await expect(store.upsertRfconfigRows([good, { ...good, vm_port: "2" }])).rejects.toMatchObject({
      name: "ConfigError",
      path: "upsertRfconfigRows.rows[1]",
    });
    expect(await db.collection("rfconfig").countDocuments({ dp_id: "7", vm_id: "1" })).toBe(0);
    await expect(store.removeRfconfigRows({ $ne: "" } as unknown as string)).rejects.toThrow(ConfigError);
    expect(await db.collection("rfconfig").countDocuments({})).toBe(14);
  });

  it("instances upserting the same rows at once produce one row each", async () => {
    const more = await Promise.all(
      [2, 3].map((k) => MongoStore.open({ uri: MONGO_URI, database, owner: `test-${k}` })),
    );
    try {
      const stores = [store, store2, ...more];
      const rows = Array.from({ length: 60 }, (_, i) => ({
        vm_id: String(1000 + Math.floor(i / 4)),
        vm_port: String((i % 4) + 1),
        ct_id: "0",
        dp_id: String(500 + Math.floor(i / 4)),
        dp_port: String((i % 4) + 1),
      }));
      const rf = db.collection("rfconfig");
      const before = await rf.countDocuments({});
      // Every instance writes every row, one row per call, all at once, half of them in reverse order (each
      // instance's rfconfig writes are serialised by its outbox, so up to four upserts race in the server; store-rfconfig-race.test.ts races harder).
      await Promise.all(
        stores.flatMap((s, k) => (k % 2 ? [...rows].reverse() : rows).map((r) => s.upsertRfconfigRows([r]))),
      );
      for (const s of stores) expect(await s.drain(30_000)).toBe(true);
      expect(stores.map((s) => s.stats().failed)).toEqual(stores.map(() => 0));
      const vms = [...new Set(rows.map((r) => r.vm_id))];
      expect(await rf.countDocuments({ vm_id: { $in: vms } })).toBe(60);
      for (const vm of vms) await store.removeRfconfigRows(vm);
      expect(await rf.countDocuments({})).toBe(before);
    } finally {
      await Promise.all(more.map((s) => s.close()));
    }
  });

  it("leaves a loader's duplicate rows alone and adds no copy of an equal row", async () => {
    const other = `${database}_dup`;
    const odb = raw.db(other);
    const dup = { vm_id: "7", vm_port: "1", ct_id: "0", dp_id: "70", dp_port: "1" };
    // What RouteFlow's loader leaves after two starts of rfserver: each CSV row twice, ObjectId ids.
    await odb
      .collection("rfconfig")
      .insertMany([
        { ...dup },
        { ...dup },
        { vm_id: "8", vm_port: "1", ct_id: "0", dp_id: "80", dp_port: "1" },
      ]);
    const s = await MongoStore.open({ uri: MONGO_URI, database: other });
    try {
      await Promise.all([s.upsertRfconfigRows([dup]), s.upsertRfconfigRows([dup])]);
      expect(await s.drain(10_000)).toBe(true);
      expect(await odb.collection("rfconfig").countDocuments({ vm_id: "7" })).toBe(2);
      expect(await odb.collection("rfconfig").countDocuments({ vm_id: "8" })).toBe(1);
      expect(await odb.collection("rfconfig").countDocuments({ _id: "rfboot:7/1" } as never)).toBe(0);
      // Removing the VM removes what rfboot wrote (nothing here): RouteFlow's rows stay.
      await s.removeRfconfigRows("7");
      expect(await odb.collection("rfconfig").countDocuments({ vm_id: "7" })).toBe(2);
    } finally {
      await s.close();
      await odb.dropDatabase();
    }
  });

  it("keeps one record per datapath, patched field by field", async () => {
    const dpid = "fedcba9876543210"; // beyond 2^53: the decimal form must be exact
    const t0 = new Date("2024-01-02T03:04:05.000Z");
    await store.patchRecord(dpid, {
      state: "joined",
      joinedAt: t0,
      vmName: "rfvmZ",
      vmId: "2888912904352",
      vmMac: "02:a0:a0:a0:a0:a0",
      switch: { peer: "127.0.0.1:40000", version: 4, connected: true },
      ports: [{ dpPort: 1, vmPort: 1, name: "s5-eth1", hwAddr: "aa:bb:cc:dd:ee:01" }],
    });
    await store.patchRecord(dpid, {
      state: "running",
      host: "local",
      uuid: "0f0e0d0c-0b0a-4908-8706-050403020100",
    });
    await store.patchRecord(dpid, {
      switch: { connected: false },
      lastError: { kind: "timeout", message: "x", at: t0 },
    });
    const r = await store.getRecord(dpid);
    expect(r).toMatchObject({
      _id: dpid,
      dpidHex: dpid,
      dpid: "18364758544493064720",
      vmName: "rfvmZ",
      state: "running",
      host: "local",
      joinedAt: t0,
      switch: { peer: "127.0.0.1:40000", version: 4, connected: false },
      lastError: { kind: "timeout", message: "x", at: t0 },
      owner: "test-a",
    });
    await store.patchRecord(dpid, { lastError: null });
    expect((await store.getRecord(dpid))?.lastError).toBeNull();
    expect((await store.findRecordByVm("rfvmZ"))?._id).toBe(dpid);
    expect(await store.findRecordByVm("nope")).toBeUndefined();
    expect(await store.getRecord("0000000000000001")).toBeUndefined();

    // Two instances creating the same new record at once: one document.
    const d2 = "0000000000000005";
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? store : store2).patchRecord(d2, { vmName: "rfvmA", attempts: i }),
      ),
    );
    expect(await db.collection("rfboot_vms").countDocuments({ _id: d2 } as never)).toBe(1);
    const list = await store.listRecords();
    expect(list.map((x) => x._id)).toEqual([d2, dpid]);
    expect(list[0]?.state).toBe("joined");
    await store.deleteRecord(d2);
    expect(await store.getRecord(d2)).toBeUndefined();
  });

  it("writes a burst of records and events in batches, as one upsert and one insert each would", async () => {
    const burst = await MongoStore.open({ uri: MONGO_URI, database, owner: "test-burst", eventsMax: 1000 });
    try {
      const vms = db.collection<{ _id: string } & Record<string, unknown>>("rfboot_vms");
      const dpids = Array.from({ length: 40 }, (_, i) => (0xb0000 + i).toString(16).padStart(16, "0"));
      // A record another instance made: this store does not know it, tries it in the batch's insertMany,
      // and must update it instead (the first write of a burst goes alone; this one is in the batch).
      const pre = dpids[5]!;
      await store2.patchRecord(pre, { vmName: "pre", state: "running" });
      const createdAt = (await vms.findOne({ _id: pre }))?.createdAt;
      const at = new Date("2025-05-05T05:05:05.000Z");
      const outcomes = await Promise.all([
        ...dpids.map((d, i) =>
          burst.patchRecord(d, {
            vmName: `rfvmB${i}`,
            joinedAt: at,
            switch: { peer: `127.0.0.1:${40000 + i}`, version: 4, connected: true },
          }),
        ),
        ...dpids.map((d) => burst.logEvent({ dpid: d, kind: "burst-test", detail: d })),
      ]);
      expect(outcomes.every((o) => o === "written")).toBe(true);
      const docs = await vms
        .find({ _id: { $in: dpids } })
        .sort({ _id: 1 })
        .toArray();
      expect(docs.map((d) => d._id)).toEqual(dpids);
      expect(docs[5]).toMatchObject({
        _id: pre,
        vmName: "rfvmB5",
        state: "running",
        createdAt,
        owner: "test-burst",
        switch: { peer: "127.0.0.1:40005", version: 4, connected: true },
      });
      for (const [i, d] of docs.entries()) {
        if (i === 5) continue;
        expect(d).toMatchObject({
          dpidHex: dpids[i],
          dpid: BigInt(`0x${dpids[i]}`).toString(10),
          state: "joined",
          vmName: `rfvmB${i}`,
          joinedAt: at,
          switch: { peer: `127.0.0.1:${40000 + i}`, version: 4, connected: true },
          owner: "test-burst",
        });
        expect(d.createdAt).toBeInstanceOf(Date);
      }
      // Later patches of the burst's records update them in place (a batch of updates), field by field.
      await Promise.all(
        dpids.map((d) => burst.patchRecord(d, { state: "running", switch: { connected: false } })),
      );
      const after = await vms.find({ _id: { $in: dpids } }).toArray();
      expect(after).toHaveLength(40);
      for (const d of after) {
        expect(d.state).toBe("running");
        expect(d.switch).toMatchObject({ version: 4, connected: false });
      }
      const events = await db.collection("rfboot_events").find({ kind: "burst-test" }).toArray();
      expect(events.map((e) => e.detail).sort()).toEqual([...dpids].sort());
      await vms.deleteMany({ _id: { $in: dpids } });
    } finally {
      await burst.close();
    }
  });

  it("rejects hostile or malformed patches with a ConfigError naming the field", async () => {
    const cases: [unknown, string, string][] = [
      [{ vmName: { $gt: "" } }, "0000000000000005", "patchRecord.patch.vmName"],
      [{ state: "exploded" }, "0000000000000005", "patchRecord.patch.state"],
      [{ $set: { state: "x" } }, "0000000000000005", "patchRecord.patch"],
      [{ switch: { peer: "p", evil: 1 } }, "0000000000000005", "patchRecord.patch.switch"],
      [{ state: "running" }, "5", "patchRecord.dpid"],
      [{ state: "running" }, "FEDCBA9876543210", "patchRecord.dpid"],
    ];
    for (const [patch, dpid, path] of cases) {
      const err = await store.patchRecord(dpid, patch as never).catch((e: unknown) => e);
      expect(err, path).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).path).toBe(path);
    }
  });

  it("keeps a bounded event log, newest first", async () => {
    const info = await db.listCollections({ name: "rfboot_events" }, { nameOnly: false }).toArray();
    expect(info[0]).toMatchObject({ options: { capped: true } });
    const base = Date.parse("2024-05-01T00:00:00Z");
    for (let i = 0; i < 45; i++) {
      await store.logEvent({
        at: new Date(base + i * 1000),
        dpid: "0000000000000005",
        vm: "rfvmA",
        kind: "test",
        detail: `n=${i}`,
      });
    }
    await store.trimEvents();
    const events = db.collection("rfboot_events");
    expect(await events.countDocuments({})).toBeLessThanOrEqual(20);
    const recent = await store.recentEvents(3);
    expect(recent.map((e) => e.detail)).toEqual(["n=44", "n=43", "n=42"]);
    expect(recent[0]).toMatchObject({ kind: "test", vm: "rfvmA", dpid: "0000000000000005", owner: "test-a" });
    await expect(store.logEvent({ kind: "x\n", detail: "y" })).rejects.toThrow(ConfigError);
  });

  it("observes PortRegister read-only and resolves when every port registered", async () => {
    // The channel as RouteFlow creates it: capped 1 MiB.
    await db.createCollection("rfclient<->rfserver", { capped: true, size: 1_048_576 });
    const ipc = db.collection("rfclient<->rfserver");
    const vmId = "2888912904352";
    const envelope = (from: string, type: number, port: string, id = new ObjectId()) => ({
      _id: id,
      from,
      to: "rfserver",
      type,
      read: false,
      content: { vm_id: from, vm_port: port, hwaddress: `02:a${port}:a${port}:a${port}:a${port}:a${port}` },
    });
    // Before `since`: a registration from an earlier boot must not count.
    await ipc.insertOne(envelope(vmId, 0, "1", ObjectId.createFromTime(Math.floor(Date.now() / 1000) - 600)));
    const since = new Date();
    const w = store.watchPortRegister(vmId, since, {
      expectPorts: ["1", "2", "3"],
      pollMs: 50,
      timeoutMs: 10_000,
    });
    const seen: string[] = [];
    w.on("port", (p: { vmPort: string }) => seen.push(p.vmPort));
    await ipc.insertOne(envelope("2957901869232", 0, "1")); // another VM
    await ipc.insertOne(envelope(vmId, 1, "9")); // another message type
    await ipc.insertOne(envelope(vmId, 0, "2"));
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual(["2"]);
    await ipc.insertOne(envelope(vmId, 0, "1"));
    await ipc.insertOne(envelope(vmId, 0, "2")); // a repeat is reported once
    await ipc.insertOne(envelope(vmId, 0, "3"));
    const before = await ipc.find({}).sort({ _id: 1 }).toArray();
    const res = await w.ready;
    expect(res.ports.map((p) => p.vmPort).sort()).toEqual(["1", "2", "3"]);
    expect(res.ports.find((p) => p.vmPort === "3")?.hwAddress).toBe("02:a3:a3:a3:a3:a3");
    expect(seen).toEqual(["2", "1", "3"]);
    await new Promise((r) => setTimeout(r, 150));
    // Nothing was marked read or changed in any way: rfserver still gets every message.
    const after = await ipc.find({}).sort({ _id: 1 }).toArray();
    expect(after).toEqual(before);
    expect(after.every((d) => d.read === false)).toBe(true);

    const late = store.watchPortRegister("3095879798992", new Date(), { pollMs: 50, timeoutMs: 300 });
    await expect(late.ready).rejects.toThrow(/no PortRegister from vm_id 3095879798992/);
  });

  it("names the operation when the server cannot be reached, and never logs the password", async () => {
    const lines: string[] = [];
    const { pino } = await import("pino");
    const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(s) });
    const s = await MongoStore.open({
      uri: "mongodb://rfuser:s3cret@127.0.0.1:1/?authSource=admin",
      database: "rfbt_unreachable",
      serverSelectionTimeoutMS: 200,
      logger,
    });
    try {
      const err = await s.getRecord("0000000000000005").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).operation).toBe("getRecord");
      expect((err as StoreError).message).toMatch(/getRecord .* failed: MongoDB is unreachable/);
      await expect(s.claim("0000000000000005", "me", 1000)).rejects.toMatchObject({ operation: "claim" });
      expect(await s.patchRecord("0000000000000005", { state: "joined" })).toBe("queued");
      expect(s.pending()).toBe(1);
    } finally {
      await s.close(300);
    }
    expect(lines.join("")).toContain("rfuser:***@127.0.0.1:1");
    expect(lines.join("")).not.toContain("s3cret");
    await expect(MongoStore.open({ uri: "http://nope", database: "x" })).rejects.toMatchObject({
      operation: "connect",
    });
  });
});
