/**
 * The daemon with a guest that really boots: an Open vSwitch bridge joins an in-process Daemon, which defines
 * and starts a QEMU (TCG) domain on the machine's qemu:///system (direct kernel boot of rftest's guest), with
 * eth0 on a Linux bridge and the data NICs plugged by libvirt into a userspace OVS bridge, and records it in
 * FerretDB. Readiness comes from the guest's console marker, read through the console stream (the log file is
 * still written for people). Then the leave policies on the real guest:
 * `suspend` (managedsave) after the grace period and a resume (restore, not a reboot) when the switch comes
 * back, and `destroy` after a config reload.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Daemon, RfbootConfig } from "../../src/provisioner/index.js";
import { describeWith } from "../helpers/env.js";
import { SYSTEM_URI as URI, startQemuRig, type QemuRig } from "../helpers/qemu-rig.js";
import { addSwitch, sh, until } from "../helpers/real.js";

/** A vm_id of RouteFlow's pattern, so the data NIC MACs are known without the code: eth1 06:e1:.., eth2 06:e2:... */
const VM_ID = "06:e0:e0:e0:e0:e0";
const DATA_PORTS = 2;

const beats = (text: string) => [...text.matchAll(/RFBOOT-HEARTBEAT n=(\d+)/g)].map((m) => Number(m[1]));
const markers = (text: string) => text.split("RFBOOT-GUEST-BOOTED").length - 1;

describeWith(["ovs", "libvirt", "mongo", "root"], "daemon with a real qemu guest on qemu:///system", () => {
  let rig: QemuRig;
  let daemon: Daemon | undefined;
  let VM: string; // 11 characters: VM.1 fits Linux's 15
  let MGMT: string;
  let DATA: string;
  let SWITCH: string;
  let DPID: string;

  const consoleLog = () => join(rig.stateDir, "console", `${VM}.log`);
  const consoleText = () => {
    try {
      return readFileSync(consoleLog(), "latin1");
    } catch {
      return "";
    }
  };
  const record = () => rig.db.collection("rfboot_vms").findOne({ vmName: VM });
  const dataPorts = async () =>
    (await sh("ovs-vsctl", ["list-ports", DATA])).split("\n").filter(Boolean).sort();
  const domstate = async () => (await sh("virsh", ["-c", URI, "domstate", VM, "--reason"])).trim();

  function config(leave: "suspend" | "destroy"): RfbootConfig {
    return rig.config({
      datapaths: { [`0x${DPID}`]: { name: VM, vmId: VM_ID, dataPorts: DATA_PORTS } },
      policies: { leave: { action: leave, graceSeconds: 1 } },
      readiness: { timeoutSeconds: 90 },
    });
  }

  beforeAll(async () => {
    rig = await startQemuRig({ letter: "q", data: true });
    VM = rig.vm();
    MGMT = rig.mgmt;
    DATA = rig.data!;
    SWITCH = rig.switchName();
    DPID = rig.dpid();
  });

  afterAll(async () => {
    await rig?.cleanup();
  });

  it("a switch joins: the guest boots, its NICs sit on the right bridges with RouteFlow's MACs, the record is ready", async () => {
    daemon = rig.daemon(config("suspend"));
    await daemon.start();
    await addSwitch(SWITCH, DPID, rig.port);
    const rec = await until(
      "record ready",
      async () => {
        const r = await record();
        return r?.state === "ready" ? r : undefined;
      },
      60_000,
    );
    expect(rec.readyAt).toBeInstanceOf(Date);
    expect(rec.startedAt).toBeInstanceOf(Date);
    expect((rec.readyAt as Date).getTime()).toBeGreaterThanOrEqual((rec.startedAt as Date).getTime());
    expect(rec).toMatchObject({ host: "local", hypervisor: "qemu", vmMac: VM_ID });
    // The guest really booted: its marker, with the name from the kernel command line.
    expect(consoleText()).toContain(`RFBOOT-GUEST-BOOTED name=${VM}`);
    // Started paused, resumed once readiness had the console attached (QEMU's pty drops unread output).
    expect(await domstate()).toBe("running (unpaused)");
    // libvirt plugged exactly this VM's data NICs into the OVS data bridge, and eth0 into the Linux bridge.
    expect(await dataPorts()).toEqual([`${VM}.1`, `${VM}.2`]);
    const xml = await sh("virsh", ["-c", URI, "dumpxml", VM]);
    const nics = [...xml.matchAll(/<interface type='bridge'>([\s\S]*?)<\/interface>/g)].map((m) => m[1]!);
    expect(nics).toHaveLength(1 + DATA_PORTS);
    expect(nics[0]).toContain(`<mac address='${VM_ID}'/>`);
    expect(nics[0]).toContain(`<source bridge='${MGMT}'/>`);
    expect(nics[0]).not.toContain("openvswitch");
    for (const n of [1, 2]) {
      expect(nics[n]).toContain(`<mac address='06:e${n}:e${n}:e${n}:e${n}:e${n}'/>`);
      expect(nics[n]).toContain(`<source bridge='${DATA}'/>`);
      expect(nics[n]).toContain("<virtualport type='openvswitch'>");
      expect(nics[n]).toContain(`<target dev='${VM}.${n}'/>`);
    }
    const mgmtPorts = await sh("ip", ["-o", "link", "show", "master", MGMT]);
    expect(mgmtPorts.split("\n").filter(Boolean)).toHaveLength(1);
    // RouteFlow's rows for this datapath, before anything else.
    const rows = await rig.db
      .collection("rfconfig")
      .find({}, { projection: { _id: 0 } })
      .sort({ vm_port: 1 })
      .toArray();
    const dpDec = BigInt(`0x${DPID}`).toString(10);
    const vmDec = BigInt(`0x${VM_ID.replace(/:/g, "")}`).toString(10);
    expect(rows).toEqual(
      [1, 2].map((k) => ({ vm_id: vmDec, vm_port: `${k}`, ct_id: "0", dp_id: dpDec, dp_port: `${k}` })),
    );
  }, 90_000);

  it("leave policy suspend: managed-saved after the grace period; the switch returns and the guest resumes", async () => {
    await until("a heartbeat", async () => beats(consoleText()).length > 0, 20_000);
    await sh("ovs-vsctl", ["del-br", SWITCH]);
    await until(
      "record suspended",
      async () => ((await record())?.state === "suspended" ? true : undefined),
      60_000,
    );
    const info = await sh("virsh", ["-c", URI, "dominfo", VM]);
    expect(info).toMatch(/^State:\s+shut off$/m);
    expect(info).toMatch(/^Managed save:\s+yes$/m);
    expect(await domstate()).toBe("shut off (saved)");
    expect(await dataPorts()).toEqual([]); // libvirt unplugged the NICs when the domain stopped
    const before = consoleText();
    const lastBeat = Math.max(...beats(before));
    expect(markers(before)).toBe(1);

    const actions: string[] = [];
    daemon!.on("ensured", (e) => actions.push(e.action));
    await addSwitch(SWITCH, DPID, rig.port);
    await until("record running again", async () => {
      const r = await record();
      return r?.state === "running" || r?.state === "ready" ? true : undefined;
    });
    expect(actions).toEqual(["started"]);
    // Restored paused, resumed once the console was attached.
    expect(await domstate()).toBe("running (unpaused)");
    expect(await dataPorts()).toEqual([`${VM}.1`, `${VM}.2`]);
    // Restored, not rebooted: the heartbeat counter goes on from where it stopped and no boot marker is
    // printed again. The serial log is `append="off"`: qemu's restore truncates it, so the new file starts
    // with the next heartbeat instead of a boot.
    const after = await until(
      "a heartbeat after the resume",
      async () => {
        const t = consoleText();
        return beats(t).some((n) => n > lastBeat) ? t : undefined;
      },
      20_000,
    );
    expect(markers(after)).toBe(0);
    expect(Math.min(...beats(after).filter((n) => n > lastBeat))).toBe(lastBeat + 1);
  }, 120_000);

  // A guest restored from managedsave never prints its boot marker again (and qemu truncated the log): the
  // daemon takes its first new console output as readiness.
  it("a resumed guest's record becomes ready again", async () => {
    await until(
      "record ready after the resume",
      async () => ((await record())?.state === "ready" ? true : undefined),
      8_000,
    );
  }, 20_000);

  it("after a reload to leave policy destroy, a leave powers the guest off", async () => {
    const r = await daemon!.reload(config("destroy"));
    expect(r).toEqual({ added: [], changed: [], removed: [] });
    await sh("ovs-vsctl", ["del-br", SWITCH]);
    await until("record stopped", async () => ((await record())?.state === "stopped" ? true : undefined));
    expect(await domstate()).toBe("shut off (destroyed)");
    const info = await sh("virsh", ["-c", URI, "dominfo", VM]);
    expect(info).toMatch(/^Managed save:\s+no$/m);
    expect(await dataPorts()).toEqual([]);
    await daemon!.stop();
    daemon = undefined;
  }, 60_000);
});
