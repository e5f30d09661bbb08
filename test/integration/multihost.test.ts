/**
 * Several libvirt hosts that share nothing, for real: an in-process Daemon (listen mode, real OVS switches)
 * places the VMs of four joining switches on two namespace hosts (test/helpers/netns-hosts.ts), each reached
 * only over `qemu+tcp://`, with its own libvirtd, pool and Open vSwitch, its data bridge trunked by VXLAN to a
 * trunk bridge here. rfboot uploads the guest kernel, initrd and a qcow2 base into each host's pool itself
 * (`images: pool`, `upload: true`) and boots each TCG guest from an overlay volume that exists only there; the
 * boot marker is read from the console stream over the host's URI. Then: a guest pings a guest of the other
 * host across both tunnels and dp0; a third host whose /proc/meminfo says it is nearly full is skipped
 * although its configured limit would take the VMs; an LXC VM on a namespace host reaches ready; and one
 * host's libvirtd is killed: its VMs are re-created on the survivor, and the stale copies are stopped once the
 * libvirtd is back.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig, type RfbootConfig } from "../../src/provisioner/index.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
import {
  HOST_STATE_DIR,
  addrInUse,
  hostExec,
  hostReadFile,
  libvirtdPid,
  netnsHostConfig,
  netnsHostLeftovers,
  restartNetnsLibvirtd,
  startNetnsHost,
  startNetnsHosts,
  stopNetnsHosts,
  type NetnsHost,
} from "../helpers/netns-hosts.js";
import { addSwitch, freePort, sh, shOk, until } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_mh_${TAG}`;
const DP0 = `rfmhd${TAG}`;
/** MGMT is the management bridge each host has (a Linux bridge made inside its namespaces). */
const MGMT = "rfmhm0";
const POOL = "rfboot";
const BASE = `rfmh-base-${TAG}.qcow2`;
const N = 4;
const vmName = (k: number) => `rfmh${k}${TAG}`;
const dpid = (k: number) => `d${TAG}${k}`;
const sw = (k: number) => `rfmhs${k}${TAG.slice(0, 4)}`;
const dataAddr = (k: number) => `10.77.0.${k + 1}`;
/** Guest k pings guest k+1: placement alternates the hosts, so each ping crosses from one host to the other. */
const peer = (k: number) => (k + 1) % N;
const LXC_K = 9;
/** LXC_ROOTFS is where each host has the LXC guest's busybox rootfs, writable, in its private state. */
const LXC_ROOTFS = `${HOST_STATE_DIR}/rootfs-lxc`;
/** A /proc/meminfo with 100 + 20 + 60 MiB available of 4 GiB (KiB figures, the fields libvirt reads). */
const LOW_MEMINFO = [
  "MemTotal:        4194304 kB",
  "MemFree:          102400 kB",
  "MemAvailable:     184320 kB",
  "Buffers:           20480 kB",
  "Cached:            61440 kB",
  "SwapCached:            0 kB",
  "SwapTotal:             0 kB",
  "SwapFree:              0 kB",
  "",
].join("\n");

const ENV = { LC_ALL: "C" };
const virsh = async (uri: string, args: string[]) =>
  (await execa("virsh", ["-c", uri, ...args], { env: ENV, timeout: 30_000 })).stdout;
const domstate = async (uri: string, vm: string) =>
  String(
    (await execa("virsh", ["-c", uri, "domstate", vm], { env: ENV, timeout: 30_000, reject: false })).stdout,
  ).trim();
const volumes = async (h: NetnsHost) =>
  (await virsh(h.uri, ["vol-list", POOL]))
    .split("\n")
    .slice(2)
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter(Boolean);

/** linkStats reads a kernel link's packet counters (this machine's namespace). */
async function linkStats(dev: string): Promise<{ rx: number; tx: number }> {
  const [l] = JSON.parse(await sh("ip", ["-s", "-j", "link", "show", "dev", dev])) as {
    stats64: { rx: { packets: number }; tx: { packets: number } };
  }[];
  return { rx: l!.stats64.rx.packets, tx: l!.stats64.tx.packets };
}

describeWith(["ovs", "libvirt", "mongo", "root", "netns"], "several libvirt hosts that share nothing", () => {
  let hosts: NetnsHost[] = [];
  let low: NetnsHost | undefined;
  let mongo: MongoClient;
  let stateDir = "";
  let daemon: Daemon | undefined;
  let port = 0;
  const names = new Map<string, NetnsHost>();

  const db = () => mongo.db(DB);
  const record = (k: number) =>
    db()
      .collection("rfboot_vms")
      .findOne({ _id: dpid(k).padStart(16, "0") } as never);
  const eventsOf = async (kind: string, vm?: string) =>
    (await db()
      .collection("rfboot_events")
      .find({ kind, ...(vm !== undefined ? { vm } : {}) })
      .toArray()) as unknown as { vm?: string; detail: string }[];
  const hostOf = async (k: number) => names.get(String((await record(k))?.host))!;
  const consoleText = (h: NetnsHost, k: number) => hostReadFile(h, `${h.consoleDir}/${vmName(k)}.log`);

  function config(): RfbootConfig {
    const entry = (h: NetnsHost, name: string, extra: Record<string, unknown> = {}) => ({
      ...netnsHostConfig(h, name),
      images: "pool",
      upload: true,
      pool: POOL,
      storageDir: h.storageDir,
      consoleLogDir: h.consoleDir,
      maxVms: 8,
      memoryMiB: 4096,
      ...extra,
    });
    const cmdline = (k: number) =>
      `console=ttyS0 no_timer_check rfboot.name={name} rfboot.addr=eth1:${dataAddr(k)}/24 rfboot.ping=${dataAddr(peer(k))}`;
    const datapaths: Record<string, unknown> = {};
    for (let k = 0; k < N; k++)
      datapaths[`0x${dpid(k)}`] = {
        name: vmName(k),
        vmId: `02:6d:68:00:00:0${k + 1}`,
        dataPorts: 1,
        boot: { cmdline: cmdline(k) },
      };
    // The LXC VM's rootfs is a directory (no volume stands for one): the host has its own copy.
    datapaths[`0x${dpid(LXC_K)}`] = {
      name: vmName(LXC_K),
      vmId: "06:6d:68:00:00:09",
      dataPorts: 1,
      hypervisor: "lxc",
      host: "h1-lxc",
      disk: null,
      boot: {
        type: "init",
        init: "/init",
        args: ["rfboot.name={name}"],
        rootfs: LXC_ROOTFS,
      },
    };
    return parseConfig(
      JSON.stringify({
        stateDir,
        openflow: { mode: "listen", listen: { host: "127.0.0.1", port }, versions: ["1.3"] },
        mongo: { uri: MONGO_URI, database: DB },
        hosts: [
          entry(hosts[0]!, "h1"),
          entry(hosts[1]!, "h2"),
          entry(low!, "low"),
          entry(hosts[0]!, "h1-lxc", { uri: `lxc+tcp://${hosts[0]!.addr}/system` }),
        ],
        defaults: {
          hypervisor: "qemu",
          memoryMiB: 112,
          boot: { type: "kernel", kernel: `${GUEST}/vmlinuz`, initrd: `${GUEST}/initrd.gz` },
          disk: { image: join(stateDir, BASE), format: "qcow2", prepare: "overlay" },
          network: {
            management: { type: "bridge", bridge: MGMT },
            data: { bridge: DP0, openvswitch: true },
          },
        },
        datapaths,
        policies: {
          leave: { action: "keep" },
          hostLoss: { action: "replace", afterSeconds: 3, probeSeconds: 1 },
        },
        readiness: { timeoutSeconds: 240 },
      }),
      { format: "json", source: "multihost.test" },
    );
  }

  beforeAll(async () => {
    for (const f of ["vmlinuz", "initrd.gz", "rootfs-lxc/init"])
      if (!existsSync(join(GUEST, f)))
        throw new Error(`the rftest guest is missing ${f} in ${GUEST}: run rftest/guest/build-guest.sh`);
    for (let k = 0; k < N; k++)
      if (await addrInUse(dataAddr(k)))
        throw new Error(`${dataAddr(k)} is in a network of this machine: the guests need another`);
    stateDir = mkdtempSync(join(tmpdir(), "rfbt-mh-"));
    // A small qcow2 base: the kernel-boot guest only has it attached, which is enough to prove its overlay.
    await sh("qemu-img", ["create", "-q", "-f", "qcow2", join(stateDir, BASE), "16M"]);
    mongo = await MongoClient.connect(MONGO_URI);
    // LXC needs the machine's cgroup hierarchies, which `ip netns exec`'s fresh /sys hides: they are mounted
    // again at the same places (PID 1's mounts), then cgroup2 a second time outside /sys so that it is the
    // last cgroup2 line of /proc/mounts (else libvirt tries to create a directory inside the container's sysfs).
    hosts = await startNetnsHosts(2, {
      guestDir: GUEST,
      setup: (dir) => [
        `if ! awk '$2=="/sys/fs/cgroup" && $3=="cgroup2" {f=1} END {exit !f}' /proc/1/mounts; then`,
        "  mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup",
        "fi",
        `awk '($3=="cgroup" || $3=="cgroup2") && ($2=="/sys/fs/cgroup" || index($2, "/sys/fs/cgroup/")==1) {print $3, $2, $4}' /proc/1/mounts |`,
        '  while read -r t d o; do mkdir -p "$d"; mount -t "$t" -o "$o" "$t" "$d"; done',
        `mkdir -p ${dir}/cg2`,
        `mount -t cgroup2 cgroup2 ${dir}/cg2`,
        // libvirt_lxc writes into the rootfs (its old root's mount point): the host gets a copy of its own.
        `cp -a ${HOST_STATE_DIR}/guest/rootfs-lxc ${LXC_ROOTFS}`,
      ],
    });
    low = await startNetnsHost({
      index: 3,
      setup: (dir) => {
        writeFileSync(join(dir, "meminfo"), LOW_MEMINFO);
        return [`mount --bind ${dir}/meminfo /proc/meminfo`];
      },
    });
    names.set("h1", hosts[0]!).set("h2", hosts[1]!).set("low", low).set("h1-lxc", hosts[0]!);
    for (const h of [...hosts, low]) {
      await hostExec(h, ["ip", "link", "add", MGMT, "type", "bridge"]);
      await hostExec(h, ["ip", "link", "set", MGMT, "up"]);
    }
    await sh("ovs-vsctl", [
      "add-br",
      DP0,
      "--",
      "set",
      "bridge",
      DP0,
      "datapath_type=netdev",
      "fail_mode=standalone",
    ]);
    port = await freePort();
    daemon = new Daemon({
      config: config(),
      logger: silentLogger,
      instanceId: `mh-${TAG}`,
      createController: controllerFromConfig,
    });
    await daemon.start();
  }, 300_000);

  afterAll(async () => {
    await daemon?.stop().catch(() => undefined);
    for (const k of [...Array.from({ length: N }, (_, i) => i), LXC_K])
      await shOk("ovs-vsctl", ["--if-exists", "del-br", sw(k)]);
    // Domains, volumes and pools are removed through each host's libvirtd; the namespaces go after.
    for (const h of [...hosts, ...(low ? [low] : [])]) {
      for (const uri of [h.uri, `lxc+tcp://${h.addr}/system`]) {
        const all = await execa("virsh", ["-c", uri, "list", "--all", "--name"], { env: ENV, reject: false });
        for (const vm of String(all.stdout)
          .split("\n")
          .map((s) => s.trim())
          .filter(Boolean)) {
          await shOk("virsh", ["-c", uri, "destroy", vm]);
          await shOk("virsh", ["-c", uri, "undefine", vm]);
        }
      }
      const pools = await execa("virsh", ["-c", h.uri, "pool-list", "--all", "--name"], {
        env: ENV,
        reject: false,
      });
      for (const p of String(pools.stdout)
        .split("\n")
        .map((s) => s.trim())
        .filter(Boolean)) {
        await shOk("virsh", ["-c", h.uri, "pool-destroy", p]);
        await shOk("virsh", ["-c", h.uri, "pool-delete", p]);
        await shOk("virsh", ["-c", h.uri, "pool-undefine", p]);
      }
    }
    await stopNetnsHosts([...hosts, ...(low ? [low] : [])]);
    for (const h of [...hosts, ...(low ? [low] : [])]) expect(await netnsHostLeftovers(h)).toEqual([]);
    await shOk("ovs-vsctl", ["--if-exists", "del-br", DP0]);
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }, 180_000);

  it("four switches join: their TCG guests boot on both hosts from overlays only the hosts' pools hold, ready by console", async () => {
    const t0 = Date.now();
    for (let k = 0; k < N; k++) {
      await sh("ovs-vsctl", ["add-br", sw(k), "--", "set", "bridge", sw(k), "datapath_type=netdev"]);
      await sh("ovs-vsctl", [
        "add-port",
        sw(k),
        `${sw(k)}p1`,
        "--",
        "set",
        "interface",
        `${sw(k)}p1`,
        "type=internal",
        "ofport_request=1",
      ]);
      await addSwitch(sw(k), dpid(k), port);
    }
    const recs = await until(
      "four records ready",
      async () => {
        const rs = await Promise.all(Array.from({ length: N }, (_, k) => record(k)));
        return rs.every((r) => r?.state === "ready") ? rs : undefined;
      },
      360_000,
      500,
    ).catch(async (e: unknown) => {
      const rs = await Promise.all(Array.from({ length: N }, (_, k) => record(k)));
      throw new Error(`${String(e)}; records: ${JSON.stringify(rs)}`);
    });
    console.log(`multihost: 4 joins -> all ready in ${Date.now() - t0} ms`);
    const placed = recs.map((r) => String(r!.host));
    console.log(`multihost: placement ${placed.join(", ")}`);
    expect(placed.filter((h) => h === "h1").length).toBeGreaterThanOrEqual(1);
    expect(placed.filter((h) => h === "h2").length).toBeGreaterThanOrEqual(1);
    expect(placed.every((h) => h === "h1" || h === "h2")).toBe(true);
    for (let k = 0; k < N; k++) {
      const h = names.get(placed[k]!)!;
      const vm = vmName(k);
      expect(await domstate(h.uri, vm)).toBe("running");
      // The guest files were uploaded into the host's pool by rfboot, and the overlay is a volume of it.
      const vols = await volumes(h);
      expect(vols).toEqual(expect.arrayContaining(["vmlinuz", "initrd.gz", BASE, `${vm}.qcow2`]));
      const path = (await virsh(h.uri, ["vol-path", "--pool", POOL, `${vm}.qcow2`])).trim();
      expect(path).toBe(`${h.storageDir}/${vm}.qcow2`);
      expect(existsSync(path)).toBe(false);
      expect(await hostExec(h, ["qemu-img", "info", "-U", path])).toContain(
        `backing file: ${h.storageDir}/${BASE}`,
      );
      const xml = await virsh(h.uri, ["dumpxml", vm]);
      expect(xml).toContain(`<source file='${path}'`);
      expect(xml).toContain(`<kernel>${h.storageDir}/vmlinuz</kernel>`);
      // Nothing of it on this machine's own libvirtd.
      expect((await virsh("qemu:///system", ["list", "--all", "--name"])).split("\n")).not.toContain(vm);
      const ready = await eventsOf("ready", vm);
      expect(ready.map((e) => e.detail)).toContain("console");
      expect(await consoleText(h, k)).toContain(`RFBOOT-GUEST-BOOTED name=${vm} `);
    }
  }, 420_000);

  it("a guest pings a guest on the other host: across both VXLAN trunks and dp0", async () => {
    const crossing: number[] = [];
    for (let k = 0; k < N; k++) if ((await hostOf(k)) !== (await hostOf(peer(k)))) crossing.push(k);
    expect(crossing.length).toBeGreaterThanOrEqual(1);
    const before = await Promise.all(hosts.map((h) => linkStats(h.rootVxlan)));
    const okCount = async (k: number) =>
      (
        (await consoleText(await hostOf(k), k)).match(
          new RegExp(`RFBOOT-PING to=${dataAddr(peer(k))} ok`, "g"),
        ) ?? []
      ).length;
    const start = await Promise.all(crossing.map(okCount));
    await until(
      "three more answered pings from each guest whose peer is on the other host",
      async () => (await Promise.all(crossing.map(okCount))).every((n, i) => n >= start[i]! + 3),
      120_000,
      500,
    );
    for (const [i, h] of hosts.entries()) {
      const after = await linkStats(h.rootVxlan);
      expect(after.rx - before[i]!.rx).toBeGreaterThanOrEqual(3);
      expect(after.tx - before[i]!.tx).toBeGreaterThanOrEqual(3);
    }
    // Each crossing NIC is a dp0 port here, linked to its host's trunk bridge by rfboot's patch pair.
    for (const k of crossing) {
      expect((await sh("ovs-vsctl", ["port-to-br", `${vmName(k)}.1`])).trim()).toBe(DP0);
      expect((await sh("ovs-vsctl", ["port-to-br", `${vmName(k)}.1t`])).trim()).toBe(
        (await hostOf(k)).trunkBridge,
      );
    }
    const rtts = [
      ...(await consoleText(await hostOf(crossing[0]!), crossing[0]!)).matchAll(
        /RFBOOT-PING to=\S+ ok rtt_ms=([\d.]+)/g,
      ),
    ].map((m) => Number(m[1]));
    console.log(
      `multihost: crossing pings from ${crossing.map(vmName).join(", ")}; rtt ms ${rtts.slice(-5).join(" ")}`,
    );
  }, 180_000);

  it("a host whose reported free memory is too small is skipped although its configured limit allows the VMs", async () => {
    expect(await virsh(low!.uri, ["nodememstats"])).toMatch(/free\s*:\s*102400 KiB/);
    for (let k = 0; k < N; k++) {
      const [p] = await eventsOf("placement", vmName(k));
      expect(p?.detail).toMatch(/^on h[12] \(/);
      expect(p?.detail).toMatch(
        /low: host reports 180 MiB available of \d+ MiB \(reserve \d+ MiB\): 0 \+ 112 > 0 MiB/,
      );
    }
    expect((await virsh(low!.uri, ["list", "--all", "--name"])).trim()).toBe("");
  });

  it("an LXC VM on a namespace host reaches ready by its console marker over lxc+tcp", async () => {
    const t0 = Date.now();
    await sh("ovs-vsctl", ["add-br", sw(LXC_K), "--", "set", "bridge", sw(LXC_K), "datapath_type=netdev"]);
    await sh("ovs-vsctl", [
      "add-port",
      sw(LXC_K),
      `${sw(LXC_K)}p1`,
      "--",
      "set",
      "interface",
      `${sw(LXC_K)}p1`,
      "type=internal",
      "ofport_request=1",
    ]);
    await addSwitch(sw(LXC_K), dpid(LXC_K), port);
    const rec = await until(
      "LXC record ready",
      async () => {
        const r = await record(LXC_K);
        return r?.state === "ready" ? r : undefined;
      },
      120_000,
      500,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}; record: ${JSON.stringify(await record(LXC_K))}`);
    });
    console.log(`multihost: LXC join -> ready in ${Date.now() - t0} ms`);
    expect(rec).toMatchObject({ host: "h1-lxc", hypervisor: "lxc", vmName: vmName(LXC_K) });
    expect(await domstate(`lxc+tcp://${hosts[0]!.addr}/system`, vmName(LXC_K))).toBe("running");
    expect((await eventsOf("ready", vmName(LXC_K))).map((e) => e.detail)).toContain("console");
  }, 180_000);

  it("one host's libvirtd is killed: its VMs are re-created on the other host, stale copies stopped when it is back", async () => {
    const lost = hosts[1]!;
    const survivor = hosts[0]!;
    const moved: number[] = [];
    for (let k = 0; k < N; k++) if ((await record(k))?.host === "h2") moved.push(k);
    expect(moved.length).toBeGreaterThanOrEqual(1);
    const t0 = Date.now();
    process.kill(libvirtdPid(lost), "SIGKILL");
    await until(
      "the lost host's VMs ready on the survivor",
      async () => {
        const rs = await Promise.all(moved.map(record));
        return rs.every((r) => r?.host === "h1" && r.state === "ready") ? rs : undefined;
      },
      300_000,
      500,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}; records: ${JSON.stringify(await Promise.all(moved.map(record)))}`);
    });
    console.log(
      `multihost: libvirtd killed -> ${moved.length} VMs ready on the survivor in ${Date.now() - t0} ms`,
    );
    expect((await eventsOf("host-lost")).some((e) => e.detail.startsWith("h2:"))).toBe(true);
    const vols = await volumes(survivor);
    for (const k of moved) {
      expect(vols).toContain(`${vmName(k)}.qcow2`);
      expect(await domstate(survivor.uri, vmName(k))).toBe("running");
      expect((await eventsOf("replace", vmName(k))).length).toBeGreaterThanOrEqual(1);
    }
    // The old copies kept running while their libvirtd was gone; once it is back, rfboot stops them.
    const t1 = Date.now();
    await restartNetnsLibvirtd(lost);
    for (const k of moved)
      await until(
        `the stale ${vmName(k)} stopped on h2`,
        async () => {
          const s = await domstate(lost.uri, vmName(k));
          return s !== "running" && s !== "paused" && s !== "" ? s : undefined;
        },
        120_000,
        500,
      );
    console.log(`multihost: libvirtd back -> stale copies stopped in ${Date.now() - t1} ms`);
    for (const k of moved) expect(await domstate(survivor.uri, vmName(k))).toBe("running");
  }, 480_000);
});
