/**
 * Fault: MongoDB (a private FerretDB) killed for 20 s while switches keep joining and leaving. Expected:
 * rfboot keeps detecting switches and booting VMs, buffers its writes, and writes every record once the
 * database returns: nothing lost (records, rfconfig rows, events), nothing duplicated.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import type { Daemon } from "../../../src/provisioner/index.js";
import { Ferret } from "./ferret.js";
import {
  CapturedLog,
  Db,
  configYaml,
  datapathLines,
  expectedRows,
  parse,
  rowKeys,
  runningCount,
  startDaemon,
  tag,
} from "./lab.js";
import { Fleet } from "./switches.js";
import { Checks, freePort, sleep, until, type ScenarioResult } from "./util.js";

/** mongoOutage: `before` switches join with the database up, `during` more while it is down for outageMs. */
export async function mongoOutage(before = 8, during = 8, outageMs = 20_000): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const n = before + during;
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-mgo-"));
  const dbName = `rfbt_rel_mgo_${T}`;
  const prefix = `rfbtm${T}`;
  const c = new Checks();
  const figures: Record<string, number | string> = { joinsBefore: before, joinsDuring: during, outageMs };
  const ferret = await Ferret.create();
  let host: LibvirtTestHost | undefined;
  let daemon: Daemon | undefined;
  let mongo: Db | undefined;
  const fleets: Fleet[] = [];
  try {
    await ferret.start();
    mongo = await Db.open(ferret.uri, dbName);
    host = await startLibvirtHost(`rfbt-rm${T}`);
    const port = await freePort();
    const dps = datapathLines(n, 0x7c0000n, prefix);
    const cfg = parse(
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: ferret.uri,
        database: dbName,
        hosts: [{ name: "h1", uri: host.testUri, maxConcurrentStarts: 4 }],
        datapaths: dps,
      }),
    );
    const log = new CapturedLog();
    daemon = await startDaemon(cfg, log);
    const d = daemon;
    const joined: { dpid: string; at: number }[] = [];
    const ensured: { dpid: string; at: number; action: string }[] = [];
    d.on("joined", (e) => joined.push({ dpid: e.dpidHex, at: performance.now() }));
    d.on("ensured", (e) => ensured.push({ dpid: e.dpidHex, at: performance.now(), action: e.action }));
    // Writes the driver lost when the server died, retried by the outbox's stall guard (reach-in: a figure).
    let stalled = 0;
    (d.store as unknown as { outbox: { on(e: "stalled", f: () => void): void } }).outbox.on(
      "stalled",
      () => stalled++,
    );
    const a = Fleet.of(before, 0x7c0000n, port, () => 2);
    fleets.push(a);
    a.start();
    const db = mongo;
    await until(
      `${before} records running`,
      async () => (await db.records()).filter((r) => r.state === "running").length === before,
      30_000,
    );
    await mongo.close();
    mongo = undefined;

    await ferret.kill();
    const downAt = performance.now();
    const b = new Fleet(Fleet.of(n, 0x7c0000n, port, () => 2).switches.slice(before));
    fleets.push(b);
    b.start();
    // One switch of the first group leaves for good during the outage (keep policy): its record must say so.
    const leaver = a.switches[0]!;
    await leaver.stop();
    let peak = 0;
    await until(
      `${during} more VMs booted while MongoDB is down`,
      async () => {
        peak = Math.max(peak, d.store.pending());
        return (await runningCount(host!.testUri, prefix)) === n;
      },
      outageMs - 1000,
      100,
    );
    figures.allBootedWithDbDownMs = Math.round(performance.now() - downAt);
    const bDpids = new Set(b.switches.map((s) => s.spec.dpid.toString(16).padStart(16, "0")));
    const joinedDuring = joined.filter((j) => j.at >= downAt && bDpids.has(j.dpid)).length;
    while (performance.now() - downAt < outageMs) {
      peak = Math.max(peak, d.store.pending());
      await sleep(200);
    }
    figures.bufferedWritesPeak = peak;
    figures.bufferedWritesAtRestart = d.store.pending();
    await ferret.start();
    const upAt = performance.now();
    try {
      await until("outbox flushed", () => d.store.pending() === 0, 30_000, 50);
    } catch (e) {
      const warn = log.lines.filter((l) => Number(l.level) >= 40).slice(-8);
      // Which writes are stuck in flight (diagnostics only: reaches into the store's private outbox).
      const ob = (
        d.store as unknown as {
          outbox: {
            entries: { op: { type: string }; inFlight: boolean }[];
            inFlight: number;
            retryTimer?: unknown;
          };
        }
      ).outbox;
      const st = d.store as unknown as {
        connected: boolean;
        connecting?: unknown;
        setupPromise?: unknown;
        trimming?: unknown;
      };
      const stuck = {
        storeConnected: st.connected,
        storeConnecting: st.connecting !== undefined,
        trimming: st.trimming !== undefined,
        inFlight: ob.inFlight,
        retryTimer: ob.retryTimer !== undefined,
        ops: ob.entries.filter((x) => x.inFlight).map((x) => x.op.type),
      };
      throw new Error(
        `${(e as Error).message}; outbox ${JSON.stringify(d.store.stats())} ${JSON.stringify(stuck)}; last warnings ${JSON.stringify(warn)}`,
        { cause: e },
      );
    }
    figures.flushMs = Math.round(performance.now() - upAt);
    figures.stalledWritesRetried = stalled;
    mongo = await Db.open(ferret.uri, dbName);

    c.eq("switches detected while MongoDB was down", joinedDuring, during);
    c.eq(
      "VMs booted while MongoDB was down",
      ensured.filter((e) => e.at >= downAt && e.at < upAt && bDpids.has(e.dpid)).length,
      during,
    );
    c.ok("writes were buffered", peak > 0, `peak ${peak} pending writes`);
    const recs = await mongo.records();
    c.eq("records (one per datapath)", recs.length, n);
    c.eq("records running", recs.filter((r) => r.state === "running").length, n);
    const leaverHex = leaver.spec.dpid.toString(16).padStart(16, "0");
    const lr = recs.find((r) => r.dpidHex === leaverHex);
    c.eq(
      "the leave during the outage is recorded",
      (lr?.switch as { connected?: boolean } | undefined)?.connected,
      false,
    );
    const bRecs = recs.filter((r) => bDpids.has(String(r.dpidHex)));
    c.eq(
      "records of VMs booted during the outage are complete",
      bRecs.filter((r) => r.host === "h1" && r.uuid && r.startedAt instanceof Date && r.vmName).length,
      during,
    );
    const rows = await mongo.rows();
    c.eq("rfconfig rows exactly once each", rowKeys(rows), expectedRows(dps));
    // A write the outbox gave up on (MongoDB refused it) would be lost: there must be none.
    c.eq(
      "no write refused by MongoDB and dropped",
      log.lines
        .filter((l) => l.msg === "MongoDB refused a write; it is dropped")
        .map((l) => `${String(l.op)}: ${String(l.err)}`),
      [],
    );
    const events = await mongo.events();
    const count = (kind: string) => {
      const m = new Map<string, number>();
      for (const e of events.filter((x) => x.kind === kind))
        m.set(String(e.dpid), (m.get(String(e.dpid)) ?? 0) + 1);
      return m;
    };
    const boots = count("boot");
    const joins = count("join");
    c.eq(
      "one boot event per datapath (none lost or doubled)",
      [boots.size, Math.max(...boots.values())],
      [n, 1],
    );
    c.eq("one join event per datapath", [joins.size, Math.max(...joins.values())], [n, 1]);
    c.eq("one leave event (the switch that left)", count("leave").get(leaverHex), 1);
  } finally {
    for (const f of fleets) await f.stop();
    await daemon?.stop();
    if (host) await stopLibvirtHost(host);
    await mongo?.close();
    await ferret.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: "mongodb-outage",
    title: "MongoDB (FerretDB) down while switches join",
    injected: `FerretDB SIGKILLed for ${outageMs / 1000} s; ${during} switches join and 1 leaves meanwhile (${before} joined before)`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
