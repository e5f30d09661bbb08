/**
 * `rfboot run` as an operator runs it: a child process with a config file, Open vSwitch bridges joining it,
 * a private libvirtd (test driver) and FerretDB. Checked from the outside only: `rfboot status`, the
 * Prometheus endpoint, libvirt, the logs, signals (SIGHUP reloads, a bad reload is refused, SIGTERM stops
 * with 0) and exit codes (a bad config is 2 with the key path). Also `rfboot plan --offline` on rftest2.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MONGO_URI, REPO, describeWith } from "../helpers/env.js";
import { addSwitch as addOvsSwitch, freePort, sh, shOk, sleep, until } from "../helpers/real.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

const RFBOOT = join(REPO, "bin", "rfboot");
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_cr_${TAG}`;
const DPID_A = `c1${TAG}`;
const DPID_B = `c2${TAG}`;
const VM_A = `rfbtcr${TAG}a`;
const VM_B = `rfbtcr${TAG}b`;
const SW_A = `rfbtcra${TAG.slice(0, 4)}`;
const SW_B = `rfbtcrb${TAG.slice(0, 4)}`;
const hex16 = (d: string) => d.padStart(16, "0");

/** addSwitch: the test's switches speak OpenFlow 1.0 and 1.3. */
const addSwitch = (name: string, dpid: string, port: number) =>
  addOvsSwitch(name, dpid, port, "OpenFlow10,OpenFlow13");

/** metric reads one sample (`name{labels} value`) from Prometheus text; undefined when absent. */
function metric(text: string, name: string, labels = ""): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    const key = line.slice(0, sp);
    if (key === `${name}${labels}`) return Number(line.slice(sp + 1));
  }
  return undefined;
}

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

describeWith(["ovs", "libvirt", "mongo", "root"], "rfboot run as a child process", () => {
  let host: LibvirtTestHost;
  let dir: string;
  let cfgFile: string;
  let ofPort: number;
  let metricsPort: number;
  let child: ResultPromise | undefined;
  const logs: LogLine[] = [];
  let mongo: MongoClient;
  /** status row of B after the reload that added it (checked by the bug test below). */
  let rowB: Record<string, unknown> | undefined;

  const configYaml = (o: { withB?: boolean; memA?: number; bad?: boolean } = {}) => `
stateDir: ${dir}/state
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${ofPort} }, versions: ["1.0", "1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: h1, uri: "${host.testUri}", maxVms: 8, maxConcurrentStarts: 2 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0x${DPID_A}": { name: ${VM_A}, vmId: "02:c1:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:${TAG.slice(4, 6)}", dataPorts: 2, memoryMiB: ${o.bad ? 8 : (o.memA ?? 64)} }
${o.withB ? `  "0x${DPID_B}": { name: ${VM_B}, vmId: "02:c2:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:${TAG.slice(4, 6)}", dataPorts: 1 }` : ""}
policies: { unknownDatapath: { action: ignore }, leave: { action: keep } }
readiness: { consoleMarker: null }
`;

  const virsh = async (...args: string[]) => (await sh("virsh", ["-c", host.testUri, ...args])).trim();
  const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const waitLog = (what: string, pred: (l: LogLine) => boolean, timeoutMs = 20_000) =>
    until(what, async () => logs.find(pred), timeoutMs);
  const status = async () => {
    const r = await execa(RFBOOT, ["status", "--config", cfgFile, "--json"], { reject: false });
    if (r.exitCode !== 0) throw new Error(`status exited ${r.exitCode}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>[];
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-cr-"));
    cfgFile = join(dir, "rfboot.yaml");
    host = (await startLibvirtHosts(1, { prefix: "rfbt-cr" }))[0]!;
    ofPort = await freePort();
    metricsPort = await freePort();
    mongo = await MongoClient.connect(MONGO_URI);
    // Build dist/ once outside the timed tests (bin/rfboot transpiles when stale).
    await execa(RFBOOT, ["--help"], { reject: false });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await child?.catch(() => undefined);
    for (const b of [SW_A, SW_B]) await shOk("ovs-vsctl", ["--if-exists", "del-br", b]);
    if (host) await stopLibvirtHosts([host]);
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serves switches, status and metrics; SIGHUP adds and redefines VMs, refuses a bad config; SIGTERM exits 0", async () => {
    writeFileSync(cfgFile, configYaml());
    // Under a hard open-files limit of 8192 (prlimit execs rfboot, so signals still reach it).
    const run = ["run", "--config", cfgFile, "--metrics", `127.0.0.1:${metricsPort}`];
    child = execa("prlimit", ["--nofile=1024:8192", RFBOOT, ...run], {
      env: { RFBOOT_LOG_JSON: "1" },
      reject: false,
      stdin: "ignore",
    });
    let buf = "";
    child.stderr?.on("data", (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const l of lines) {
        try {
          logs.push(JSON.parse(l) as LogLine);
        } catch {
          logs.push({ level: 0, msg: l });
        }
      }
    });
    await waitLog("rfboot running", (l) => l.msg === "rfboot running");
    // The limit is said once at start, with the switch sessions it allows (listen mode: 1 descriptor each).
    expect(logs.filter((l) => String(l.msg).startsWith("open files:"))).toEqual([
      expect.objectContaining({ msg: "open files: soft 8192, hard 8192", sessions: 8192 - 128 }),
    ]);

    // One switch joins: its VM is defined and started on the host; status shows it.
    await addSwitch(SW_A, DPID_A, ofPort);
    const rowA = await until("status: A connected and running", async () => {
      const r = (await status()).find((x) => x.dpid === hex16(DPID_A));
      return r?.switch === "connected" && r.state === "running" ? r : undefined;
    });
    expect(rowA).toMatchObject({ vm: VM_A, host: "h1", domain: "running" });
    expect(await virsh("domstate", VM_A)).toBe("running");
    const table = await execa(RFBOOT, ["status", "--config", cfgFile]);
    const header = table.stdout.split("\n")[0]!;
    expect(header).toMatch(/^DPID\s+SWITCH\s+VM\s+HOST\s+STATE\s+DOMAIN/);
    const lineA = table.stdout.split("\n").find((l) => l.startsWith(hex16(DPID_A)));
    expect(lineA?.split(/\s+/).slice(0, 6)).toEqual([
      hex16(DPID_A),
      "connected",
      VM_A,
      "h1",
      "running",
      "running",
    ]);

    let m = await metrics();
    expect(metric(m, "rfboot_joins_total")).toBe(1);
    // Its domain was defined ahead of the join (policies.defineAhead): the join only started it.
    expect(metric(m, "rfboot_boots_total", '{action="started",host="h1"}')).toBe(1);
    expect(metric(m, "rfboot_boot_latency_seconds_count")).toBe(1);
    expect(metric(m, "rfboot_boot_latency_seconds_bucket", '{le="+Inf"}')).toBe(1);
    expect(metric(m, "rfboot_reaction_seconds_count")).toBe(1);
    expect(metric(m, "rfboot_datapaths_up")).toBe(1);
    expect(metric(m, "rfboot_open_files_limit")).toBe(8192);
    expect(metric(m, "rfboot_open_files")).toBeGreaterThan(10);

    // A second switch, unknown to the config (policy ignore): no VM.
    await addSwitch(SW_B, DPID_B, ofPort);
    await waitLog("B ignored", (l) => l.dpid === hex16(DPID_B) && /ignored/.test(l.msg));
    expect((await virsh("list", "--all", "--name")).split("\n")).not.toContain(VM_B);
    const idA = await virsh("domid", VM_A);

    // SIGHUP after adding B and changing A's memory: B boots at once (its switch is already connected);
    // A is redefined with the new memory while its running domain keeps running.
    writeFileSync(cfgFile, configYaml({ withB: true, memA: 96 }));
    child.kill("SIGHUP");
    const reload = await waitLog("reload", (l) => l.msg === "configuration reloaded");
    expect(reload).toMatchObject({ added: [hex16(DPID_B)], changed: [hex16(DPID_A)], removed: [] });
    await until("B running", async () => ((await virsh("domstate", VM_B)) === "running" ? true : undefined));
    await until("A redefined", async () =>
      (await virsh("dumpxml", "--inactive", VM_A)).includes("<memory unit='KiB'>98304</memory>")
        ? true
        : undefined,
    );
    expect(await virsh("domstate", VM_A)).toBe("running");
    expect(await virsh("domid", VM_A)).toBe(idA); // the same running domain, not restarted
    expect(await virsh("dumpxml", VM_A)).toContain("<memory unit='KiB'>65536</memory>");
    rowB = await until("status: B running", async () => {
      const r = (await status()).find((x) => x.dpid === hex16(DPID_B));
      return r?.state === "running" ? r : undefined;
    });
    expect(rowB).toMatchObject({ vm: VM_B, host: "h1", domain: "running" });
    m = await metrics();
    expect(metric(m, "rfboot_joins_total")).toBe(2);
    // B's switch was connected when B was added: its join's ensure defined it.
    expect(metric(m, "rfboot_boots_total", '{action="defined+started",host="h1"}')).toBe(1);
    expect(metric(m, "rfboot_boots_total", '{action="started",host="h1"}')).toBe(1);
    expect(metric(m, "rfboot_boots_total", '{action="adopted",host="h1"}')).toBe(1);
    expect(metric(m, "rfboot_boot_latency_seconds_count")).toBe(3);

    // An invalid config on SIGHUP is refused with the key path; the daemon keeps the old one and goes on.
    writeFileSync(cfgFile, configYaml({ withB: true, bad: true }));
    child.kill("SIGHUP");
    const refused = await waitLog("reload refused", (l) => /reload refused/.test(l.msg));
    expect(String(refused.err)).toContain(`datapaths."0x${DPID_A}".memoryMiB`);
    expect(logs.filter((l) => l.msg === "configuration reloaded")).toHaveLength(1);
    await sleep(300);
    expect(child.exitCode).toBeNull();
    expect(metric(await metrics(), "rfboot_joins_total")).toBe(2);
    // Still serving switches: A leaves and comes back (policy keep), a join is counted and its VM adopted.
    await sh("ovs-vsctl", ["del-br", SW_A]);
    await until("A left", async () =>
      metric(await metrics(), "rfboot_datapaths_up") === 1 ? true : undefined,
    );
    await addSwitch(SW_A, DPID_A, ofPort);
    await until("A back", async () =>
      metric(await metrics(), "rfboot_boots_total", '{action="adopted",host="h1"}') === 2 ? true : undefined,
    );

    // SIGTERM: a clean, quick exit 0; the VMs keep running.
    const t0 = Date.now();
    child.kill("SIGTERM");
    const r = await child;
    expect(r.exitCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(logs.some((l) => l.msg === "stopping" && l.signal === "SIGTERM")).toBe(true);
    expect(await virsh("domstate", VM_A)).toBe("running");
    // A stopped rfboot no longer serves the switches: status does not claim they are connected to it, and the
    // VM (kept running) is still shown as such.
    writeFileSync(cfgFile, configYaml({ withB: true, memA: 96 }));
    const after = (await status()).find((x) => x.dpid === hex16(DPID_A));
    expect(after).toMatchObject({ switch: "disconnected", state: "running", domain: "running" });
    expect(after?.leftAt).toBeDefined();
  }, 120_000);

  // A datapath added by SIGHUP whose switch is already connected gets its join recorded too (reload()).
  it("a datapath added by SIGHUP while its switch is connected shows that switch as connected", () => {
    expect(rowB).toMatchObject({ switch: "connected" });
    expect(rowB?.joinedAt).toBeDefined();
  });

  it("a bad config: exit 2 and one line naming the key path", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, configYaml({ bad: true }));
    const r = await execa(RFBOOT, ["run", "--config", bad], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^rfboot: datapaths\\."0x${DPID_A}"\\.memoryMiB: .*16.*got 8`));
    expect(lines[0]).toContain("bad.yaml line ");
  });

  it("plan --offline on rftest2 lists the 4 VMs and their 14 rfconfig rows", async () => {
    const r = await execa(RFBOOT, [
      "plan",
      "--config",
      join(REPO, "config", "rftest2.yaml"),
      "--offline",
      "--json",
    ]);
    const plan = JSON.parse(r.stdout) as { rows: { dpid: string; vm: string; rfconfigRows: number }[] };
    expect(plan.rows.map((x) => [x.dpid, x.vm, x.rfconfigRows])).toEqual([
      ["0000000000000005", "rfvmA", 4],
      ["0000000000000006", "rfvmB", 3],
      ["0000000000000007", "rfvmC", 3],
      ["0000000000000008", "rfvmD", 4],
    ]);
    expect(plan.rows.reduce((s, x) => s + x.rfconfigRows, 0)).toBe(14);
  });
});
