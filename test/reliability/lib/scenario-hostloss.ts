/**
 * Fault: a libvirt host disappears (its socket vanishes: new connections fail while its domains keep
 * running, as with a network partition), then comes back. Expected, with policies.hostLoss:
 *   report  - the host's VMs are reported: records get lastError `host-unreachable`, `rfboot hosts` shows
 *             the host unreachable (exit 1), an event is logged; nothing moves;
 *   replace - (switched on by a config reload) the VMs of connected switches are defined and started on
 *             the other host; when the lost host answers again, the stale copies still running there are
 *             destroyed, so each VM runs exactly once.
 */
import { execa } from "execa";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MONGO_URI, REPO } from "../../helpers/env.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import type { Daemon } from "../../../src/provisioner/index.js";
import { CapturedLog, Db, configYaml, datapathLines, domains, parse, startDaemon, tag } from "./lab.js";
import { Fleet } from "./switches.js";
import { Checks, freePort, sleep, until, type ScenarioResult } from "./util.js";

/** hostLoss: n VMs over two hosts; the first host vanishes; report, then replace. */
export async function hostLoss(n = 4, afterSeconds = 3): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-hl-"));
  const dbName = `rfbt_rel_hl_${T}`;
  const prefix = `rfbth${T}`;
  const c = new Checks();
  const figures: Record<string, number | string> = { vms: n, afterSeconds };
  const mongo = await Db.open(MONGO_URI, dbName);
  let hosts: LibvirtTestHost[] = [];
  let daemon: Daemon | undefined;
  let fleet: Fleet | undefined;
  let hidden: { from: string; to: string } | undefined;
  try {
    hosts = await startLibvirtHosts(2, { prefix: `rfbt-rh${T}-` });
    const [h1, h2] = hosts as [LibvirtTestHost, LibvirtTestHost];
    const port = await freePort();
    const dps = datapathLines(n, 0x7f0000n, prefix);
    const yaml = (action: string) =>
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: MONGO_URI,
        database: dbName,
        hosts: [
          { name: "h1", uri: h1.testUri },
          { name: "h2", uri: h2.testUri },
        ],
        datapaths: dps,
        policies: `{ hostLoss: { action: ${action}, afterSeconds: ${afterSeconds}, probeSeconds: 1 } }`,
      });
    const cfgFile = join(dir, "rfboot.yaml");
    writeFileSync(cfgFile, yaml("report"));
    const log = new CapturedLog();
    daemon = await startDaemon(parse(yaml("report")), log);
    const d = daemon;
    const lost: { host: string; vms: string[]; at: number }[] = [];
    const replaced: string[] = [];
    d.on("hostLost", (e) => lost.push({ ...e, at: performance.now() }));
    d.on("replaced", (e) => replaced.push(e.vm));
    fleet = Fleet.of(n, 0x7f0000n, port, () => 2);
    fleet.start();
    await until(
      `${n} records running`,
      async () => (await mongo.records()).filter((r) => r.state === "running").length === n,
      30_000,
    );
    const onH1 = (await mongo.records())
      .filter((r) => r.host === "h1")
      .map((r) => String(r.vmName))
      .sort();
    figures.vmsOnLostHost = onH1.length;
    c.ok("VMs spread over both hosts", onH1.length > 0 && onH1.length < n, `${onH1.length} of ${n} on h1`);

    // The host vanishes: its socket is moved aside (libvirtd and its domains keep running).
    hidden = { from: h1.socket, to: `${h1.socket}.hidden` };
    renameSync(hidden.from, hidden.to);
    const goneAt = performance.now();
    await until("host reported lost", () => lost.length > 0, 10_000, 20);
    figures.detectMs = Math.round(lost[0]!.at - goneAt);
    c.eq("hostLost names the host and its VMs", [lost[0]!.host, [...lost[0]!.vms].sort()], ["h1", onH1]);
    await until(
      "records report host-unreachable",
      async () =>
        (await mongo.records()).filter(
          (r) =>
            onH1.includes(String(r.vmName)) &&
            (r.lastError as { kind?: string } | null)?.kind === "host-unreachable",
        ).length === onH1.length,
      10_000,
    );
    c.ok("records of its VMs carry lastError host-unreachable", true, `${onH1.length} records`);
    const cli = await execa(join(REPO, "bin/rfboot"), ["hosts", "--config", cfgFile, "--json"], {
      reject: false,
    });
    const rows =
      (JSON.parse(cli.stdout || "{}") as { hosts?: { name: string; reachable: boolean }[] }).hosts ?? [];
    c.eq(
      "`rfboot hosts` shows it unreachable and exits 1",
      [cli.exitCode, rows.map((r) => [r.name, r.reachable])],
      [
        1,
        [
          ["h1", false],
          ["h2", true],
        ],
      ],
    );
    const events = await mongo.events();
    c.ok(
      "event log has host-lost",
      events.some((e) => e.kind === "host-lost" && String(e.detail).startsWith("h1")),
      "host-lost h1",
    );
    await sleep(afterSeconds * 1000 + 1500);
    c.eq("report: nothing moved after afterSeconds", replaced.length, 0);
    c.eq(
      "report: the other host still runs only its own VMs",
      (await domains(h2.testUri, prefix)).size,
      n - onH1.length,
    );

    // Policy replace (config reload, as SIGHUP does): the lost host's VMs start on h2.
    writeFileSync(cfgFile, yaml("replace"));
    const reloadAt = performance.now();
    await d.reload(parse(yaml("replace")));
    await until(
      "VMs re-placed and running on h2",
      async () => {
        const recs = await mongo.records();
        return (
          [...(await domains(h2.testUri, prefix)).values()].filter((s) => s === "running").length === n &&
          recs.every((r) => r.host === "h2" && r.state === "running")
        );
      },
      20_000,
    );
    figures.replaceMs = Math.round(performance.now() - reloadAt);
    c.eq("replace: the lost host's VMs were re-placed", [...replaced].sort(), onH1);
    c.eq(
      "replace: every VM runs on h2 (records)",
      (await mongo.records()).filter((r) => r.host === "h2").length,
      n,
    );

    // The host answers again: the stale copies still running there are stopped.
    renameSync(hidden.to, hidden.from);
    hidden = undefined;
    const backAt = performance.now();
    await until(
      "stale copies stopped on h1",
      async () => [...(await domains(h1.testUri, prefix)).values()].every((s) => s !== "running"),
      15_000,
    );
    figures.staleStopMs = Math.round(performance.now() - backAt);
    const all = [
      ...[...(await domains(h1.testUri, prefix)).entries()].filter(([, s]) => s === "running"),
      ...[...(await domains(h2.testUri, prefix)).entries()].filter(([, s]) => s === "running"),
    ].map(([name]) => name);
    c.eq("each VM runs exactly once across hosts", all.sort(), dps.map((x) => x.name).sort());
    c.eq(
      "stale copies stopped (log)",
      log.find("stopped the stale copy of a re-placed VM").length,
      onH1.length,
    );
  } finally {
    if (hidden) renameSync(hidden.to, hidden.from);
    await fleet?.stop();
    await daemon?.stop();
    await stopLibvirtHosts(hosts);
    await mongo.drop();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: "host-loss",
    title: "a libvirt host disappears (policy report, then replace), then returns",
    injected: `socket of host h1 removed (libvirtd and its domains keep running); report for ${afterSeconds + 1.5} s, then policies.hostLoss: replace (afterSeconds ${afterSeconds}) by reload; then the host returns`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
