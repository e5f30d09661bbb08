/**
 * Fault: two switches presenting the same datapath id. The documented policy (policies.duplicateDatapath:
 * newest-wins): the newest connection becomes the datapath, the older one is closed, a warning names both
 * peers, and no `down` is reported for the replaced connection. Expected: one VM, started once, the leave
 * policy never triggered. First with two simulated switches (deterministic order), then with two real Open
 * vSwitch bridges configured with the same datapath-id, which keep taking the id from each other.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MONGO_URI } from "../../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import type { Daemon } from "../../../src/provisioner/index.js";
import { CapturedLog, Db, configYaml, datapathLines, domains, parse, startDaemon, tag } from "./lab.js";
import { SimSwitch, simSpec } from "./switches.js";
import { addSwitch } from "../../helpers/real.js";
import { Checks, freePort, shOk, sleep, until, type ScenarioResult } from "./util.js";

const DUP_MSG = "duplicate datapath id: the newest connection wins; closing the older one";

/** duplicateDpid runs the sim part, then `ovsSeconds` of two real bridges fighting over one dpid. */
export async function duplicateDpid(ovsSeconds = 8): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-dup-"));
  const dbName = `rfbt_rel_dup_${T}`;
  const prefix = `rfbtd${T}`;
  const bridges = [`rfbtda${T}`, `rfbtdb${T}`];
  const c = new Checks();
  const figures: Record<string, number | string> = {};
  const mongo = await Db.open(MONGO_URI, dbName);
  let host: LibvirtTestHost | undefined;
  let daemon: Daemon | undefined;
  const sims: SimSwitch[] = [];
  try {
    host = await startLibvirtHost(`rfbt-rd${T}`);
    const port = await freePort();
    const [simDp, ovsDp] = datapathLines(2, 0x7e0000n, prefix);
    const cfg = parse(
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: MONGO_URI,
        database: dbName,
        hosts: [{ name: "h1", uri: host.testUri }],
        datapaths: [simDp!, ovsDp!],
        policies: "{ leave: { action: destroy, graceSeconds: 2 } }",
      }),
    );
    const log = new CapturedLog();
    daemon = await startDaemon(cfg, log);
    const d = daemon;
    const ensured: { vm: string; action: string }[] = [];
    const left: string[] = [];
    d.on("ensured", (e) => ensured.push({ vm: e.vm, action: e.action }));
    d.on("left", (e) => left.push(e.vm));
    const simHex = simDp!.dpid.toString(16).padStart(16, "0");

    // Simulated: A connects and gets its VM; B presents the same dpid.
    const a = new SimSwitch(simSpec(simDp!.dpid, 2), { port, reconnect: false });
    const b = new SimSwitch(simSpec(simDp!.dpid, 2), { port, reconnect: false });
    sims.push(a, b);
    const pa = await a.session();
    const portA = pa.socket.localPort;
    await until("A's VM running", () => ensured.some((e) => e.vm === simDp!.name), 20_000, 20);
    const pb = await b.session();
    const portB = pb.socket.localPort;
    await until("A's connection closed by rfboot", () => pa.isClosed, 5000, 10);
    const line = log.find(DUP_MSG)[0];
    await sleep(3000); // longer than the leave grace period: a reported `down` would destroy the VM now
    c.ok("older connection closed", pa.isClosed, "A closed after B's handshake");
    c.ok("newest connection kept", !pb.isClosed, "B open");
    c.ok(
      "a clear log line names the dpid and both peers",
      line !== undefined &&
        line.dpid === simHex &&
        line.old === `127.0.0.1:${portA}` &&
        line.new === `127.0.0.1:${portB}`,
      line
        ? `${String(line.msg)} ${JSON.stringify({ dpid: line.dpid, old: line.old, new: line.new })}`
        : "no line",
    );
    c.ok("the datapath stays known (no down reported)", d.connectedDatapaths().includes(simHex), "connected");
    c.eq("leave policy not triggered", left.filter((v) => v === simDp!.name).length, 0);
    c.eq("sim: one domain, running", (await domains(host.testUri, simDp!.name)).get(simDp!.name), "running");
    c.eq(
      "sim: started once",
      ensured.filter((e) => e.vm === simDp!.name && e.action !== "adopted").length,
      1,
    );

    // Real: two bridges with the same datapath-id, both pointed at rfboot.
    for (const br of bridges) await addSwitch(br, ovsDp!.dpid.toString(16), port);
    const ovsStart = performance.now();
    await until("OVS VM running", () => ensured.some((e) => e.vm === ovsDp!.name), 20_000, 50);
    await sleep(ovsSeconds * 1000);
    const ovsHex = ovsDp!.dpid.toString(16).padStart(16, "0");
    const dupLines = log.find(DUP_MSG).filter((l) => l.dpid === ovsHex);
    figures.ovsSeconds = Math.round((performance.now() - ovsStart) / 1000);
    figures.ovsTakeovers = dupLines.length;
    figures.ovsEnsures = ensured.filter((e) => e.vm === ovsDp!.name).length;
    c.ok(
      "OVS: the two bridges' takeovers are logged",
      dupLines.length >= 1,
      `${dupLines.length} duplicate lines in ${figures.ovsSeconds} s`,
    );
    c.eq(
      "OVS: one domain, running",
      [...(await domains(host.testUri, prefix)).entries()]
        .filter(([n]) => n === ovsDp!.name)
        .map(([, s]) => s),
      ["running"],
    );
    c.eq(
      "OVS: started once",
      ensured.filter((e) => e.vm === ovsDp!.name && e.action !== "adopted").length,
      1,
    );
    c.eq("OVS: leave policy never triggered", left.filter((v) => v === ovsDp!.name).length, 0);
    c.eq("two domains in all (one per dpid)", (await domains(host.testUri, prefix)).size, 2);
    c.eq("two records", (await mongo.records()).length, 2);
  } finally {
    for (const s of sims) await s.stop();
    for (const br of bridges) await shOk("ovs-vsctl", ["--if-exists", "del-br", br]);
    await daemon?.stop();
    if (host) await stopLibvirtHost(host);
    await mongo.drop();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: "duplicate-dpid",
    title: "two switches presenting the same datapath id",
    injected: `two simulated switches with one dpid (one after the other); two real OVS bridges with one datapath-id for ${ovsSeconds} s`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
