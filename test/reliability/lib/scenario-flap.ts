/**
 * Fault: one switch flapping, connecting and disconnecting 100 times in 10 s, each time completing the
 * OpenFlow handshake. Expected: one VM, started once (no start storm: rfboot's `ensured` actions other
 * than `adopted`, and libvirt's own `Started` events from `virsh event`); the leave policy (destroy after a
 * 5 s grace period) never fires while the switch keeps coming back, and fires exactly once after it stops.
 *
 * Two drivers: `sim`, an in-process OpenFlow 1.3 switch (exact pace), and `ovs`, a real Open vSwitch bridge
 * made to flap by setting and removing its controller target (OVS connects at once on `set-controller`;
 * its own reconnect backoff, 1 s at least, would allow only ~10 sessions in 10 s). Each `ovs-vsctl` waits
 * for ovs-vswitchd to apply the change (~0.1 s here; `--no-wait` lets vswitchd merge a remove+add into no
 * change at all), so a real bridge manages about 50 full sessions in 10 s on this machine.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MONGO_URI } from "../../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import type { Daemon } from "../../../src/provisioner/index.js";
import { CapturedLog, Db, configYaml, datapathLines, domains, parse, startDaemon, tag } from "./lab.js";
import { SimSwitch, simSpec } from "./switches.js";
import { Checks, freePort, sh, shOk, sleep, until, type ScenarioResult } from "./util.js";

/** flapping: `cycles` sessions in `windowMs`, leave policy destroy after `graceSeconds`. */
export async function flapping(
  driver: "sim" | "ovs" = "sim",
  cycles = 100,
  windowMs = 10_000,
  graceSeconds = 5,
): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-flap-"));
  const dbName = `rfbt_rel_flap_${T}`;
  const prefix = `rfbtf${T}`;
  const bridge = `rfbtf${T}`;
  const c = new Checks();
  const figures: Record<string, number | string> = { driver, cycles, windowMs, graceSeconds };
  const mongo = await Db.open(MONGO_URI, dbName);
  let host: LibvirtTestHost | undefined;
  let daemon: Daemon | undefined;
  let sw: SimSwitch | undefined;
  let watcher: ReturnType<typeof spawn> | undefined;
  try {
    host = await startLibvirtHost(`rfbt-rf${T}`);
    const port = await freePort();
    const dp = datapathLines(1, 0x7d0000n, prefix)[0]!;
    const cfg = parse(
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: MONGO_URI,
        database: dbName,
        hosts: [{ name: "h1", uri: host.testUri }],
        datapaths: [dp],
        policies: `{ leave: { action: destroy, graceSeconds: ${graceSeconds} } }`,
      }),
    );
    // libvirt's own view: Started events of this domain.
    let started = 0;
    watcher = spawn("virsh", ["-c", host.testUri, "event", "--loop", "--all"], {
      env: { ...process.env, LC_ALL: "C" },
      stdio: ["ignore", "pipe", "ignore"],
    });
    watcher.stdout?.setEncoding("utf8");
    watcher.stdout?.on("data", (d: string) => {
      for (const l of d.split("\n")) if (l.includes(`'${dp.name}'`) && /: Started/.test(l)) started++;
    });
    await sleep(300);
    const log = new CapturedLog();
    daemon = await startDaemon(cfg, log);
    let joins = 0;
    const ensured: string[] = [];
    const left: number[] = [];
    daemon.on("joined", () => joins++);
    daemon.on("ensured", (e) => ensured.push(e.action));
    daemon.on("left", () => left.push(performance.now()));

    const flapStart = performance.now();
    let lastDown = flapStart;
    if (driver === "sim") {
      sw = new SimSwitch(simSpec(dp.dpid, dp.ports), { port, reconnect: false });
      for (let i = 0; i < cycles; i++) {
        const before = joins;
        const p = await sw.session();
        await until("join seen", () => joins > before, 2000, 2);
        p.socket.destroy();
        await p.closed;
        lastDown = performance.now();
        const due = flapStart + ((i + 1) * windowMs) / cycles;
        if (due > performance.now()) await sleep(due - performance.now());
      }
    } else {
      await sh("ovs-vsctl", [
        "--may-exist",
        "add-br",
        bridge,
        "--",
        "set",
        "bridge",
        bridge,
        "datapath_type=netdev",
        "protocols=OpenFlow13",
        `other-config:datapath-id=${dp.dpid.toString(16).padStart(16, "0")}`,
        "fail_mode=secure",
      ]);
      for (let i = 0; i < cycles; i++) {
        const before = joins;
        await sh("ovs-vsctl", ["set-controller", bridge, `tcp:127.0.0.1:${port}`]);
        await until("join seen", () => joins > before, 3000, 2);
        await sh("ovs-vsctl", ["del-controller", bridge]);
        lastDown = performance.now();
        const due = flapStart + ((i + 1) * windowMs) / cycles;
        if (due > performance.now()) await sleep(due - performance.now());
      }
    }
    const flapEnd = performance.now();
    figures.flapMs = Math.round(flapEnd - flapStart);
    figures.joinsSeen = joins;
    const startsDuringFlap = ensured.filter((a) => a !== "adopted").length;
    const libvirtStartsDuringFlap = started;
    const leftDuringFlap = left.filter((t) => t <= flapEnd).length;
    const stateAtEnd = (await domains(host.testUri, prefix)).get(dp.name);
    // After the last disconnect the grace period runs out once.
    await until("leave policy applied", () => left.length > 0, (graceSeconds + 10) * 1000, 50);
    const leaveDelayMs = left[0]! - lastDown;
    await sleep(2000);
    figures.ensureActions = ensured.length;
    figures.starts = startsDuringFlap;
    figures.libvirtStarted = libvirtStartsDuringFlap;
    figures.leaveDelayMs = Math.round(leaveDelayMs);
    figures.coalescedEnsures = cycles - ensured.length;

    // The simulated switch keeps the pace exactly; a real bridge is bounded by ovs-vsctl (load dependent).
    if (driver === "sim") {
      c.ok(
        `${cycles} sessions within ~${windowMs / 1000} s`,
        flapEnd - flapStart <= windowMs * 1.5,
        `${figures.flapMs} ms`,
      );
    }
    figures.sessionsPerSecond = Math.round((cycles / (flapEnd - flapStart)) * 10_000) / 10;
    c.eq("every session detected (joins)", joins, cycles);
    c.eq("one domain", (await domains(host.testUri, prefix)).size, 1);
    c.eq("VM running when the flapping ends", stateAtEnd, "running");
    c.eq("started once by rfboot (ensured actions other than adopted)", startsDuringFlap, 1);
    c.eq("started once according to libvirt (Started events)", libvirtStartsDuringFlap, 1);
    c.eq("leave policy never fired during the flapping", leftDuringFlap, 0);
    c.eq("leave policy fired exactly once after", left.length, 1);
    c.ok(
      `it fired after the ${graceSeconds} s grace period (not before, not much later)`,
      leaveDelayMs >= graceSeconds * 1000 && leaveDelayMs < graceSeconds * 1000 + 3000,
      `${Math.round(leaveDelayMs)} ms after the last disconnect`,
    );
    c.eq("VM destroyed by the policy", (await domains(host.testUri, prefix)).get(dp.name), "shut off");
    c.eq("still started only once", started, 1);
    const rec = (await mongo.records())[0];
    c.eq(
      "record: stopped, switch disconnected",
      [rec?.state, (rec?.switch as { connected?: boolean })?.connected],
      ["stopped", false],
    );
  } finally {
    await sw?.stop();
    if (driver === "ovs") await shOk("ovs-vsctl", ["--if-exists", "del-br", bridge]);
    await daemon?.stop();
    watcher?.kill("SIGKILL");
    if (host) await stopLibvirtHost(host);
    await mongo.drop();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: `flapping-${driver}`,
    title: `a switch flapping (${driver === "sim" ? "simulated OpenFlow 1.3 switch" : "real Open vSwitch bridge"})`,
    injected: `${cycles} connect/handshake/disconnect cycles in ${windowMs / 1000} s; leave policy destroy, grace ${graceSeconds} s`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
