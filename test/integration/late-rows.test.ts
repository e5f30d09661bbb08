/**
 * A row written after both sides registered, with real peers: a real OVS switch joins an in-process Daemon in
 * relay mode, whose upstream (standing in for rfproxy) counts the switch's connections; its template LXC VM
 * boots. A port added to the switch gets its row and its NIC, and under `policies.lateRows: reconnect` rfboot
 * then closes the switch's connection: the switch connects again, through rfboot, to the upstream, which is
 * what makes rfproxy send its DatapathPortRegister messages again (one per port, the new one included), so
 * rfserver matches the late row. The documents show the order: the row exists before the reconnection.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig } from "../../src/provisioner/index.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
import { removePools } from "../helpers/libvirt-hosts.js";
import { addSwitch, freePort, sh, shOk, until } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const LXC = "lxc:///system";
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_late_${TAG}`;
const DPID = `e4${TAG}`;
const DATA = `rfbtkd${TAG.slice(0, 4)}`;
const SWITCH = `rfbtks${TAG.slice(0, 4)}`;
const MGMT = `rfbtkm${TAG.slice(0, 4)}`;
/** POOL is this run's own storage pool on the machine's libvirtd (removed in afterAll). */
const POOL = `rfbt-late-${TAG}`;

describeWith(["ovs", "libvirt", "mongo", "root"], "late rfconfig rows with real peers (relay)", () => {
  let mongo: MongoClient;
  let stateDir: string;
  let daemon: Daemon | undefined;
  let upstream: Server;
  /** connections: when each switch connection reached the upstream (ms since epoch). */
  const connections: number[] = [];
  const sockets = new Set<Socket>();
  let VM = "";
  const dpDec = BigInt(`0x${DPID}`).toString();
  const record = () =>
    mongo
      .db(DB)
      .collection("rfboot_vms")
      .findOne({ _id: DPID.padStart(16, "0") } as never);

  beforeAll(async () => {
    for (const f of ["rootfs-lxc/init"])
      if (!existsSync(join(GUEST, f)))
        throw new Error(`the rftest guest is missing ${f} in ${GUEST}: run rftest/guest/build-guest.sh`);
    stateDir = mkdtempSync(join(tmpdir(), "rfbt-late-"));
    mongo = await MongoClient.connect(MONGO_URI);
    await sh("ip", ["link", "add", MGMT, "type", "bridge"]);
    await sh("ip", ["link", "set", MGMT, "up"]);
    await sh("ovs-vsctl", ["add-br", DATA, "--", "set", "bridge", DATA, "datapath_type=netdev"]);
    // The upstream takes every connection the relay opens and keeps it as a controller would: it says HELLO
    // and answers echoes (a switch whose controller stays silent drops the connection), nothing else.
    upstream = createServer((s) => {
      connections.push(Date.now());
      sockets.add(s);
      let buf = Buffer.alloc(0);
      s.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 8 && buf.length >= buf.readUInt16BE(2)) {
          const len = buf.readUInt16BE(2);
          const msg = buf.subarray(0, len);
          buf = buf.subarray(len);
          const reply = Buffer.from(msg);
          if (msg[1] === 0) s.write(reply); // HELLO back, same version and xid
          if (msg[1] === 2) s.write((reply.writeUInt8(3, 1), reply)); // ECHO_REPLY, same payload
        }
      });
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const up = upstream.address();
    const upPort = typeof up === "object" && up ? up.port : 0;
    const port = await freePort();
    const yaml = `
stateDir: ${stateDir}
openflow: { mode: relay, listen: { host: 127.0.0.1, port: ${port} }, upstream: { host: 127.0.0.1, port: ${upPort} }, versions: ["1.3"] }
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: lxc, uri: "${LXC}", maxVms: 2, pool: ${POOL} }
defaults:
  hypervisor: lxc
  memoryMiB: 64
  boot: { type: init, init: /init, args: ["rfboot.name={name}"], rootfs: ${GUEST}/rootfs-lxc }
  network:
    management: { type: bridge, bridge: ${MGMT} }
    data: { bridge: ${DATA}, openvswitch: true }
policies:
  unknownDatapath: { action: template, template: { name: "rfbtk-{dpid}", dataPorts: switch, maxDataPorts: 8 } }
  lateRows: { action: reconnect }
readiness: { timeoutSeconds: 60 }
`;
    daemon = new Daemon({
      config: parseConfig(yaml, { format: "yaml", source: "late-rows.test" }),
      logger: silentLogger,
      instanceId: `late-${TAG}`,
      createController: controllerFromConfig,
    });
    await daemon.start();
    await sh("ovs-vsctl", ["add-br", SWITCH, "--", "set", "bridge", SWITCH, "datapath_type=netdev"]);
    for (const n of [1, 2]) await addPort(n);
    await addSwitch(SWITCH, DPID, port);
  });

  const addPort = (n: number) =>
    sh("ovs-vsctl", [
      "add-port",
      SWITCH,
      `${SWITCH}p${n}`,
      "--",
      "set",
      "interface",
      `${SWITCH}p${n}`,
      "type=internal",
      `ofport_request=${n}`,
    ]);

  afterAll(async () => {
    await daemon?.stop().catch(() => undefined);
    if (VM) {
      await shOk("virsh", ["-c", LXC, "destroy", VM]);
      await shOk("virsh", ["-c", LXC, "undefine", VM]);
    }
    for (const br of [SWITCH, DATA]) await shOk("ovs-vsctl", ["--if-exists", "del-br", br]);
    await shOk("ip", ["link", "del", MGMT]);
    removePools(LXC, [POOL]);
    for (const s of sockets) s.destroy();
    await new Promise((r) => upstream?.close(r));
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it("a port added to the joined switch: row, NIC, then the switch's reconnection through rfboot to the upstream", async () => {
    const rec = await until(
      "record ready",
      async () => {
        const r = await record();
        return r?.state === "ready" ? r : undefined;
      },
      60_000,
    );
    VM = String(rec.vmName);
    // (Setting the controller's backoff right after set-controller makes OVS reconnect once: count from here.)
    const before = connections.length;
    expect(before).toBeGreaterThanOrEqual(1);
    const joinedBefore = (rec.joinedAt as Date).getTime();
    await addPort(3);
    const row = await until(
      "the late row",
      () =>
        mongo
          .db(DB)
          .collection("rfconfig")
          .findOne({ dp_id: dpDec, dp_port: "3" })
          .then((d) => d ?? undefined),
      20_000,
    );
    expect(row).toMatchObject({ _id: expect.stringMatching(/^rfboot:/) as string, vm_port: "3" });
    const rowSeenAt = Date.now();
    await until("the switch connected again through rfboot", () => connections.length > before, 30_000);
    // The row was in the database before the switch came back (each reconnection is a fresh registration).
    expect(connections[before]!).toBeGreaterThanOrEqual(rowSeenAt - 1_000);
    const late = await mongo.db(DB).collection("rfboot_events").find({ kind: "late-rows" }).toArray();
    expect(late).toHaveLength(1);
    expect(String(late[0]!.detail)).toMatch(/rfboot closed the switch's connection/);
    // The switch joined rfboot again: a new join after the reconnection, the VM kept (no second boot).
    const again = await until(
      "a new join",
      async () => {
        const r = await record();
        return r && (r.joinedAt as Date).getTime() > joinedBefore && r.switch?.connected ? r : undefined;
      },
      30_000,
    );
    expect(again.vmName).toBe(VM);
    expect(connections).toHaveLength(before + 1);
    expect((await sh("virsh", ["-c", LXC, "domstate", VM])).trim()).toBe("running");
  }, 120_000);
});
