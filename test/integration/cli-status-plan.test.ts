/**
 * `rfboot status` and `rfboot plan` against what is really there: records in FerretDB written through the
 * store, a domain running on a private libvirtd (test driver) for status' live figures. Status: one row per
 * configured datapath (never joined ones too) plus records of datapaths no longer configured; plan: the action
 * follows each record's state, placement stays where the record says, capacity limits show as "cannot place".
 * A prewarmed record (its image saved on h2): status shows its state with the image's age, host and size, and
 * the images per host against the disk budget; with prewarm on, plan shows the prewarm planner's order, the
 * VMs it leaves out and why, and each host's budgets.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { silentLogger } from "../../src/common/log.js";
import { MongoStore, listConfiguredVms, loadConfig } from "../../src/provisioner/index.js";
import { prewarmFingerprint } from "../../src/provisioner/prewarm-plan.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_sp_${TAG}`;
const hex16 = (n: number) => `${TAG}${n.toString(16).padStart(2, "0")}`.padStart(16, "0");
const vmName = (c: string) => `rfbtsp${TAG}${c}`;

describeWith(["libvirt", "mongo", "root"], "rfboot status and plan with records and a live host", () => {
  let hosts: LibvirtTestHost[] = [];
  let dir: string;
  let cfg: string;
  let store: MongoStore;
  let out = "";
  let err = "";

  const yaml = (mongoUri = MONGO_URI, prewarm = "") => `
stateDir: ${dir}/state
mongo: { uri: "${mongoUri}", database: ${DB} }
hosts:
  - { name: h1, uri: "${hosts[0]!.testUri}", maxVms: 3 }
  - { name: h2, uri: "${hosts[1]!.testUri}", maxVms: 3 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0x${hex16(1)}": { name: ${vmName("a")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:01", dataPorts: 2, host: h1 }
  "0x${hex16(2)}": { name: ${vmName("b")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:02", dataPorts: 1 }
  "0x${hex16(3)}": { name: ${vmName("c")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:03", dataPorts: 3 }
  "0x${hex16(4)}": { name: ${vmName("d")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:04", dataPorts: 1, host: h1 }
  "0x${hex16(5)}": { name: ${vmName("e")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:05", dataPorts: 1, host: h1 }
  "0x${hex16(6)}": { name: ${vmName("f")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:06", dataPorts: 1, host: h1 }
  "0x${hex16(7)}": { name: ${vmName("g")}, vmId: "02:5a:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:07", dataPorts: 1, host: h2 }
${prewarm}`;

  async function cli(...argv: string[]): Promise<number> {
    out = "";
    err = "";
    return main(argv);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-sp-"));
    hosts = await startLibvirtHosts(2, { prefix: "rfbt-sp" });
    cfg = join(dir, "rfboot.yaml");
    writeFileSync(cfg, yaml());
    // A running domain for VM a on h1 (status' live column); nothing on h2.
    const xml = join(dir, "a.xml");
    writeFileSync(
      xml,
      `<domain type='test'><name>${vmName("a")}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
        `<os><type arch='x86_64'>hvm</type></os></domain>`,
    );
    await execa("virsh", ["-c", hosts[0]!.testUri, "define", xml], { env: { LC_ALL: "C" } });
    await execa("virsh", ["-c", hosts[0]!.testUri, "start", vmName("a")], { env: { LC_ALL: "C" } });
    store = await MongoStore.open({ uri: MONGO_URI, database: DB, prefix: "rfboot_", logger: silentLogger });
    const ago = (s: number) => new Date(Date.now() - s * 1000);
    await store.patchRecord(hex16(1), {
      vmName: vmName("a"),
      host: "h1",
      state: "running",
      switch: { peer: "127.0.0.1:40001", version: 4, connected: true },
      joinedAt: ago(30),
      startedAt: ago(29),
    });
    await store.patchRecord(hex16(2), {
      vmName: vmName("b"),
      host: "h2",
      state: "suspended",
      switch: { peer: "127.0.0.1:40002", version: 1, connected: false },
      joinedAt: ago(7200 * 3),
      leftAt: ago(600),
    });
    await store.patchRecord(hex16(4), {
      vmName: vmName("d"),
      host: "h1",
      state: "failed",
      lastError: { kind: "other", message: "virsh start failed: boom", at: ago(5) },
    });
    // g was prewarmed on h2 12 minutes ago: its switch never joined.
    await store.patchRecord(hex16(7), {
      vmName: vmName("g"),
      host: "h2",
      state: "prewarmed",
      prewarm: { at: ago(720), host: "h2", fingerprint: "f0", imageMiB: 64 },
    });
    // A datapath that is no longer in the config still has its record.
    await store.patchRecord(hex16(0x99), { vmName: vmName("z"), host: "h2", state: "stopped" });
  });

  afterAll(async () => {
    await store?.close().catch(() => undefined);
    const { MongoClient } = await import("mongodb");
    const c = await MongoClient.connect(MONGO_URI);
    await c.db(DB).dropDatabase();
    await c.close();
    await stopLibvirtHosts(hosts);
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    vi.spyOn(process.stdout, "write").mockImplementation(
      (s: string | Uint8Array) => ((out += String(s)), true),
    );
    vi.spyOn(process.stderr, "write").mockImplementation(
      (s: string | Uint8Array) => ((err += String(s)), true),
    );
  });
  afterEach(() => vi.restoreAllMocks());

  it("status --json: configured datapaths in order, then unconfigured records; live figures of running domains", async () => {
    expect(await cli("status", "--config", cfg, "--json")).toBe(0);
    const rows = JSON.parse(out) as Record<string, unknown>[];
    expect(rows.map((r) => [r.dpid, r.vm, r.switch, r.state])).toEqual([
      [hex16(1), vmName("a"), "connected", "running"],
      [hex16(2), vmName("b"), "disconnected", "suspended"],
      [hex16(3), vmName("c"), "never", "not joined"],
      [hex16(4), vmName("d"), "never", "failed"],
      [hex16(5), vmName("e"), "never", "not joined"],
      [hex16(6), vmName("f"), "never", "not joined"],
      [hex16(7), vmName("g"), "never", "prewarmed"],
      [hex16(0x99), vmName("z"), "never", "stopped"],
    ]);
    expect(rows[6]).toMatchObject({
      host: "h2",
      prewarm: { at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), host: "h2", imageMiB: 64 },
    });
    expect(Date.now() - Date.parse(String((rows[6]!.prewarm as { at: string }).at))).toBeGreaterThan(700_000);
    // (The test driver's domstats reports the state only: no CPU or memory figures to show here.)
    expect(rows[0]).toMatchObject({ peer: "127.0.0.1:40001", host: "h1", domain: "running" });
    // b is recorded on h2, where no such domain exists: no live figures are invented.
    expect(rows[1]).not.toHaveProperty("domain");
    expect(rows[3]).toMatchObject({ lastError: "other: virsh start failed: boom" });
  });

  it("status table: one line per datapath with ages; --no-live leaves libvirt alone", async () => {
    expect(await cli("status", "--config", cfg)).toBe(0);
    const [datapaths, prewarmPart, hostPart] = out.trimEnd().split("\n\n");
    // Prewarm is off, but g's image is still on h2's disk: said between the datapaths and the hosts.
    expect(prewarmPart).toBe(
      "prewarm off (images left on disk): h2 1 VM prewarmed, 64 MiB of 8192 MiB disk budget",
    );
    const lines = datapaths!.split("\n");
    // Then one line per host with what it reports (the test driver: its nodeinfo, no memory report); the VM
    // count is every running domain there, the test driver's own `test` domain too.
    expect(hostPart!.split("\n").slice(2)).toEqual([
      expect.stringMatching(/^h1\s+yes\s+2\/3\s+16 CPUs, 3072 MiB, no memory report$/),
      expect.stringMatching(/^h2\s+yes\s+1\/3\s+16 CPUs, 3072 MiB, no memory report$/),
    ]);
    expect(lines[0]).toMatch(
      /^DPID\s+SWITCH\s+VM\s+HOST\s+STATE\s+DOMAIN\s+JOINED\s+STARTED\s+READY\s+CPU\s+MEM\s+LAST ERROR$/,
    );
    expect(lines[1]).toMatch(/^-+(\s+-+)+$/);
    expect(lines).toHaveLength(2 + 8);
    const cells = (i: number) => lines[i]!.split(/\s{2,}/);
    expect(cells(2).slice(0, 6)).toEqual([hex16(1), "connected", vmName("a"), "h1", "running", "running"]);
    expect(cells(2)[6]).toMatch(/^3\ds$/); // joined 30 s ago
    expect(cells(3).slice(0, 7)).toEqual([
      hex16(2),
      "disconnected",
      vmName("b"),
      "h2",
      "suspended",
      "-",
      "6h",
    ]);
    expect(lines[5]).toMatch(/other: virsh start failed: boom$/);
    // The prewarmed VM: its state with the image's age, host and size.
    expect(cells(8).slice(0, 6)).toEqual([
      hex16(7),
      "never",
      vmName("g"),
      "h2",
      "prewarmed 12m ago on h2, 64 MiB",
      "-",
    ]);
    expect(await cli("status", "--config", cfg, "--json", "--no-live")).toBe(0);
    const rows = JSON.parse(out) as Record<string, unknown>[];
    expect(rows.some((r) => "domain" in r || "cpuSeconds" in r)).toBe(false);
  });

  it("status with MongoDB unreachable: exit 1 and a message naming the database", async () => {
    const bad = join(dir, "bad-mongo.yaml");
    writeFileSync(bad, yaml("mongodb://127.0.0.1:1"));
    expect(await cli("status", "--config", bad, "--no-live")).toBe(1);
    expect(err).toMatch(new RegExp(`^rfboot: cannot read records from MongoDB at ${DB}: `));
    expect(out).toBe("");
  }, 20_000);

  it("plan: actions follow the records, placement stays where the records say, capacity limits show", async () => {
    expect(await cli("plan", "--config", cfg, "--json")).toBe(0);
    const { rows, note } = JSON.parse(out) as { rows: Record<string, unknown>[]; note?: string };
    expect(note).toBeUndefined();
    // Every configured VM is planned to run once its switch joins, so each decision uses capacity for the next:
    // a and b stay where their records put them; c takes the less loaded host (a tie, broken by name); d
    // stays on h1; h1 (maxVms 3) is then full for e and f, which are pinned to it.
    expect(rows.map((r) => [r.vm, r.host ?? "-", r.placement, r.action])).toEqual([
      [vmName("a"), "h1", "existing", "adopt (already running)"],
      [vmName("b"), "h2", "existing", "resume from managedsave on join"],
      [vmName("c"), "h1", "least-loaded", "define+start on join"],
      [vmName("d"), "h1", "existing", "start on join"],
      [vmName("e"), "-", "-", "cannot place"],
      [vmName("f"), "-", "-", "cannot place"],
      [vmName("g"), "h2", "existing", "restore the prewarm image on join"],
    ]);
    expect(String(rows[4]!.error)).toMatch(/pinned to host h1, which is full \(3\/3 VMs\)/);
    expect(rows.map((r) => r.rfconfigRows)).toEqual([2, 1, 3, 1, 1, 1, 1]);
    // Prewarm is off: no prewarm plan.
    expect(JSON.parse(out)).not.toHaveProperty("prewarm");
    expect(await cli("plan", "--config", cfg, "--json", "--offline")).toBe(0);
    const offline = JSON.parse(out) as { rows: Record<string, unknown>[] };
    // Offline: the config alone, no records: every VM is new, placed in config order.
    expect(offline.rows.map((r) => [r.vm, r.host ?? "-", r.action])).toEqual([
      [vmName("a"), "h1", "define+start on join"],
      [vmName("b"), "h2", "define+start on join"],
      [vmName("c"), "h1", "define+start on join"],
      [vmName("d"), "h1", "define+start on join"],
      [vmName("e"), "-", "cannot place"],
      [vmName("f"), "-", "cannot place"],
      [vmName("g"), "h2", "define+start on join"],
    ]);
  });

  it("prewarm on: plan shows the order, the VMs left out and why, the budgets; status sums the images", async () => {
    const on = join(dir, "prewarm.yaml");
    writeFileSync(on, yaml(MONGO_URI, "policies: { prewarm: { enabled: true, diskMiB: 128 } }\n"));
    // g's image is of g's current config now (the planner keeps it); before, its fingerprint was another's.
    const g = listConfiguredVms(await loadConfig(on)).find((v) => v.name === vmName("g"))!;
    const at = new Date(Date.now() - 720_000);
    await store.patchRecord(hex16(7), {
      prewarm: { at, host: "h2", fingerprint: prewarmFingerprint(g), imageMiB: 64 },
    });
    expect(await cli("plan", "--config", on, "--json", "--no-libvirt")).toBe(0);
    const { prewarm } = JSON.parse(out) as {
      prewarm: {
        order: { vm: string; host: string; memoryMiB: number; image: string }[];
        leftOut: { vm: string; reason: string }[];
        perHost: Record<string, { images: number; imagesMiB: number; diskBudgetMiB: number }>;
      };
    };
    // a's switch is connected and b was suspended by the leave policy: neither needs an image. g's fresh image
    // stays on h2; c goes where a join would put it (h2, the less loaded), d stays where it is defined, e is
    // pinned to h1; f, pinned to h1 too, finds it full (a, d and e: maxVms 3).
    expect(prewarm.order.map((o) => [o.vm, o.host, o.memoryMiB, o.image])).toEqual([
      [vmName("c"), "h2", 64, "none"],
      [vmName("d"), "h1", 64, "none"],
      [vmName("e"), "h1", 64, "none"],
      [vmName("g"), "h2", 64, "fresh"],
    ]);
    expect(prewarm.leftOut.map((l) => [l.vm, l.reason])).toEqual([
      [vmName("a"), "switch connected"],
      [vmName("b"), expect.stringMatching(/^suspended by the leave policy/)],
      [vmName("f"), expect.stringMatching(/h1.*full/)],
    ]);
    expect(prewarm.perHost).toEqual({
      h1: { bootMemoryMiB: 0, images: 2, imagesMiB: 128, diskBudgetMiB: 128 },
      h2: { bootMemoryMiB: 0, images: 2, imagesMiB: 128, diskBudgetMiB: 128 },
    });
    // The table the operator reads: the settings, one line per VM (order, then left out), then the hosts.
    expect(await cli("plan", "--config", on, "--no-libvirt")).toBe(0);
    const part = out.slice(out.indexOf("\nprewarm: ") + 1).split("\n");
    expect(part[0]).toBe(
      "prewarm: order config, 1 at once; per host booting VMs bounded by its capacity, 128 MiB of images",
    );
    const cells = (i: number) => part[i]!.split(/\s{2,}/);
    expect(part[1]).toMatch(/^ORDER\s+DPID\s+VM\s+HOST\s+MEMORY\s+IMAGE\s+WHAT$/);
    expect(cells(3)).toEqual(["1", hex16(3), vmName("c"), "h2", "64 MiB", "none", "booted, then saved"]);
    expect(cells(6).slice(0, 3)).toEqual(["4", hex16(7), vmName("g")]);
    expect(cells(6)[6]).toBe("kept: its image is of the current config");
    expect(cells(7)).toEqual(["-", hex16(1), vmName("a"), "-", "-", "-", "left out: switch connected"]);
    expect(part[10]).toBe("");
    expect(part.slice(11, 15).map((l) => l.split(/\s{2,}/))).toEqual([
      ["HOST", "BOOTING AT ONCE", "IMAGES", "IMAGE DISK"],
      Array(4).fill(expect.stringMatching(/^-+$/)),
      ["h1", "64 MiB (no limit)", "2", "128 MiB of 128 MiB"],
      ["h2", "64 MiB (no limit)", "2", "128 MiB of 128 MiB"],
    ]);
    // Status: g's state with its image, and the images on disk per host against the budget.
    expect(await cli("status", "--config", on, "--no-live")).toBe(0);
    expect(out).toMatch(new RegExp(`${vmName("g")}\\s+h2\\s+prewarmed 12m ago on h2, 64 MiB\\s`));
    expect(out).toContain(
      "\nprewarm on: h1 0 VMs prewarmed, 0 MiB of 128 MiB disk budget; " +
        "h2 1 VM prewarmed, 64 MiB of 128 MiB disk budget\n",
    );
  });

  it("plan with MongoDB unreachable says so and plans from the config alone", async () => {
    const bad = join(dir, "bad-mongo.yaml");
    writeFileSync(bad, yaml("mongodb://127.0.0.1:1"));
    expect(await cli("plan", "--config", bad)).toBe(0);
    expect(err).toMatch(/^rfboot: MongoDB unreachable \(.*\): planned from the config alone\n$/);
    expect(out.split("\n")[0]).toMatch(
      /^DPID\s+VM\s+VM_ID\s+HV\s+HOST\s+PLACEMENT\s+ACTION\s+PORTS\s+ROWS\s+DISK\s+BOOT$/,
    );
    expect(out).toContain("define+start on join");
  }, 20_000);
});
