/**
 * The QEMU test rig (test/helpers/qemu-rig.ts) itself, without booting a guest: its names fit Linux's
 * device names, its config parses with its bridges and pool, and what a daemon on it would leave (a defined
 * domain, the storage pools, a switch with a port, records) is what it finds and then removes: after
 * cleanup, nothing of it is left. A cleanup that leaves something throws, naming it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { describeWith } from "../helpers/env.js";
import { SYSTEM_URI, startQemuRig, type QemuRig } from "../helpers/qemu-rig.js";
import { addSwitch, sh, shOk } from "../helpers/real.js";

describeWith(["ovs", "libvirt", "mongo", "root"], "the QEMU test rig", () => {
  let rig: QemuRig | undefined;

  afterAll(async () => {
    await rig?.cleanup().catch(() => undefined);
  });

  it("makes its parts, finds what was made on it, and leaves nothing after cleanup", async () => {
    rig = await startQemuRig({ letter: "r", data: true });
    const [vm, sw, dpid] = [rig.vm(), rig.switchName(), rig.dpid()];
    for (const dev of [`${rig.vm(9)}.10`, `rfvm-${dpid}.1`, rig.mgmt, rig.data!, `${rig.switchName(1)}p9`])
      expect(dev.length).toBeLessThanOrEqual(15);
    expect(await sh("ip", ["-o", "link", "show", "dev", rig.mgmt])).toMatch(/<[^>]*\bUP\b[^>]*>/);
    expect(await sh("ovs-vsctl", ["get", "bridge", rig.data!, "datapath_type"])).toBe("netdev");

    const config = rig.config({
      defaults: { memoryMiB: 96 },
      datapaths: { [`0x${dpid}`]: { name: vm, vmId: "06:a0:a0:a0:a0:a0", dataPorts: 1 } },
    });
    expect(config.hosts).toMatchObject([{ name: "local", uri: SYSTEM_URI, pool: rig.pool }]);
    expect(config.stateDir).toBe(rig.stateDir);
    expect(config.mongo.database).toBe(rig.dbName);
    // The override is laid onto the rig's defaults, which stay.
    expect(config.defaults).toMatchObject({
      hypervisor: "qemu",
      memoryMiB: 96,
      boot: { type: "kernel", kernel: `${rig.guestDir}/vmlinuz` },
      network: { management: { bridge: rig.mgmt }, data: { bridge: rig.data, openvswitch: true } },
    });

    // What a daemon on the rig leaves behind: its domain, its pools, its switch with a port, its records.
    const xml = join(rig.stateDir, "domain.xml");
    writeFileSync(
      xml,
      `<domain type='qemu'><name>${vm}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>` +
        `<devices><interface type='bridge'><source bridge='${rig.mgmt}'/></interface></devices></domain>`,
    );
    await sh("virsh", ["-c", SYSTEM_URI, "define", xml]);
    for (const [pool, dir] of [
      [rig.pool, "disks"],
      [`${rig.pool}-console`, "console"],
    ] as const) {
      await sh("virsh", [
        "-c",
        SYSTEM_URI,
        "pool-define-as",
        pool,
        "dir",
        "--target",
        join(rig.stateDir, dir),
      ]);
      await sh("virsh", ["-c", SYSTEM_URI, "pool-build", pool]);
      await sh("virsh", ["-c", SYSTEM_URI, "pool-start", pool]);
    }
    await addSwitch(sw, dpid, rig.port);
    await sh("ovs-vsctl", ["add-port", sw, `${sw}p1`, "--", "set", "interface", `${sw}p1`, "type=internal"]);
    await rig.db.collection("rfboot_vms").insertOne({ vmName: vm });

    const before = await rig.leftovers();
    expect(before).toEqual(
      expect.arrayContaining([
        `domain ${vm} on ${SYSTEM_URI}`,
        `pool ${rig.pool} on ${SYSTEM_URI}`,
        `pool ${rig.pool}-console on ${SYSTEM_URI}`,
        `ovs bridge ${rig.data}`,
        `ovs bridge ${sw}`,
        `link ${rig.mgmt}`,
        `link ${sw}p1`,
        `directory ${rig.stateDir}`,
        `database ${rig.dbName}`,
      ]),
    );

    await rig.cleanup();
    expect(await rig.leftovers()).toEqual([]);
  }, 60_000);

  it("a cleanup that leaves something throws, naming it", async () => {
    rig = await startQemuRig({ letter: "r" });
    // A data NIC's device that outlived its domain: nothing of the rig's removes such a link.
    const tap = `${rig.vm()}.1`;
    await sh("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
    try {
      await expect(rig.cleanup()).rejects.toThrow(`the QEMU test rig ${rig.tag} left: link ${tap}`);
    } finally {
      await shOk("ip", ["link", "del", tap]);
    }
    expect(await rig.leftovers()).toEqual([]);
  }, 30_000);
});
