/**
 * The daemon keeps a connected switch's VM whole, with real peers: a real OVS switch joins an in-process Daemon
 * that boots a QEMU (TCG) guest on qemu:///system, derived from the template (one data NIC per switch port).
 * Then the VM is destroyed behind rfboot's back (it must run again within seconds), and a port is added to
 * the switch (the VM must get a NIC for it on the data bridge, live and in its definition, and RouteFlow's
 * row for it). Last, an LXC VM (busybox rootfs, its console read through libvirt) reaches `ready`.
 */
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RfbootConfig } from "../../src/provisioner/index.js";
import { describeWith } from "../helpers/env.js";
import { SYSTEM_URI as QEMU, startQemuRig, type QemuRig } from "../helpers/qemu-rig.js";
import { addSwitch, sh, until } from "../helpers/real.js";

const LXC = "lxc:///system";

describeWith(["ovs", "libvirt", "mongo", "root"], "daemon life cycle with real peers", () => {
  let rig: QemuRig;
  let DPID: string;
  let LXC_DPID: string;
  let LXC_VM: string;
  let DATA: string;
  let SWITCH: string;
  let LXC_SWITCH: string;
  /** VM is the template VM's name, read from its record once it joined. */
  let VM = "";

  const record = (dpidHex: string) =>
    rig.db.collection("rfboot_vms").findOne({ _id: dpidHex.padStart(16, "0") } as never);
  const events = async (kind: string) =>
    (await rig.db.collection("rfboot_events").find({ kind }).toArray()).length;
  const dataPorts = async () =>
    (await sh("ovs-vsctl", ["list-ports", DATA])).split("\n").filter(Boolean).sort();
  const domstate = async (uri: string, vm: string) =>
    String(
      (await execa("virsh", ["-c", uri, "domstate", vm], { env: { LC_ALL: "C" }, reject: false })).stdout,
    ).trim();
  const addPort = (sw: string, n: number) =>
    sh("ovs-vsctl", [
      "add-port",
      sw,
      `${sw}p${n}`,
      "--",
      "set",
      "interface",
      `${sw}p${n}`,
      "type=internal",
      `ofport_request=${n}`,
    ]);

  /** The ports exist before the controller is set, so the switch joins with them. */
  const switchWithPorts = async (sw: string, dpid: string, ports: number[]) => {
    await sh("ovs-vsctl", ["add-br", sw, "--", "set", "bridge", sw, "datapath_type=netdev"]);
    for (const n of ports) await addPort(sw, n);
    await addSwitch(sw, dpid, rig.port);
  };

  function config(): RfbootConfig {
    return rig.config({
      hosts: [rig.host(), rig.host({ name: "lxc", uri: LXC })],
      datapaths: {
        [`0x${LXC_DPID}`]: {
          name: LXC_VM,
          vmId: "06:e3:e3:e3:e3:e3",
          dataPorts: 1,
          hypervisor: "lxc",
          boot: {
            type: "init",
            init: "/init",
            args: ["rfboot.name={name}"],
            rootfs: `${rig.guestDir}/rootfs-lxc`,
          },
        },
      },
      policies: {
        unknownDatapath: { action: "template", template: { dataPorts: "switch", maxDataPorts: 8 } },
        vmStopped: { action: "restart", backoffSeconds: 0.5 },
      },
      readiness: { timeoutSeconds: 90 },
    });
  }

  beforeAll(async () => {
    rig = await startQemuRig({ letter: "l", data: true, lxc: true });
    DPID = rig.dpid(0);
    LXC_DPID = rig.dpid(1);
    LXC_VM = rig.vm(1);
    DATA = rig.data!;
    SWITCH = rig.switchName(0);
    LXC_SWITCH = rig.switchName(1);
    await rig.daemon(config()).start();
  });

  afterAll(async () => {
    await rig?.cleanup();
  });

  it("a template VM boots for a switch with two ports: two data NICs, two rows", async () => {
    await switchWithPorts(SWITCH, DPID, [1, 2]);
    const rec = await until(
      "record ready",
      async () => {
        const r = await record(DPID);
        return r?.state === "ready" ? r : undefined;
      },
      90_000,
    );
    VM = String(rec.vmName);
    expect(await domstate(QEMU, VM)).toBe("running");
    expect(await dataPorts()).toEqual([`${VM}.1`, `${VM}.2`]);
    const rows = await rig.db
      .collection("rfconfig")
      .countDocuments({ dp_id: BigInt(`0x${DPID}`).toString() });
    expect(rows).toBe(2);
  }, 120_000);

  it("a VM destroyed behind rfboot's back while its switch is up runs again within seconds", async () => {
    const restartsBefore = await events("restart");
    const t0 = Date.now();
    await sh("virsh", ["-c", QEMU, "destroy", VM]);
    expect(await domstate(QEMU, VM)).toBe("shut off");
    await until(
      "running again",
      async () => ((await domstate(QEMU, VM)) === "running" ? true : undefined),
      20_000,
    );
    const tookMs = Date.now() - t0;
    expect(tookMs).toBeLessThan(20_000);
    await until(
      "a restart event",
      async () => ((await events("restart")) > restartsBefore ? true : undefined),
      5_000,
    );
    expect(await dataPorts()).toEqual([`${VM}.1`, `${VM}.2`]);
    await until(
      "record ready again",
      async () => ((await record(DPID))?.state === "ready" ? true : undefined),
      60_000,
    );
  }, 90_000);

  it("a port added to the joined switch becomes a NIC of the running VM on the data bridge, and a row", async () => {
    const dpDec = BigInt(`0x${DPID}`).toString();
    await addPort(SWITCH, 3);
    await until(
      "NIC 3 on the data bridge",
      async () => ((await dataPorts()).includes(`${VM}.3`) ? true : undefined),
      20_000,
    );
    const row = await rig.db
      .collection("rfconfig")
      .findOne({ dp_id: dpDec, dp_port: "3" }, { projection: { _id: 0 } });
    expect(row).toMatchObject({ vm_port: "3", ct_id: "0", dp_id: dpDec, dp_port: "3" });
    // Live and persistent: in the running domain and in its definition, with RouteFlow's device name.
    const live = await sh("virsh", ["-c", QEMU, "dumpxml", VM]);
    const inactive = await sh("virsh", ["-c", QEMU, "dumpxml", VM, "--inactive"]);
    for (const xml of [live, inactive]) expect(xml).toContain(`<target dev='${VM}.3'/>`);
    expect(await domstate(QEMU, VM)).toBe("running");
  }, 60_000);

  it("an LXC VM reaches ready by its console marker", async () => {
    await switchWithPorts(LXC_SWITCH, LXC_DPID, [1]);
    const rec = await until(
      "LXC record ready",
      async () => {
        const r = await record(LXC_DPID);
        return r?.state === "ready" ? r : undefined;
      },
      60_000,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}; record: ${JSON.stringify(await record(LXC_DPID))}`);
    });
    expect(rec).toMatchObject({ host: "lxc", hypervisor: "lxc", vmName: LXC_VM });
    expect(await domstate(LXC, LXC_VM)).toBe("running");
  }, 90_000);
});
