/**
 * The provisioner end to end with real peers: Open vSwitch bridges (userspace datapath) join a running
 * Daemon, which places, defines and starts VMs on real libvirtd hosts (two private libvirtd instances with
 * the test driver for volume, and the machine's qemu:///system for a guest that really boots) and records
 * everything in a real MongoDB-wire server (FerretDB).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig, type RfbootConfig } from "../../src/provisioner/index.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
import { addSwitch, freePort, sh, shOk, sleep, until } from "../helpers/real.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_daemon_${TAG}`;
describeWith(["ovs", "libvirt", "mongo", "root"], "daemon with real OVS, libvirtd and FerretDB", () => {
  let hosts: LibvirtTestHost[] = [];
  let mongo: MongoClient;
  const bridges: string[] = [];
  const daemons: Daemon[] = [];
  let stateDir: string;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "rfbt-daemon-"));
    hosts = await startLibvirtHosts(2, { prefix: "rfbt-dh" });
    mongo = await MongoClient.connect(MONGO_URI);
  });

  afterAll(async () => {
    for (const d of daemons) await d.stop().catch(() => undefined);
    for (const b of bridges) await shOk("ovs-vsctl", ["--if-exists", "del-br", b]);
    await stopLibvirtHosts(hosts);
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  function config(port: number, extra = ""): RfbootConfig {
    const yaml = `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} }, versions: ["1.0", "1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: h1, uri: "${hosts[0]!.testUri}", maxVms: 3 }
  - { name: h2, uri: "${hosts[1]!.testUri}", maxVms: 3 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
${[1, 2, 3, 4, 5, 6]
  .map(
    (i) =>
      `  "0x${TAG}0${i}": { name: rfbtd${TAG}${i}, vmId: "02:d${i}:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:${TAG.slice(4, 6)}:0${i}", dataPorts: ${i % 2 ? 2 : 3} }`,
  )
  .join("\n")}
policies: { leave: { action: destroy, graceSeconds: 1 } }
readiness: { consoleMarker: null }
${extra}`;
    return parseConfig(yaml, { format: "yaml", source: "daemon.test" });
  }

  async function startDaemon(cfg: RfbootConfig, instanceId: string): Promise<Daemon> {
    const d = new Daemon({
      config: cfg,
      logger: silentLogger,
      instanceId,
      createController: controllerFromConfig,
      leaseTtlMs: 3000,
      retryInitialMs: 200,
    });
    daemons.push(d);
    await d.start();
    return d;
  }

  async function domainsOn(h: LibvirtTestHost): Promise<Map<string, string>> {
    const out = await sh("virsh", ["-c", h.testUri, "list", "--all", "--name"]);
    const names = out.split("\n").filter((n) => n.startsWith(`rfbtd${TAG}`));
    const m = new Map<string, string>();
    for (const n of names) m.set(n, (await sh("virsh", ["-c", h.testUri, "domstate", n])).trim());
    return m;
  }

  const records = () => mongo.db(DB).collection("rfboot_vms").find().toArray();

  /** freshStart empties the database and both hosts of this file's domains. */
  async function freshStart(): Promise<void> {
    await mongo.db(DB).dropDatabase();
    for (const h of hosts) {
      for (const n of (await domainsOn(h)).keys()) {
        await shOk("virsh", ["-c", h.testUri, "destroy", n]);
        await shOk("virsh", ["-c", h.testUri, "undefine", n]);
      }
    }
  }

  /** watch records every record patch and every `virsh define` the daemon makes from now on. */
  function watch(d: Daemon) {
    const patches: { dpidHex: string; state?: string }[] = [];
    const orig = d.store.patchRecord.bind(d.store);
    vi.spyOn(d.store, "patchRecord").mockImplementation((dpidHex, patch) => {
      patches.push({ dpidHex, ...(patch.state ? { state: patch.state } : {}) });
      return orig(dpidHex, patch);
    });
    const defines = ["h1", "h2"].map((h) => vi.spyOn(d.hosts.manager(h), "define"));
    const defined = () => defines.flatMap((s) => s.mock.calls.map((c) => c[0]));
    return { patches, defined };
  }
  const rows = () =>
    mongo
      .db(DB)
      .collection("rfconfig")
      .find({}, { projection: { _id: 0 } })
      .toArray();

  it("boots one VM per joining switch, places by capacity, writes RouteFlow's rows; leave, rejoin and restart add nothing", async () => {
    const port = await freePort();
    const cfg = config(port);
    let daemon = await startDaemon(cfg, `a-${TAG}`);
    const ensured: string[] = [];
    daemon.on("ensured", (e) => ensured.push(`${e.vm}:${e.action}`));
    for (let i = 1; i <= 6; i++) {
      const br = `rfbd${TAG}${i}`;
      bridges.push(br);
      await addSwitch(br, `${TAG}0${i}`, [port], i % 2 ? "OpenFlow13" : "OpenFlow10");
    }
    const recs = await until("6 records running", async () => {
      const r = await records();
      return r.length === 6 && r.every((x) => x.state === "running") ? r : undefined;
    });
    // Placement by capacity: 3 + 3 on two hosts of maxVms 3; each VM defined exactly once.
    const on1 = await domainsOn(hosts[0]!);
    const on2 = await domainsOn(hosts[1]!);
    expect(on1.size + on2.size).toBe(6);
    expect(on1.size).toBe(3);
    expect([...on1.values(), ...on2.values()].every((s) => s === "running")).toBe(true);
    for (const r of recs) {
      expect(r.host === "h1" ? on1.has(r.vmName) : on2.has(r.vmName)).toBe(true);
      expect(r.dpid).toBe(BigInt(`0x${r.dpidHex}`).toString(10));
      expect(r.switch.connected).toBe(true);
      expect(r.joinedAt).toBeInstanceOf(Date);
      expect(r.definedAt).toBeInstanceOf(Date);
      expect(r.startedAt).toBeInstanceOf(Date);
      // The moments define and start really completed: joined, then defined, then (later) started.
      expect(r.joinedAt.getTime()).toBeLessThanOrEqual(r.definedAt.getTime());
      expect(r.definedAt.getTime()).toBeLessThan(r.startedAt.getTime());
      // The right XML: the stable uuid and the RouteFlow MACs are in the defined domain.
      const h = r.host === "h1" ? hosts[0]! : hosts[1]!;
      const xml = await sh("virsh", ["-c", h.testUri, "dumpxml", r.vmName]);
      expect(xml).toContain(`<uuid>${r.uuid}</uuid>`);
      expect(xml).toContain(`<mac address='${r.vmMac}'/>`);
    }
    // RouteFlow's rows: decimal strings, one per data port, nothing else.
    const expected = cfg.datapaths.flatMap((d, i) =>
      Array.from({ length: (i + 1) % 2 ? 2 : 3 }, (_, k) => ({
        vm_id: BigInt(d.vmId as bigint).toString(10),
        vm_port: String(k + 1),
        ct_id: "0",
        dp_id: d.dpid.toString(10),
        dp_port: String(k + 1),
      })),
    );
    const sortRows = (xs: Record<string, unknown>[]) =>
      xs.map((x) => JSON.stringify(x, Object.keys(x).sort())).sort();
    expect(sortRows(await rows())).toEqual(sortRows(expected));

    // Leave: the destroy policy acts after the 1 s grace period.
    await shOk("ovs-vsctl", ["del-br", `rfbd${TAG}1`]);
    const leftName = `rfbtd${TAG}1`;
    const leftRec = recs.find((r) => r.vmName === leftName)!;
    const leftHost = leftRec.host === "h1" ? hosts[0]! : hosts[1]!;
    await until(
      "destroyed after grace",
      async () => (await domainsOn(leftHost)).get(leftName) === "shut off",
    );
    // Rejoin: the same VM on the same host comes back; no duplicate domain, no duplicate rows. Its config
    // is unchanged, so the shut-off domain is started as it is defined: no second `virsh define`.
    const w1 = watch(daemon);
    await addSwitch(`rfbd${TAG}1`, `${TAG}01`, [port]);
    await until("rejoined VM running", async () => (await domainsOn(leftHost)).get(leftName) === "running");
    const rejoined = await until("rejoined record running", async () => {
      const r = (await records()).find((x) => x.vmName === leftName);
      return r?.state === "running" && r.startedAt > leftRec.startedAt ? r : undefined;
    });
    expect(w1.defined()).toEqual([]);
    expect(rejoined.definedAt).toEqual(leftRec.definedAt);
    expect(rejoined.configFingerprint).toBe(leftRec.configFingerprint);
    // It really started again: `starting` was recorded for it.
    expect(w1.patches.filter((p) => p.dpidHex === leftRec.dpidHex && p.state === "starting")).toHaveLength(1);
    expect((await domainsOn(hosts[0]!)).size + (await domainsOn(hosts[1]!)).size).toBe(6);
    expect((await rows()).length).toBe(expected.length);

    // Restart: a new daemon reconciles and adopts the running VMs; the switches reconnect; still 6 and 15.
    await daemon.stop();
    const beforeRestart = await records();
    daemon = await startDaemon(cfg, `a2-${TAG}`);
    const w2 = watch(daemon);
    const adopted: string[] = [];
    daemon.on("ensured", (e) => adopted.push(e.action));
    await until("switches back after restart", async () => (adopted.length >= 6 ? true : undefined), 40_000);
    expect(adopted.every((a) => a === "adopted")).toBe(true);
    // Adopted VMs were never `starting` (they ran all along), nor redefined (same VM config), and keep the
    // moments they were really defined and started.
    expect(w2.patches.length).toBeGreaterThanOrEqual(6);
    expect(w2.patches.filter((p) => p.state === "starting")).toEqual([]);
    expect(w2.defined()).toEqual([]);
    await daemon.idle();
    const afterRestart = await records();
    for (const r of beforeRestart) {
      const a = afterRestart.find((x) => x.dpidHex === r.dpidHex)!;
      expect(a.definedAt).toEqual(r.definedAt);
      expect(a.startedAt).toEqual(r.startedAt);
    }
    expect((await domainsOn(hosts[0]!)).size + (await domainsOn(hosts[1]!)).size).toBe(6);
    expect((await rows()).length).toBe(expected.length);
    expect((await records()).length).toBe(6);
    await daemon.stop();
    expect(ensured.length).toBeGreaterThanOrEqual(7);
  }, 150_000);

  it("a guest that never shows it booted gets a readiness-timeout error in its record", async () => {
    await mongo.db(DB).dropDatabase();
    const port = await freePort();
    const d = await startDaemon(
      parseConfig(
        `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} } }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts: [ { name: h1, uri: "${hosts[0]!.testUri}", maxVms: 8 } ]
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0x${TAG}07": { name: rfbtd${TAG}7, vmId: "02:d7:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:${TAG.slice(4, 6)}:07", dataPorts: 1 }
readiness: { consoleMarker: NEVER-PRINTED, timeoutSeconds: 1 }
`,
        { format: "yaml", source: "daemon.test readiness" },
      ),
      `r-${TAG}`,
    );
    bridges.push(`rfbd${TAG}7`);
    await addSwitch(`rfbd${TAG}7`, `${TAG}07`, [port]);
    const rec = await until("a readiness-timeout error", async () => {
      const r = (await records()).find((x) => x.vmName === `rfbtd${TAG}7`);
      return r?.lastError?.kind === "readiness-timeout" ? r : undefined;
    });
    expect(rec.state).toBe("running");
    expect(rec.lastError.message).toContain("NEVER-PRINTED");
    await d.stop();
    await shOk("virsh", ["-c", hosts[0]!.testUri, "destroy", `rfbtd${TAG}7`]);
    await shOk("virsh", ["-c", hosts[0]!.testUri, "undefine", `rfbtd${TAG}7`]);
  }, 60_000);

  it("two instances on one database boot each VM exactly once (leases)", async () => {
    await freshStart();
    const [p1, p2] = [await freePort(), await freePort()];
    const d1 = await startDaemon(config(p1), `i1-${TAG}`);
    const d2 = await startDaemon(config(p2), `i2-${TAG}`);
    const started: string[] = [];
    for (const d of [d1, d2])
      d.on("ensured", (e) => {
        if (e.action !== "leased-elsewhere") started.push(`${e.vm}:${e.action}`);
      });
    for (let i = 1; i <= 6; i++) await addSwitch(`rfbd${TAG}${i}`, `${TAG}0${i}`, [p1, p2]);
    await until("6 running once", async () => {
      const r = await records();
      return r.length === 6 && r.every((x) => x.state === "running") ? r : undefined;
    });
    await sleep(2000);
    const doms = [...(await domainsOn(hosts[0]!)).keys(), ...(await domainsOn(hosts[1]!)).keys()];
    expect(doms.sort()).toEqual([1, 2, 3, 4, 5, 6].map((i) => `rfbtd${TAG}${i}`).sort());
    // Each VM was started by exactly one instance.
    const startedVms = started.filter((s) => s.endsWith("defined+started")).map((s) => s.split(":")[0]);
    expect(startedVms.sort()).toEqual([...new Set(startedVms)].sort());
    expect(startedVms.length).toBe(6);
    await d1.stop();
    await d2.stop();
  }, 120_000);

  it("a lease one instance holds ahead goes to the instance its switch joins, which asks for it (policies.leaseAhead)", async () => {
    await freshStart();
    const [p1, p2] = [await freePort(), await freePort()];
    const d1 = await startDaemon(config(p1), `ahead1-${TAG}`);
    await d1.idle();
    const hex = (i: number) => BigInt(`0x${TAG}0${i}`).toString(16).padStart(16, "0");
    const all = [1, 2, 3, 4, 5, 6].map(hex).sort();
    const leased = (d: Daemon) =>
      d
        .knownDatapaths()
        .filter((x) => x.leased)
        .map((x) => x.dpidHex)
        .sort();
    // The first instance up holds every configured VM's lease, no switch connected.
    expect(leased(d1)).toEqual(all);
    const d2 = await startDaemon(config(p2), `ahead2-${TAG}`);
    await d2.idle();
    expect(leased(d2)).toEqual([]);
    const byFirst: string[] = [];
    d1.on("ensured", (e) => byFirst.push(`${e.vm}:${e.action}`));
    // A switch that connects to the second instance only: refused, it asks; the first gives the lease up at
    // its next renewal (a third of the 3 s ttl), and the second's retry boots the VM.
    const br = `rfbd${TAG}1`;
    bridges.push(br);
    await addSwitch(br, `${TAG}01`, [p2]);
    const rec = await until("VM 1 running for the second instance", async () => {
      const r = (await records()).find((x) => x.vmName === `rfbtd${TAG}1`);
      return r?.state === "running" && r.owner === `ahead2-${TAG}` ? r : undefined;
    });
    expect(rec.host).toMatch(/^h[12]$/);
    expect(byFirst).toEqual([]);
    expect((await d1.store.lease(hex(1)))?.owner).toBe(`ahead2-${TAG}`);
    expect(leased(d2)).toEqual([hex(1)]);
    // The first keeps the others, and does not take this one back while the switch is there.
    await sleep(2500);
    expect(leased(d1)).toEqual(all.filter((d) => d !== hex(1)));
    expect((await d1.store.lease(hex(1)))?.owner).toBe(`ahead2-${TAG}`);
    // The want was withdrawn once the lease was won.
    const wants = await mongo.db(DB).collection("rfboot_leases").find({ want: true }).toArray();
    expect(wants).toEqual([]);
    await shOk("ovs-vsctl", ["--if-exists", "del-br", br]);
    await d1.stop();
    await d2.stop();
  }, 120_000);
});
