/**
 * Leases between rfboot instances on a real MongoDB-wire server. FerretDB's conditional updates are not
 * atomic (see leases.ts), so these tests race real clients, on separate connections, for the same dpids.
 */
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { dpidToHex } from "../../src/common/dpid.js";
import { LeaseTable, MongoStore } from "../../src/provisioner/store/index.js";
import type { LeaseDoc } from "../../src/provisioner/store/leases.js";
import { describeWith, MONGO_URI } from "../helpers/env.js";

const dpids = (base: number, n: number) => Array.from({ length: n }, (_, i) => dpidToHex(BigInt(base + i)));

/**
 * leaseCommands watches a store's lease commands (opened with `monitorCommands`): `during(fn)` records, in
 * order, those started ("insert", "find", ...) and answered ("done") while `fn` runs. The pool's connections
 * are opened first: a new pool may lend one connection to two commands in turn, which says nothing about how
 * the store sends them.
 */
async function leaseCommands(store: MongoStore) {
  const client = (store as unknown as { client: MongoClient }).client;
  await Promise.all([0, 1, 2, 3].map(() => client.db("admin").command({ ping: 1 })));
  const log: string[] = [];
  const ids = new Set<number>();
  let on = false;
  client.on("commandStarted", (e) => {
    const coll: unknown = (e.command as Record<string, unknown>)[e.commandName];
    if (!on || coll !== "rfboot_leases") return;
    ids.add(e.requestId);
    log.push(e.commandName);
  });
  client.on("commandSucceeded", (e) => ids.has(e.requestId) && log.push("done"));
  client.on("commandFailed", (e) => ids.has(e.requestId) && log.push("done"));
  return {
    log,
    async during<T>(fn: () => Promise<T>): Promise<T> {
      on = true;
      try {
        return await fn();
      } finally {
        on = false;
      }
    },
  };
}

/** leaseIds lists the `_id`s of a dpid's lease documents, read by a client of its own. */
async function leaseIds(database: string, d: string): Promise<string[]> {
  const raw = await new MongoClient(MONGO_URI).connect();
  try {
    return (await raw.db(database).collection("rfboot_leases").find({ dpid: d }).toArray())
      .map((x) => String(x._id))
      .sort();
  } finally {
    await raw.close();
  }
}

describeWith(["mongo"], "leases between two rfboot instances", () => {
  const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
  let a: MongoStore;
  let b: MongoStore;
  let c: MongoStore;

  beforeAll(async () => {
    const open = (owner: string) => MongoStore.open({ uri: MONGO_URI, database, owner });
    [a, b, c] = await Promise.all([open("a"), open("b"), open("c")]);
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    const raw = await new MongoClient(MONGO_URI).connect();
    await raw.db(database).dropDatabase();
    await raw.close();
  });

  it("two instances racing for 50 free dpids: each dpid is won exactly once", async () => {
    const ids = dpids(0x1000, 50);
    const now = new Date();
    const results = await Promise.all(
      ids.flatMap((d) => [
        a.claim(d, "A", 60_000, now).then((ok) => ({ d, who: "A", ok })),
        b.claim(d, "B", 60_000, now).then((ok) => ({ d, who: "B", ok })),
      ]),
    );
    for (const d of ids)
      expect(
        results.filter((r) => r.d === d && r.ok),
        d,
      ).toHaveLength(1);
    const heldA = (await a.heldBy("A", now)).map((l) => l.dpidHex);
    const heldB = (await b.heldBy("B", now)).map((l) => l.dpidHex);
    expect([...heldA, ...heldB].sort()).toEqual(ids);
    expect(heldA.filter((d) => heldB.includes(d))).toEqual([]);
    expect(heldA).toEqual(
      results
        .filter((r) => r.ok && r.who === "A")
        .map((r) => r.d)
        .sort(),
    );
    // Claiming again is a renewal for the holder and a refusal for the other.
    for (const d of heldA.slice(0, 5)) {
      expect(await a.claim(d, "A", 60_000, now)).toBe(true);
      expect(await b.claim(d, "B", 60_000, now)).toBe(false);
    }
  });

  it("a dead instance's expired leases are taken over exactly once by three racing instances", async () => {
    const ids = dpids(0x2000, 50);
    const t0 = new Date("2030-01-01T00:00:00Z");
    for (const d of ids) expect(await c.claim(d, "dead", 1_000, t0)).toBe(true);
    const later = new Date(t0.getTime() + 500);
    expect(await a.claim(ids[0]!, "A", 1_000, later)).toBe(false); // not expired yet
    const t1 = new Date(t0.getTime() + 5_000);
    for (let round = 0; round < 2; round++) {
      const now = new Date(t1.getTime() + round * 10_000);
      const results = await Promise.all(
        ids.flatMap((d) =>
          (["A", "B", "C"] as const).map((who, k) =>
            [a, b, c][k]!.claim(d, `${who}${round}`, 1_000, now).then((ok) => ({ d, ok, who })),
          ),
        ),
      );
      for (const d of ids)
        expect(
          results.filter((r) => r.d === d && r.ok),
          `${d} round ${round}`,
        ).toHaveLength(1);
      const lease = await a.lease(ids[7]!);
      expect(lease?.generation).toBe(round + 2);
    }
    // The dead owner coming back does not get its leases again, nor can it renew them.
    const t2 = new Date(t1.getTime() + 10_500);
    expect(await c.renew(ids[0]!, "dead", 1_000, t2)).toBe(false);
    expect(await c.heldBy("dead", t2)).toEqual([]);
  });

  it("renew keeps a lease alive past its first expiry; release frees it at once", async () => {
    const [d] = dpids(0x3000, 1) as [string];
    const t0 = new Date("2031-01-01T00:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    expect(await a.claim(d, "A", 1_000, t0)).toBe(true);
    expect(await a.renew(d, "A", 1_000, at(400))).toBe(true); // in place: same generation
    expect((await a.lease(d))?.generation).toBe(1);
    expect(await b.claim(d, "B", 1_000, at(1_200))).toBe(false); // renewed until 1400
    expect(await a.renew(d, "A", 1_000, at(1_300))).toBe(true); // near expiry: a new generation of its own
    expect(await a.lease(d)).toMatchObject({ owner: "A", generation: 2, expiresAt: at(2_300) });
    expect(await b.renew(d, "B", 1_000, at(1_300))).toBe(false);
    expect(await b.release(d, "B", at(1_300))).toBe(false);
    expect(await a.release(d, "A", at(1_500))).toBe(true);
    expect(await b.claim(d, "B", 1_000, at(1_600))).toBe(true);
    expect(await a.heldBy("A", at(1_600))).toEqual([]);
    expect((await b.heldBy("B", at(1_600))).map((l) => l.dpidHex)).toEqual([d]);
    await expect(a.claim("xyz", "A", 1_000)).rejects.toThrow(/claim.dpid/);
  });
  it("a first claim is one command (the insert of #1 alone); generation 1 stays when superseded; a new instance knows the chain", async () => {
    const owner = "first";
    const m = await MongoStore.open({
      uri: MONGO_URI,
      database,
      owner,
      clientOptions: { monitorCommands: true },
    });
    try {
      const watch = await leaseCommands(m);
      const [d] = dpids(0x5000, 1) as [string];
      const t0 = new Date("2033-01-01T00:00:00Z");
      expect(await watch.during(() => m.claim(d, owner, 1_000, t0))).toBe(true);
      expect(watch.log).toEqual(["insert", "done"]);
      // Taken over twice (expired): generation 3 holds it, #2 is gone, #1 stays.
      const at = (ms: number) => new Date(t0.getTime() + ms);
      expect(await a.claim(d, "A5", 1_000, at(2_000))).toBe(true);
      expect(await b.claim(d, "B5", 1_000, at(4_000))).toBe(true);
      expect(await leaseIds(database, d)).toEqual([d, `${d}#1`, `${d}#3`]);
      // An instance opened before the chain existed (no cache): its insert of #1 loses; refused the long way.
      expect(await c.claim(d, "C5", 1_000, at(4_500))).toBe(false);
      expect(await a.lease(d)).toMatchObject({ owner: "B5", generation: 3 });
      // One opened after it knows the chain from its setup scan: no insert of #1 that must fail first.
      const late = await MongoStore.open({
        uri: MONGO_URI,
        database,
        owner: "late",
        clientOptions: { monitorCommands: true },
      });
      try {
        const lw = await leaseCommands(late);
        expect(await lw.during(() => late.claim(d, "late", 1_000, at(4_500)))).toBe(false);
        expect(lw.log).not.toContain("insert");
      } finally {
        await late.close();
      }
    } finally {
      await m.close();
    }
  });

  it("chains an earlier rfboot left without #1 are repaired at setup: a first claim loses its insert and is refused, not won", async () => {
    // A database of its own: a chain without #1 turns the hint read on in every instance that sees it.
    const db = `rfbt_store_${randomBytes(4).toString("hex")}`;
    const [p, q, r, s, n] = dpids(0x6000, 5) as [string, string, string, string, string];
    const t0 = new Date("2034-01-01T00:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    const held = (d: string, gen: number, owner: string) => ({
      _id: `${d}#${gen}`,
      dpid: d,
      gen,
      owner,
      expiresAt: at(10_000),
      acquiredAt: t0,
    });
    const raw = await new MongoClient(MONGO_URI).connect();
    const col = raw.db(db).collection<{ _id: string; [k: string]: unknown }>("rfboot_leases");
    // Opened on the empty database: its setup scan found nothing, so its first claims are the insert alone.
    const early = await MongoStore.open({
      uri: MONGO_URI,
      database: db,
      owner: "early",
      clientOptions: { monitorCommands: true },
    });
    const opened = [early];
    try {
      // What an earlier version left: P held by X at generation 2 with its hint; Q held by Y at generation 3
      // whose hint was never written (the earlier version deleted the generation before anyway).
      await col.insertMany([{ _id: p, dpid: p, gen: 2, head: true }, held(p, 2, "X"), held(q, 3, "Y")]);
      const fresh = await MongoStore.open({ uri: MONGO_URI, database: db, owner: "fresh" });
      opened.push(fresh);
      for (const d of [p, q]) {
        expect(await col.findOne({ _id: `${d}#1` })).toMatchObject({
          gen: 1,
          owner: "",
          expiresAt: new Date(0),
        });
      }
      expect(await col.findOne({ _id: q })).toMatchObject({ gen: 3, head: true });
      // The instance that never saw these chains: its insert of #1 loses, and the long way finds the holder.
      const watch = await leaseCommands(early);
      expect(await watch.during(() => early.claim(p, "early", 1_000, at(100)))).toBe(false);
      expect(watch.log.slice(0, 2)).toEqual(["insert", "done"]);
      expect(await early.claim(q, "early", 1_000, at(100))).toBe(false);
      expect(await fresh.claim(p, "fresh", 1_000, at(100))).toBe(false);
      expect(await fresh.lease(p)).toMatchObject({ owner: "X", generation: 2 });
      expect(await fresh.lease(q)).toMatchObject({ owner: "Y", generation: 3 });
      // Once X's lease expired, the claim takes generation 3.
      expect(await fresh.claim(p, "fresh", 1_000, at(11_000))).toBe(true);
      expect(await fresh.lease(p)).toMatchObject({ owner: "fresh", generation: 3 });

      // An earlier version running beside deletes #1 of R after setup: the next renewAll scan repairs it and
      // turns the hint read on for good; a chain broken after that is refused by the hint, and repaired.
      await col.insertMany([{ _id: r, dpid: r, gen: 2, head: true }, held(r, 2, "Z")]);
      await early.renewAll("early", 1_000, at(200));
      expect(await col.findOne({ _id: `${r}#1` })).toMatchObject({ owner: "" });
      await col.insertMany([{ _id: s, dpid: s, gen: 2, head: true }, held(s, 2, "W")]);
      expect(await early.claim(s, "early", 1_000, at(300))).toBe(false);
      expect(await col.findOne({ _id: `${s}#1` })).toMatchObject({ owner: "", expiresAt: new Date(0) });
      expect(await early.lease(s)).toMatchObject({ owner: "W", generation: 2 });
      // A new dpid's first claim is now the insert and the hint's read, together.
      const w2 = await leaseCommands(early);
      expect(await w2.during(() => early.claim(n, "early", 1_000, at(300)))).toBe(true);
      expect(w2.log.slice(0, 2).sort()).toEqual(["find", "insert"]);
      expect(w2.log.slice(2)).toEqual(["done", "done"]);
    } finally {
      for (const o of opened) await o.close();
      await raw.db(db).dropDatabase();
      await raw.close();
    }
  });

  it("before the setup scan has run, a first claim reads the hint beside its insert", async () => {
    const db = `rfbt_store_${randomBytes(4).toString("hex")}`;
    const [p] = dpids(0x7000, 1) as [string];
    const t0 = new Date("2035-01-01T00:00:00Z");
    const raw = await new MongoClient(MONGO_URI, { monitorCommands: true }).connect();
    try {
      const col = raw.db(db).collection<LeaseDoc>("rfboot_leases");
      await col.insertMany([
        { _id: p, dpid: p, gen: 2, head: true },
        { _id: `${p}#2`, dpid: p, gen: 2, owner: "X", expiresAt: new Date(t0.getTime() + 10_000) },
      ]);
      const table = new LeaseTable(col);
      expect(await table.claim(p, "unprepared", 1_000, t0)).toBe(false);
      // Its insert won beside the hint: released in place, which gives the chain its #1.
      expect(await col.findOne({ _id: `${p}#1` })).toMatchObject({ owner: "", expiresAt: new Date(0) });
      expect(await table.current(p)).toMatchObject({ owner: "X", generation: 2 });
    } finally {
      await raw.db(db).dropDatabase();
      await raw.close();
    }
  });

  it("renewAll extends every lease of an owner in one pass and reports the ones taken over", async () => {
    const ids = dpids(0x4000, 5);
    const t0 = new Date("2032-01-01T00:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    for (const d of ids) expect(await a.claim(d, "A4", 1_000, t0)).toBe(true);
    expect(await b.claim(dpids(0x4100, 1)[0]!, "B4", 1_000, t0)).toBe(true);
    expect(await a.renewAll("A4", 1_000, at(300))).toEqual({ renewed: ids, lost: [], wanted: [] });
    expect((await a.lease(ids[2]!))?.expiresAt).toEqual(at(1_300));
    // A stalls past expiry; B takes one of its dpids over.
    expect(await b.claim(ids[0]!, "B4", 1_000, at(2_000))).toBe(true);
    // Without a list, only what the scan shows as A4's is considered; with the caller's list, the loss shows.
    expect(await a.renewAll("A4", 1_000, at(2_000), ids)).toEqual({
      renewed: ids.slice(1),
      lost: [ids[0]],
      wanted: [],
    });
    expect((await a.heldBy("A4", at(2_100))).map((l) => l.dpidHex)).toEqual(ids.slice(1));
    expect(await b.renewAll("B4", 1_000, at(2_100))).toMatchObject({
      renewed: [ids[0], dpids(0x4100, 1)[0]],
    });
  });

  it("a want reaches the holder's renewAll (not its own, not a stale one) and is never read as a generation", async () => {
    const ids = dpids(0x8000, 3);
    const t0 = new Date("2033-01-01T00:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    for (const d of ids) expect(await a.claim(d, "A5", 10_000, t0)).toBe(true);
    // B's switch joined ids[0]: refused, it asks; A's own want of ids[1] asks nothing of A; C asked for ids[2]
    // longer than a ttl ago.
    expect(await b.claim(ids[0]!, "B5", 10_000, at(100))).toBe(false);
    await b.want(ids[0]!, "B5", at(100));
    await a.want(ids[1]!, "A5", at(100));
    await c.want(ids[2]!, "C5", at(-20_000));
    expect(await a.renewAll("A5", 10_000, at(1_000))).toEqual({ renewed: ids, lost: [], wanted: [ids[0]] });
    // The want documents are nobody's lease: not held, not a generation a claim or a new instance walks to.
    expect((await a.heldBy("A5", at(1_100))).map((l) => l.dpidHex)).toEqual(ids);
    expect(await b.lease(ids[0]!)).toMatchObject({ owner: "A5", generation: 1 });
    const fresh = await MongoStore.open({ uri: MONGO_URI, database, owner: "d" });
    try {
      expect(await fresh.lease(ids[0]!)).toMatchObject({ owner: "A5", generation: 1 });
      expect(await fresh.claim(ids[0]!, "D5", 10_000, at(1_200))).toBe(false);
    } finally {
      await fresh.close();
    }
    // A gives it up; B's claim wins the next generation, and B withdraws its want.
    expect(await a.release(ids[0]!, "A5", at(1_300))).toBe(true);
    expect(await b.claim(ids[0]!, "B5", 10_000, at(1_400))).toBe(true);
    await b.unwant(ids[0]!, "B5");
    expect(await leaseIds(database, ids[0]!)).toEqual([`${ids[0]}`, `${ids[0]}#1`, `${ids[0]}#2`]);
    // Another owner's unwant does not withdraw a want.
    await c.unwant(ids[1]!, "C5");
    expect(await leaseIds(database, ids[1]!)).toEqual([`${ids[1]}!want`, `${ids[1]}#1`]);
  });
});
