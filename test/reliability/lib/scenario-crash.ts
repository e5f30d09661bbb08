/**
 * Fault: rfboot killed with SIGKILL in the middle of a burst of 32 joins, then restarted (a new process,
 * default instance id, so its predecessor's leases are still valid). Expected: exactly 32 domains, 32
 * records, the rfconfig rows exactly once, one qcow2 overlay volume per VM in the host's pool and no
 * half-built volume (nor its marker) left.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MONGO_URI } from "../../helpers/env.js";
import { markerName, parseVolList } from "../../../src/provisioner/libvirt/storage.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import { Db, configYaml, datapathLines, domains, expectedRows, rowKeys, tag } from "./lab.js";
import { RfbootProcess } from "./rfboot-process.js";
import { Fleet } from "./switches.js";
import { Checks, freePort, sh, until, type ScenarioResult } from "./util.js";

/** crashDuringBurst runs the scenario; `n` joins (32 by the issue), kill after `killAfter` VMs run. */
export async function crashDuringBurst(n = 32, killAfter = 10): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-crash-"));
  const db = `rfbt_rel_crash_${T}`;
  const prefix = `rfbtk${T}`;
  let host: LibvirtTestHost | undefined;
  let fleet: Fleet | undefined;
  const procs: RfbootProcess[] = [];
  const mongo = await Db.open(MONGO_URI, db);
  const c = new Checks();
  const figures: Record<string, number | string> = { joins: n };
  try {
    host = await startLibvirtHost(`rfbt-rk${T}`);
    const base = join(dir, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "1M"]);
    const port = await freePort();
    const dps = datapathLines(n, 0x7a0000n, prefix);
    const storage = join(dir, "state", "disks");
    const cfgFile = join(dir, "rfboot.yaml");
    writeFileSync(
      cfgFile,
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: MONGO_URI,
        database: db,
        hosts: [{ name: "h1", uri: host.testUri, maxConcurrentStarts: 4 }],
        datapaths: dps,
        baseImage: base,
      }),
    );
    const first = new RfbootProcess(cfgFile);
    procs.push(first);
    await first.waitFor("accepting switches", (l) => l.some((x) => x.msg === "accepting switches"), 30_000);
    fleet = Fleet.of(n, 0x7a0000n, port, () => 2);
    const burstAt = performance.now();
    fleet.start();
    await first.waitFor(`${killAfter} VMs running`, () => first.count("VM running") >= killAfter, 60_000);
    first.proc.kill("SIGKILL");
    await new Promise((r) => first.proc.once("exit", r));
    const killedAt = performance.now();
    figures.runningAtKill = first.count("VM running");
    figures.killAfterMs = Math.round(killedAt - burstAt);
    const volumes = async () => parseVolList(await sh("virsh", ["-c", host!.testUri, "vol-list", "rfboot"]));
    figures.markersAtKill = (await volumes()).filter((v) => v.startsWith("rfboot-part.")).length;
    figures.domainsAtKill = (await domains(host.testUri, prefix)).size;
    // The kill rarely lands inside a volume's build: plant what it leaves then (a half-built volume and its
    // marker, named after a process of this machine that no longer runs), so the restart's sweep is
    // exercised every time.
    const dead = spawnSync("true").pid!;
    for (const v of ["half-built.qcow2", markerName("half-built.qcow2", undefined, dead)])
      await sh("virsh", ["-c", host.testUri, "vol-create-as", "rfboot", v, "0", "--format", "raw"]);

    const second = new RfbootProcess(cfgFile);
    procs.push(second);
    const restartAt = performance.now();
    const h = host;
    await until(
      "every VM ensured by the restarted rfboot, 32 domains and 32 records running",
      async () => {
        // The restarted process must have ensured every VM itself: records of VMs that ran before the kill
        // say `running` already, and switch back to `starting` when their switch rejoins.
        const ensuredBySecond = new Set(
          second.lines.filter((l) => l.msg === "VM running").map((l) => l.dpid),
        );
        if (ensuredBySecond.size < n) return false;
        const doms = await domains(h.testUri, prefix);
        const recs = await mongo.records();
        return (
          [...doms.values()].filter((s) => s === "running").length === n &&
          recs.length === n &&
          recs.every((r) => r.state === "running")
        );
      },
      90_000,
      250,
    );
    figures.recoverMs = Math.round(performance.now() - restartAt);
    figures.leaseTakeovers = second.count("took over the lease of a dead rfboot process of this machine");
    figures.sweptPartFiles = second.lines
      .filter((l) => l.msg === "removed half-built disks of a crashed run")
      .reduce((a, l) => a + ((l.volumes as unknown[] | undefined)?.length ?? 0), 0);
    figures.leasedElsewhere = second.count("another rfboot instance holds this datapath's lease");
    figures.ensuredAfterRestart = second.count("VM running");

    const doms = await domains(host.testUri, prefix);
    c.eq("domains on the host", doms.size, n);
    c.eq("domains running", [...doms.values()].filter((s) => s === "running").length, n);
    c.eq("domain names are the configured VMs", [...doms.keys()].sort(), dps.map((d) => d.name).sort());
    const recs = await mongo.records();
    c.eq("records", recs.length, n);
    c.eq("records state running", recs.filter((r) => r.state === "running").length, n);
    c.eq("one record per VM", new Set(recs.map((r) => r.vmName)).size, n);
    const rows = await mongo.rows();
    c.eq("rfconfig rows (count)", rows.length, n * 2);
    c.eq("rfconfig rows exactly once each (RouteFlow's format)", rowKeys(rows), expectedRows(dps));
    const vols = await volumes();
    const overlays = vols.filter((f) => f.endsWith(".qcow2"));
    c.eq("one overlay volume per VM in the pool", overlays.sort(), dps.map((d) => `${d.name}.qcow2`).sort());
    c.eq(
      "no half-built volume nor marker",
      vols.filter((f) => f.startsWith("rfboot-part.") || f === "half-built.qcow2"),
      [],
    );
    c.ok(
      "the restart took over its dead predecessor's leases instead of waiting them out",
      Number(figures.leaseTakeovers) >= 1 && figures.leasedElsewhere === 0,
      `${figures.leaseTakeovers} leases taken over, ${figures.leasedElsewhere} waits`,
    );
    c.ok(
      "the planted leftover was swept at restart",
      Number(figures.sweptPartFiles) >= 1,
      `${figures.sweptPartFiles} swept`,
    );
    // No orphan: every overlay is the disk of a defined domain, backed by the base image.
    let referenced = 0;
    for (const d of dps) {
      const xml = await sh("virsh", ["-c", host.testUri, "dumpxml", d.name]);
      if (xml.includes(join(storage, `${d.name}.qcow2`))) referenced++;
    }
    c.eq("overlays referenced by their domain", referenced, n);
    const info = await sh("virsh", [
      "-c",
      host.testUri,
      "vol-dumpxml",
      "--pool",
      "rfboot",
      overlays[0] ?? "x",
    ]);
    c.ok("overlay is backed by the base", info.includes(`<path>${base}</path>`), `backing ${base}`);
    c.ok(
      "the kill hit mid-burst",
      Number(figures.runningAtKill) < n,
      `${figures.runningAtKill} of ${n} running at the kill`,
    );
    await second.kill("SIGTERM");
  } finally {
    await fleet?.stop();
    for (const p of procs) await p.kill("SIGKILL");
    if (host) await stopLibvirtHost(host);
    await mongo.drop();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: "sigkill-burst",
    title: "rfboot SIGKILLed during a burst of joins, restarted",
    injected: `SIGKILL of \`rfboot run\` after ${killAfter} of ${n} VMs ran (+ a planted half-built volume and marker of a dead pid); restart as a new process (new pid; predecessor's leases still valid)`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
