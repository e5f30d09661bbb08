/**
 * A prewarm that the daemon's stop cuts short, with a guest that really boots: rfboot boots rftest's TCG guest on
 * qemu:///system for prewarm and is stopped while the guest is booting (its console marker never comes). The
 * stop waits for the VM to be destroyed (not saved), and the prewarm is recorded cancelled, not failed: no
 * lastError, no failure metric, the record `stopped` without its `prewarming` mark. The next start prewarms the
 * VM again, to a saved image. Records and events in FerretDB.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig, type RfbootConfig } from "../../src/provisioner/index.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
import { removePools } from "../helpers/libvirt-hosts.js";
import { freePort, sh, shOk, until } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const URI = "qemu:///system";
const TAG = randomBytes(3).toString("hex");
const POOL = `rfbt-pws-${TAG}`;
const DB = `rfbt_pws_${TAG}`;
const VM = `rfbts${TAG}`;
const MGMT = `rfbtsm${TAG.slice(0, 4)}`;
const DPID = `e2${TAG}`;

describeWith(["libvirt", "mongo", "root"], "a prewarm cut short by the stop, with a real qemu guest", () => {
  let mongo: MongoClient;
  let stateDir: string;
  let daemon: Daemon | undefined;
  let port: number;

  const record = () => mongo.db(DB).collection("rfboot_vms").findOne({ vmName: VM });
  const events = async () =>
    (await mongo.db(DB).collection("rfboot_events").find({}).sort({ at: 1 }).toArray()).map(
      (e) => `${String(e.kind)}: ${String(e.detail)}`,
    );
  const domstate = async () => (await sh("virsh", ["-c", URI, "domstate", VM, "--reason"])).trim();

  /** config: the guest's readiness is `marker` on its console (one it never prints keeps it booting). */
  function config(marker: string): RfbootConfig {
    return parseConfig(
      `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} }, versions: ["1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: local, uri: "${URI}", maxVms: 2, pool: ${POOL} }
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check rfboot.name={name}" }
  network:
    management: { type: bridge, bridge: ${MGMT} }
datapaths:
  "0x${DPID}": { name: ${VM}, vmId: "06:e0:e0:e0:e0:e2", dataPorts: 0 }
policies: { prewarm: { enabled: true } }
readiness: { consoleMarker: "${marker}", timeoutSeconds: 60 }
`,
      { format: "yaml", source: "prewarm-stop-qemu.test" },
    );
  }

  const run = async (marker: string): Promise<Daemon> => {
    const d = new Daemon({
      config: config(marker),
      logger: silentLogger,
      instanceId: `pws-${TAG}`,
      createController: controllerFromConfig,
    });
    daemon = d;
    await d.start();
    return d;
  };

  beforeAll(async () => {
    if (!existsSync(join(GUEST, "vmlinuz")) || !existsSync(join(GUEST, "initrd.gz")))
      throw new Error(`the rftest guest is missing in ${GUEST}: run rftest/guest/build-guest.sh`);
    stateDir = mkdtempSync(join(tmpdir(), "rfbt-pws-"));
    mongo = await MongoClient.connect(MONGO_URI);
    await sh("ip", ["link", "add", MGMT, "type", "bridge"]);
    await sh("ip", ["link", "set", MGMT, "up"]);
    port = await freePort();
  });

  afterAll(async () => {
    await daemon?.stop().catch(() => undefined);
    await shOk("virsh", ["-c", URI, "destroy", VM]);
    await shOk("virsh", ["-c", URI, "undefine", VM, "--managed-save"]);
    await shOk("ip", ["link", "del", MGMT]);
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    removePools(URI, [POOL]);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it("the stop destroys the VM booting for prewarm and records it cancelled; the next start prewarms it", async () => {
    const first = await run("RFBOOT-NEVER-PRINTED");
    const booting = await until(
      "the VM running for prewarm",
      async () => {
        const r = await record();
        return r?.prewarming && (await domstate()).startsWith("running") ? r : undefined;
      },
      40_000,
    );
    expect(booting.prewarming).toMatchObject({ host: "local" });
    expect(booting.switch).toBeUndefined();
    await first.stop();
    daemon = undefined;
    // Destroyed before stop() returned, not saved.
    expect(await domstate()).toMatch(/^shut off/);
    expect(await sh("virsh", ["-c", URI, "dominfo", VM])).toMatch(/^Managed save:\s+no$/m);
    const rec = await record();
    expect(rec).toMatchObject({ state: "stopped", prewarming: null });
    expect(rec?.lastError ?? null).toBeNull();
    const seen = await events();
    expect(seen.filter((e) => e.startsWith("prewarm:"))).toEqual([
      "prewarm: cancelled: rfboot stopped before the VM was saved; VM destroyed on local",
    ]);
    expect(seen.filter((e) => e.startsWith("error:"))).toEqual([]);
    const metrics = await first.metrics.registry.metrics();
    expect(metrics).toMatch(/rfboot_prewarm_total\{outcome="cancelled"\} 1/);
    expect(metrics).not.toMatch(/rfboot_prewarm_total\{outcome="failed"\}/);
    expect(metrics).not.toMatch(/^rfboot_failures_total\{/m);

    // The guest prints rfboot's default marker: the next start prewarms it to a saved image.
    const next = await run("RFBOOT-GUEST-BOOTED");
    const saved = await until(
      "the VM prewarmed again",
      async () => {
        const r = await record();
        return r?.state === "prewarmed" && r.prewarm ? r : undefined;
      },
      60_000,
    );
    expect(saved).toMatchObject({ prewarming: null, prewarm: { host: "local", imageMiB: 128 } });
    expect(await domstate()).toBe("shut off (saved)");
    await next.stop();
    daemon = undefined;
  }, 150_000);
});
