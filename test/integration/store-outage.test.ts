/**
 * The outbox under a REAL outage: a private FerretDB on a free port is killed while rfboot keeps
 * writing, then restarted on the same port and data directory; every write must arrive exactly once.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BSON, MongoClient, ObjectId } from "mongodb";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { StoreError } from "../../src/common/errors.js";
import { dpidToHex } from "../../src/common/dpid.js";
import {
  isUnavailable,
  MongoStore,
  type RfconfigRow,
  type VmState,
} from "../../src/provisioner/store/index.js";
import { describeWith } from "../helpers/env.js";
import { portOpen } from "../helpers/real.js";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Ferret runs a private FerretDB (SQLite) in `dir` on `port`. */
class Ferret {
  private proc: ChildProcess | undefined;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  async start(): Promise<void> {
    if (this.proc && this.proc.exitCode === null) return;
    this.proc = spawn(
      "ferretdb",
      [
        "--handler=sqlite",
        `--sqlite-url=file:${this.dir}/`,
        `--listen-addr=127.0.0.1:${this.port}`,
        "--telemetry=disable",
        "--debug-addr=-",
        `--state-dir=${this.dir}`,
        "--log-level=error",
      ],
      { env: { ...process.env, DO_NOT_TRACK: "1" }, stdio: "ignore" },
    );
    const deadline = Date.now() + 20_000;
    while (!(await portOpen(this.port))) {
      if (Date.now() > deadline || this.proc.exitCode !== null)
        throw new Error(`ferretdb did not start on ${this.port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** kill stops it hard (SIGKILL), as a crash or an `kill -9` would. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }
}

const rowsFor = (vm: number, dp: number, ports: number): RfconfigRow[] =>
  Array.from({ length: ports }, (_, i) => ({
    vm_id: String(vm),
    vm_port: String(i + 1),
    ct_id: "0",
    dp_id: String(dp),
    dp_port: String(i + 1),
  }));

const strip = (docs: readonly object[]) =>
  docs
    .map((d) => Object.fromEntries(Object.entries(d).filter(([k]) => k !== "_id")))
    .sort((a, b) =>
      `${String(a.vm_id)}/${String(a.vm_port)}`.localeCompare(`${String(b.vm_id)}/${String(b.vm_port)}`),
    );

describeWith(["mongo"], "outbox across a real MongoDB outage", () => {
  let dir: string;
  let ferret: Ferret;
  let uri: string;
  const opened: MongoStore[] = [];
  const open = async (database: string, extra: { stateDir?: string; owner?: string } = {}) => {
    const s = await MongoStore.open({
      uri,
      database,
      serverSelectionTimeoutMS: 400,
      connectTimeoutMS: 400,
      outbox: { backoffMs: 50, backoffMaxMs: 400, writeWaitMs: 1_500 },
      ...extra,
    });
    opened.push(s);
    return s;
  };
  const rawDb = async <T>(
    database: string,
    fn: (db: ReturnType<MongoClient["db"]>) => Promise<T>,
  ): Promise<T> => {
    const c = await new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 }).connect();
    try {
      return await fn(c.db(database));
    } finally {
      await c.close();
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-store-ferret-"));
    ferret = new Ferret(dir, await freePort());
    uri = `mongodb://127.0.0.1:${ferret.port}`;
    await ferret.start();
  });

  afterAll(async () => {
    for (const s of opened) await s.close(200).catch(() => undefined);
    await ferret?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("buffers every write while the server is down and writes each exactly once when it returns", async () => {
    const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
    const store = await open(database);
    const dpids = Array.from({ length: 20 }, (_, i) => dpidToHex(BigInt(0x100 + i)));
    const events: string[] = [];
    const log = async (detail: string) => {
      events.push(detail);
      return store.logEvent({ kind: "test", detail });
    };

    // Up: the first half of the datapaths join.
    for (const [i, d] of dpids.slice(0, 10).entries()) {
      expect(
        await store.patchRecord(d, {
          state: "joined",
          vmName: `vm${i}`,
          switch: { peer: `p${i}`, version: 4, connected: true },
        }),
      ).toBe("written");
      expect(await log(`join ${d}`)).toBe("written");
    }
    expect(await store.upsertRfconfigRows([...rowsFor(1, 0x100, 2), ...rowsFor(2, 0x101, 2)])).toBe(
      "written",
    );

    await ferret.kill();
    const offline = new Promise((r) => store.once("offline", r));

    // Down: the rest join, everyone progresses through several states, rfconfig changes, events pile up.
    const outcomes: string[] = [];
    const states: VmState[] = ["placing", "defining", "starting", "running"];
    for (const st of states) {
      for (const [i, d] of dpids.entries()) {
        outcomes.push(
          await store.patchRecord(d, { state: st, vmName: `vm${i}`, attempts: states.indexOf(st) }),
        );
        outcomes.push(await log(`${st} ${d}`));
      }
    }
    for (const [i, d] of dpids.slice(0, 5).entries()) {
      outcomes.push(await store.patchRecord(d, { switch: { connected: false } }));
      outcomes.push(await log(`leave ${i}`));
    }
    outcomes.push(await store.upsertRfconfigRows(rowsFor(3, 0x102, 3)));
    outcomes.push(await store.upsertRfconfigRows([{ ...rowsFor(1, 0x100, 1)[0]!, dp_port: "7" }])); // remap vm 1 eth1
    outcomes.push(await store.removeRfconfigRows("2"));
    outcomes.push(await store.upsertRfconfigRows(rowsFor(4, 0x103, 2)));
    outcomes.push(await store.deleteRecord(dpids[19]!));
    await offline;
    expect(outcomes.filter((o) => o === "queued").length).toBeGreaterThan(outcomes.length - 3);
    // Coalesced: one pending entry per record, one per event, a few for rfconfig, not one per call.
    expect(store.pending()).toBeLessThanOrEqual(20 + events.length - 10 + 4);
    expect(store.stats().online).toBe(false);
    const readErr = await store.getRecord(dpids[0]!).catch((e: unknown) => e);
    expect(readErr).toBeInstanceOf(StoreError);
    expect(isUnavailable(readErr)).toBe(true);

    await new Promise((r) => setTimeout(r, 1_500)); // a real outage lasts a while: several retries fail
    expect(store.stats().retries).toBeGreaterThan(1);
    const flushed = new Promise<number>((r) => store.once("flushed", r));
    await ferret.start();
    expect(
      await Promise.race([flushed, new Promise((r) => setTimeout(() => r("timeout"), 20_000))]),
    ).not.toBe("timeout");
    expect(store.pending()).toBe(0);
    expect(store.stats().failed).toBe(0);

    await rawDb(database, async (db) => {
      const recs = await db.collection("rfboot_vms").find({}).sort({ _id: 1 }).toArray();
      expect(recs.map((r) => r._id)).toEqual(dpids.slice(0, 19));
      for (const [i, r] of recs.entries()) {
        expect(r).toMatchObject({ state: "running", vmName: `vm${i}`, attempts: 3, dpid: String(0x100 + i) });
        if (i < 5) expect(r.switch).toEqual({ peer: `p${i}`, version: 4, connected: false });
        else if (i < 10) expect(r.switch).toEqual({ peer: `p${i}`, version: 4, connected: true });
        else expect(r.switch).toBeUndefined();
      }
      const rf = await db.collection("rfconfig").find({}).toArray();
      expect(strip(rf)).toEqual(
        strip([
          { ...rowsFor(1, 0x100, 1)[0]!, dp_port: "7" },
          rowsFor(1, 0x100, 2)[1]!,
          ...rowsFor(3, 0x102, 3),
          ...rowsFor(4, 0x103, 2),
        ]),
      );
      const ev = await db.collection("rfboot_events").find({}).toArray();
      expect(ev.map((e) => e.detail).sort()).toEqual([...events].sort()); // each once: none lost, none twice
    });
    // The store is usable again for reads.
    expect((await store.getRecord(dpids[3]!))?.state).toBe("running");
  });

  it("keeps buffered writes in the state file across a restart while the server is down", async () => {
    const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
    const stateDir = join(dir, "state");
    await ferret.start(); // (a no-op when it runs)
    // An event already written whose acknowledgement was lost: it is in the state file AND in the database.
    const ackLost = new ObjectId();
    await rawDb(database, (db) =>
      db
        .collection("rfboot_events")
        .insertOne({ _id: ackLost, at: new Date(), kind: "boot", detail: "ack lost" }),
    );
    await ferret.kill();

    const a = await open(database, { stateDir, owner: "first" });
    expect(await a.patchRecord("00000000000000aa", { state: "starting", vmName: "rfvmA" })).toBe("queued");
    expect(await a.upsertRfconfigRows(rowsFor(2888912904352, 170, 4))).toBe("queued");
    expect(await a.logEvent({ kind: "join", dpid: "00000000000000aa", detail: "while down" })).toBe("queued");
    expect(await a.patchRecord("00000000000000aa", { state: "running", host: "h1" })).toBe("queued");
    const left = await a.close(300);
    expect(left).toBe(3); // one record entry (two patches merged), one rfconfig batch, one event
    const file = join(stateDir, `rfboot_outbox-${database}.json`);
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    // Add the acknowledged-but-unconfirmed event to the file, as if it had been in flight at the crash.
    const saved = BSON.EJSON.parse((await import("node:fs")).readFileSync(file, "utf8"), {
      relaxed: true,
    }) as {
      version: number;
      ops: unknown[];
    };
    saved.ops.push({
      type: "event",
      id: ackLost.toHexString(),
      event: { at: new Date(), kind: "boot", detail: "ack lost" },
    });
    writeFileSync(file, BSON.EJSON.stringify(saved, { relaxed: true }), { mode: 0o600 });

    const b = await open(database, { stateDir, owner: "second" });
    expect(b.pending()).toBe(4);
    // Read-your-writes: the buffered record shows through... once the server answers reads again.
    await ferret.start();
    const drained = await b.drain(20_000);
    expect(drained).toBe(true);
    expect(existsSync(file)).toBe(false);
    await rawDb(database, async (db) => {
      expect(await db.collection("rfboot_vms").find({}).toArray()).toMatchObject([
        { _id: "00000000000000aa", state: "running", host: "h1", vmName: "rfvmA", dpid: "170" },
      ]);
      expect(await db.collection("rfconfig").countDocuments({ vm_id: "2888912904352" })).toBe(4);
      const ev = await db.collection("rfboot_events").find({}).toArray();
      expect(ev.map((e) => e.detail).sort()).toEqual(["ack lost", "while down"]);
    });
  });

  it("while the server answers, the state file waits until a write is half a second old (a write held that long is saved)", async () => {
    const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
    const stateDir = join(dir, "state-online");
    const s = await open(database, { stateDir, owner: "online" });
    const file = join(stateDir, `rfboot_outbox-${database}.json`);
    expect(await s.patchRecord("00000000000000bc", { state: "stopped" })).toBe("written");
    // Held (as a join holds its bookkeeping until its start, at most 1 s): pending, younger than 0.5 s.
    const release = s.holdBookkeeping();
    void s.patchRecord("00000000000000bc", { state: "starting" });
    let seenAt: number | undefined;
    const t0 = performance.now();
    const poll = setInterval(() => {
      if (seenAt === undefined && existsSync(file)) seenAt = performance.now() - t0;
    }, 5);
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(seenAt).toBeUndefined();
      // Still unwritten half a second on: saved, as it would be while the server is away.
      await vi.waitFor(() => expect(seenAt).toBeDefined(), { timeout: 5_000 });
      expect(seenAt!).toBeGreaterThanOrEqual(450);
      const ops = (
        BSON.EJSON.parse(readFileSync(file, "utf8"), { relaxed: true }) as { ops: { type: string }[] }
      ).ops;
      expect(ops.map((o) => o.type)).toEqual(["record"]);
    } finally {
      clearInterval(poll);
      release();
    }
    expect(await s.drain(10_000)).toBe(true);
    expect(existsSync(file)).toBe(false);
    expect((await s.getRecord("00000000000000bc"))?.state).toBe("starting");
    expect(await s.close()).toBe(0);
  });

  it("keeps the state file in step with the outbox while running, not only at close, and drain waits for it", async () => {
    const database = `rfbt_store_${randomBytes(4).toString("hex")}`;
    const stateDir = join(dir, "state-live");
    await ferret.kill();
    const s = await open(database, { stateDir, owner: "live" });
    const file = join(stateDir, `rfboot_outbox-${database}.json`);
    const saved = () =>
      existsSync(file)
        ? (BSON.EJSON.parse(readFileSync(file, "utf8"), { relaxed: true }) as { ops: { type: string }[] }).ops
        : [];
    expect(await s.patchRecord("00000000000000bb", { state: "starting" })).toBe("queued");
    // Written in the background after a short debounce: the store stays open, nothing is flushed.
    await vi.waitFor(() => expect(saved().map((o) => o.type)).toEqual(["record"]), { timeout: 5_000 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await s.logEvent({ kind: "join", dpid: "00000000000000bb", detail: "live" })).toBe("queued");
    await vi.waitFor(
      () =>
        expect(
          saved()
            .map((o) => o.type)
            .sort(),
        ).toEqual(["event", "record"]),
      {
        timeout: 5_000,
      },
    );
    await ferret.start();
    expect(await s.drain(20_000)).toBe(true);
    // The removal is done when drain resolves.
    expect(existsSync(file)).toBe(false);
    expect(await s.close()).toBe(0);
    expect(existsSync(file)).toBe(false);
  });
});
