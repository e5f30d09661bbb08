/**
 * The daemon keeps a connected switch's VM whole, with real peers: a real OVS switch joins an in-process Daemon
 * that boots a QEMU (TCG) guest on qemu:///system, derived from the template (one data NIC per switch port).
 * Then the VM is destroyed behind rfboot's back (it must run again within seconds), and a port is added to
 * the switch (the VM must get a NIC for it on the data bridge, live and in its definition, and RouteFlow's
 * row for it). Last, an LXC VM (busybox rootfs, its console read through libvirt) reaches `ready`.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig, type RfbootConfig } from "../../src/provisioner/index.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
import { removePools } from "../helpers/libvirt-hosts.js";
import { addSwitch, freePort, sh, shOk, until } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const QEMU = "qemu:///system";
const LXC = "lxc:///system";
const TAG = randomBytes(3).toString("hex");
/** POOL is this run's own storage pool on the machine's libvirtd (removed in afterAll). */
const POOL = `rfbt-lifecycle-${TAG}`;
const DB = `rfbt_dl_${TAG}`;
const DPID = `e2${TAG}`;
const LXC_DPID = `e3${TAG}`;
const LXC_VM = `rfbtx${TAG}`;
const MGMT = `rfbtlm${TAG.slice(0, 4)}`;
const DATA = `rfbtld${TAG.slice(0, 4)}`;
const SWITCH = `rfbtls${TAG.slice(0, 4)}`;
const LXC_SWITCH = `rfbtlx${TAG.slice(0, 4)}`;

describeWith(["ovs", "libvirt", "mongo", "root"], "daemon life cycle with real peers", () => {
  let mongo: MongoClient;
  let stateDir: string;
  let daemon: Daemon | undefined;
  let port: number;
  /** VM is the template VM's name, read from its record once it joined. */
  let VM = "";

  const record = (dpidHex: string) =>
    mongo
      .db(DB)
      .collection("rfboot_vms")
      .findOne({ _id: dpidHex.padStart(16, "0") } as never);
  const events = async (kind: string) =>
    (await mongo.db(DB).collection("rfboot_events").find({ kind }).toArray()).length;
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
    await addSwitch(sw, dpid, port);
  };

  function config(): RfbootConfig {
    const yaml = `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: ${port} }, versions: ["1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: local, uri: "${QEMU}", maxVms: 2, pool: ${POOL} }
  - { name: lxc, uri: "${LXC}", maxVms: 2, pool: ${POOL} }
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check rfboot.name={name}" }
  network:
    management: { type: bridge, bridge: ${MGMT} }
    data: { bridge: ${DATA}, openvswitch: true }
datapaths:
  "0x${LXC_DPID}":
    name: ${LXC_VM}
    vmId: "06:e3:e3:e3:e3:e3"
    dataPorts: 1
    hypervisor: lxc
    boot: { type: init, init: /init, args: ["rfboot.name={name}"], rootfs: ${GUEST}/rootfs-lxc }
policies:
  unknownDatapath:
    action: template
    template: { dataPorts: switch, maxDataPorts: 8 }
  vmStopped: { action: restart, backoffSeconds: 0.5 }
readiness: { timeoutSeconds: 90 }
`;
    return parseConfig(yaml, { format: "yaml", source: "daemon-lifecycle.test" });
  }

  beforeAll(async () => {
    for (const f of ["vmlinuz", "initrd.gz", "rootfs-lxc/init"])
      if (!existsSync(join(GUEST, f)))
        throw new Error(`the rftest guest is missing ${f} in ${GUEST}: run rftest/guest/build-guest.sh`);
    stateDir = mkdtempSync(join(tmpdir(), "rfbt-dl-"));
    mongo = await MongoClient.connect(MONGO_URI);
    await sh("ip", ["link", "add", MGMT, "type", "bridge"]);
    await sh("ip", ["link", "set", MGMT, "up"]);
    await sh("ovs-vsctl", ["add-br", DATA, "--", "set", "bridge", DATA, "datapath_type=netdev"]);
    port = await freePort();
    daemon = new Daemon({
      config: config(),
      logger: silentLogger,
      instanceId: `dl-${TAG}`,
      createController: controllerFromConfig,
    });
    await daemon.start();
  });

  afterAll(async () => {
    await daemon?.stop().catch(() => undefined);
    const domains: [string, string][] = [
      [QEMU, VM],
      [LXC, LXC_VM],
    ];
    for (const [uri, vm] of domains) {
      if (!vm) continue;
      await shOk("virsh", ["-c", uri, "destroy", vm]);
      await shOk("virsh", ["-c", uri, "undefine", vm, "--managed-save"]);
    }
    for (const br of [SWITCH, LXC_SWITCH, DATA]) await shOk("ovs-vsctl", ["--if-exists", "del-br", br]);
    await shOk("ip", ["link", "del", MGMT]);
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    removePools(QEMU, [POOL]);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
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
    const rows = await mongo
      .db(DB)
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
    const row = await mongo
      .db(DB)
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
