/**
 * Prewarm with a guest that really boots: with `policies.prewarm` on, the daemon boots rftest's TCG guest on
 * qemu:///system before any switch joins, waits for its console marker, saves it (`managedsave`) and records
 * it `prewarmed` (domain shut off with a managed save). A config change (reload) drops that image and
 * prewarms the VM again from the new config. Then an Open vSwitch bridge joins: the VM is restored, not
 * booted, and the record is ready with its image gone. Records and events in FerretDB.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Daemon, RfbootConfig } from "../../src/provisioner/index.js";
import { describeWith } from "../helpers/env.js";
import { SYSTEM_URI as URI, startQemuRig, type QemuRig } from "../helpers/qemu-rig.js";
import { addSwitch, sh, until } from "../helpers/real.js";

const VM_ID = "06:e0:e0:e0:e0:e1";

describeWith(["ovs", "libvirt", "mongo", "root"], "prewarm with a real qemu guest on qemu:///system", () => {
  let rig: QemuRig;
  let daemon: Daemon | undefined;
  let VM: string;
  let SWITCH: string;
  let DPID: string;

  const record = () => rig.db.collection("rfboot_vms").findOne({ vmName: VM });
  const prewarmEvents = async () =>
    (await rig.db.collection("rfboot_events").find({ kind: "prewarm" }).sort({ at: 1 }).toArray()).map((e) =>
      String(e.detail),
    );
  const domstate = async () => (await sh("virsh", ["-c", URI, "domstate", VM, "--reason"])).trim();
  const managedSave = async () =>
    /^Managed save:\s+yes$/m.test(await sh("virsh", ["-c", URI, "dominfo", VM]));
  const prewarmed = () =>
    until(
      "record prewarmed",
      async () => {
        const r = await record();
        return r?.state === "prewarmed" && r.prewarm ? r : undefined;
      },
      40_000,
    );

  function config(memoryMiB: number): RfbootConfig {
    return rig.config({
      defaults: { memoryMiB },
      datapaths: { [`0x${DPID}`]: { name: VM, vmId: VM_ID, dataPorts: 1 } },
      policies: { prewarm: { enabled: true } },
      readiness: { timeoutSeconds: 30 },
    });
  }

  beforeAll(async () => {
    rig = await startQemuRig({ letter: "p", data: true });
    VM = rig.vm();
    SWITCH = rig.switchName();
    DPID = rig.dpid();
  });

  afterAll(async () => {
    await rig?.cleanup();
  });

  it("prewarmed before any switch joins; a reload drops the stale image and prewarms again; a join restores it", async () => {
    daemon = rig.daemon(config(128));
    await daemon.start();
    const first = await prewarmed();
    expect(first.prewarm).toMatchObject({ host: "local", imageMiB: 128 });
    expect(first.readyAt).toBeInstanceOf(Date);
    expect(await domstate()).toBe("shut off (saved)");
    expect(await managedSave()).toBe(true);

    // A changed VM config: the image holds the old definition, so it goes and the VM is prewarmed anew.
    await daemon.reload(config(144));
    const second = await until(
      "prewarmed again from the new config",
      async () => {
        const r = await prewarmed();
        return r.prewarm?.fingerprint !== first.prewarm?.fingerprint ? r : undefined;
      },
      45_000,
    );
    expect(second.prewarm).toMatchObject({ host: "local", imageMiB: 144 });
    expect(await sh("virsh", ["-c", URI, "dumpxml", "--inactive", VM])).toContain(
      "<memory unit='KiB'>147456</memory>",
    );
    expect(await prewarmEvents()).toEqual([
      "saved on local (128 MiB)",
      "dropped: config changed",
      "saved on local (144 MiB)",
    ]);

    const ensured: { action: string }[] = [];
    const ready: { via: string; ms: number }[] = [];
    const failures: string[] = [];
    daemon.on("ensured", (e) => ensured.push(e));
    daemon.on("ready", (e) => ready.push(e));
    daemon.on("failed", (e) => failures.push(e.error.message));
    await addSwitch(SWITCH, DPID, rig.port);
    const rec = await until(
      "record ready after the join",
      async () => {
        const r = await record();
        return r?.state === "ready" && ready.length > 0 ? r : undefined;
      },
      40_000,
    ).catch(async (e: unknown) => {
      const events = await rig.db.collection("rfboot_events").find({}).sort({ at: 1 }).toArray();
      const seen = events.map((x) => `${String(x.kind)}: ${String(x.detail)}`).join(" | ");
      throw new Error(
        `${String(e)}; record ${JSON.stringify(await record())}; failures ${failures.join("; ")}; ` +
          `ensured ${JSON.stringify(ensured)}; events ${seen}`,
      );
    });
    expect(ensured.map((e) => e.action)).toEqual(["started"]);
    // Restored: no boot marker is awaited, the first console output (or quiet) is readiness.
    expect(ready[0]?.via).toMatch(/restored/);
    expect(rec.prewarm).toBeNull();
    expect(await domstate()).toBe("running (unpaused)");
    expect(await managedSave()).toBe(false);
    expect((await prewarmEvents()).at(-1)).toBe("restored on local");
    const metrics = await daemon.metrics.registry.metrics();
    expect(metrics).toMatch(/rfboot_prewarm_total\{outcome="restored"\} 1/);
    expect(metrics).toMatch(/rfboot_prewarm_total\{outcome="dropped"\} 1/);
    expect(metrics).toMatch(/rfboot_prewarmed_vms\{host="local"\} 0/);
    await daemon.stop();
    daemon = undefined;
  }, 90_000);
});
