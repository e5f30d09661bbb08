/**
 * Fault: libvirtd stopped for 20 s during a burst of joins, then started again (same socket). The test
 * driver keeps its domains in memory, so the restarted libvirtd has none: like a rebooted host, the VMs that
 * ran before the outage must be defined and started again. Expected: every VM ends up running; failed
 * ensures were recorded with their cause (`unreachable`) and retried with exponential backoff.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MONGO_URI } from "../../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import type { Daemon } from "../../../src/provisioner/index.js";
import { CapturedLog, Db, configYaml, datapathLines, parse, runningCount, startDaemon, tag } from "./lab.js";
import { haltLibvirtHost, restartLibvirtHost } from "./libvirt.js";
import { Fleet } from "./switches.js";
import { Checks, freePort, sleep, until, type ScenarioResult } from "./util.js";

/** libvirtdOutage: n joins; libvirtd stopped after `stopAfter` VMs run, for outageMs. */
export async function libvirtdOutage(n = 16, stopAfter = 4, outageMs = 20_000): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-lvd-"));
  const dbName = `rfbt_rel_lvd_${T}`;
  const prefix = `rfbtl${T}`;
  const c = new Checks();
  const figures: Record<string, number | string> = { joins: n, outageMs };
  const mongo = await Db.open(MONGO_URI, dbName);
  let host: LibvirtTestHost | undefined;
  let daemon: Daemon | undefined;
  let fleet: Fleet | undefined;
  try {
    host = await startLibvirtHost(`rfbt-rl${T}`);
    const port = await freePort();
    const dps = datapathLines(n, 0x7b0000n, prefix);
    const retryMaxMs = 4000;
    const cfg = parse(
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: MONGO_URI,
        database: dbName,
        hosts: [{ name: "h1", uri: host.testUri, maxConcurrentStarts: 4 }],
        datapaths: dps,
        policies: "{ hostLoss: { action: report, probeSeconds: 1 } }",
      }),
    );
    const log = new CapturedLog();
    daemon = await startDaemon(cfg, log, { retryInitialMs: 250, retryMaxMs });
    const failures: { dpid: string; kind: string; message: string; retryInMs?: number; at: number }[] = [];
    let ensured = 0;
    daemon.on("ensured", () => ensured++);
    daemon.on("failed", (f) => {
      const kind = (f.error as { kind?: string }).kind ?? f.error.name;
      failures.push({
        dpid: f.dpidHex,
        kind,
        message: f.error.message,
        at: performance.now(),
        ...(f.retryInMs !== undefined ? { retryInMs: f.retryInMs } : {}),
      });
    });
    let lost = 0;
    let back = 0;
    daemon.on("hostLost", () => lost++);
    daemon.on("hostBack", () => back++);

    fleet = Fleet.of(n, 0x7b0000n, port, () => 2);
    fleet.start();
    await until(`${stopAfter} VMs running`, () => ensured >= stopAfter, 30_000, 20);
    await haltLibvirtHost(host);
    const stoppedAt = performance.now();
    figures.runningAtStop = ensured;
    // Watch the records during the outage: the cause must be recorded, not just logged.
    const kindsSeen = new Set<string>();
    while (performance.now() - stoppedAt < outageMs) {
      for (const r of await mongo.records()) {
        const k = (r.lastError as { kind?: string } | null | undefined)?.kind;
        if (k) kindsSeen.add(k);
      }
      await sleep(1000);
    }
    const failuresDuringOutage = failures.filter((f) => f.at >= stoppedAt);
    await restartLibvirtHost(host);
    const restartedAt = performance.now();
    const h = host;
    await until(
      "every VM running again",
      async () => {
        const recs = await mongo.records();
        return (
          (await runningCount(h.testUri, prefix)) === n &&
          recs.length === n &&
          recs.every((r) => r.state === "running" && r.lastError === null)
        );
      },
      60_000,
      250,
    );
    figures.recoverMs = Math.round(performance.now() - restartedAt);
    figures.failures = failuresDuringOutage.length;
    figures.retriesScheduled = failuresDuringOutage.filter((f) => f.retryInMs !== undefined).length;
    figures.maxRetryDelayMs = Math.max(0, ...failuresDuringOutage.map((f) => f.retryInMs ?? 0));
    figures.reensuredAfterRestart = log.find(
      "the VM of a connected switch is gone from its host: ensuring it again",
    ).length;

    c.eq("VMs running on the restarted host", await runningCount(host.testUri, prefix), n);
    const recs = await mongo.records();
    c.eq(
      "records running, lastError cleared",
      recs.filter((r) => r.state === "running" && r.lastError === null).length,
      n,
    );
    c.ok(
      "ensures failed during the outage",
      failuresDuringOutage.length > 0,
      `${failuresDuringOutage.length} failures`,
    );
    const kinds = [...new Set(failuresDuringOutage.map((f) => f.kind))];
    const odd = failuresDuringOutage.find((f) => f.kind !== "unreachable");
    c.ok(
      "every failure classified unreachable",
      kinds.length === 1 && kinds[0] === "unreachable",
      odd ? `${odd.kind}: ${odd.message.slice(0, 300)}` : `${failuresDuringOutage.length} unreachable`,
    );
    c.ok(
      "record lastError.kind `unreachable` seen during the outage",
      kindsSeen.has("unreachable"),
      [...kindsSeen].join(","),
    );
    // Exponential backoff per datapath: each delay doubles the previous one, up to the cap.
    const byDpid = new Map<string, number[]>();
    for (const f of failuresDuringOutage) {
      if (f.retryInMs !== undefined) byDpid.set(f.dpid, [...(byDpid.get(f.dpid) ?? []), f.retryInMs]);
    }
    const bad = [...byDpid].filter(([, ds]) =>
      ds.some((d, i) => i > 0 && d !== Math.min(ds[i - 1]! * 2, retryMaxMs)),
    );
    c.ok(
      "retry delays double up to the cap",
      byDpid.size > 0 && bad.length === 0,
      `${byDpid.size} datapaths retried; e.g. ${JSON.stringify([...byDpid.values()][0] ?? [])}`,
    );
    c.ok(
      "no retry storm: at most ~log2 retries + outage/cap per datapath",
      [...byDpid.values()].every((ds) => ds.length <= 4 + Math.ceil(outageMs / retryMaxMs) + 1),
      `max ${Math.max(0, ...[...byDpid.values()].map((d) => d.length))} per datapath`,
    );
    const events = await mongo.events();
    const errs = events.filter((e) => e.kind === "error" && String(e.detail).includes("unreachable"));
    c.ok(
      "event log has the failures with their cause",
      errs.length > 0,
      `${errs.length} error events mention unreachable`,
    );
    c.eq("host reported lost once and back once", [lost, back], [1, 1]);
    c.ok(
      "VMs lost with the host were defined and started again",
      Number(figures.reensuredAfterRestart) >= 1 || stopAfter === 0,
      `${figures.reensuredAfterRestart} re-ensured`,
    );
  } finally {
    await fleet?.stop();
    await daemon?.stop();
    if (host) await stopLibvirtHost(host);
    await mongo.drop();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: "libvirtd-outage",
    title: "libvirtd stopped during a burst of joins, then started",
    injected: `libvirtd of the only host stopped for ${outageMs / 1000} s after ${stopAfter} of ${n} VMs ran (its domains are gone when it returns, as after a reboot)`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
