/**
 * Two remote libvirt hosts for real (test/helpers/netns-hosts.ts): each in its own network and mount
 * namespace, reached over `qemu+tcp://`, with its own Open vSwitch whose bridge `br-rf` is trunked over a
 * kernel VXLAN to a trunk bridge on this machine's Open vSwitch. On each host a TCG guest boots from the
 * rftest kernel and initrd (bound read-only into the host) with one data NIC on `br-rf`, tagged: libvirt
 * makes it an access port of that VLAN. On this machine each tag is linked by a patch-port pair to its own
 * port of a dp0-like bridge (named like the NIC's device), as RouteFlow's dp0 has one port per VM NIC. The
 * guests ping each other; the pings must cross both tunnels (VXLAN counters, the trunk bridges' MAC tables
 * on the tags). The hosts' storage is invisible here, and nothing is left afterwards.
 */
import { execa } from "execa";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseConfig } from "../../src/provisioner/index.js";
import { REPO, describeWith } from "../helpers/env.js";
import {
  HOST_STATE_DIR,
  addrInUse,
  hostExec,
  hostReadFile,
  netnsHostConfig,
  netnsHostLeftovers,
  startNetnsHosts,
  stopNetnsHosts,
  type NetnsHost,
} from "../helpers/netns-hosts.js";
import { sh, shOk, until } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const PID = process.pid;
const DP0 = `rfdp-${PID}`;
/**
 * The guests' data addresses live only inside the guests and on the test's bridges, in the benchmarking range
 * (198.18.0.0/15); the test checks that this machine has none of them (it would answer the probe's ARP).
 */
const DATA_NET = `198.18.${PID % 250}`;
const DATA = [`${DATA_NET}.1`, `${DATA_NET}.2`] as const;
/** A probe on dp0 (a veth into a namespace of the test's): pings each guest across one tunnel, with iputils' precision. */
const PROBE_NS = `rfbt-nhp-${PID}`;
const PROBE_VETH = `rfpr-${PID}`;
const PROBE_ADDR = `${DATA_NET}.3`;
const TAGS = [101, 102] as const;
const vmName = (k: number) => `rfnv${k + 1}-${PID}`;
const nicDev = (k: number) => `${vmName(k)}.1`;
const trunkPatch = (k: number) => `${vmName(k)}.t`;
const mac = (k: number) => `02:5e:00:00:0${k + 1}:01`;
const consoleLog = (k: number) => `${HOST_STATE_DIR}/console/${vmName(k)}.log`;

function domainXml(host: NetnsHost, k: number): string {
  const peer = DATA[1 - k]!;
  const cmdline = `console=ttyS0 no_timer_check rfboot.name=${vmName(k)} rfboot.addr=eth0:${DATA[k]}/24 rfboot.ping=${peer}`;
  return `<domain type='qemu'>
  <name>${vmName(k)}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>${host.guestDir}/vmlinuz</kernel>
    <initrd>${host.guestDir}/initrd.gz</initrd>
    <cmdline>${cmdline}</cmdline>
  </os>
  <devices>
    <interface type='bridge'>
      <mac address='${mac(k)}'/>
      <source bridge='${host.bridge}'/>
      <virtualport type='openvswitch'/>
      <vlan><tag id='${TAGS[k]}'/></vlan>
      <target dev='${nicDev(k)}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='${consoleLog(k)}' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
`;
}

/** ovsPortStats reads `rx pkts` and `tx pkts` of one port from `ovs-ofctl dump-ports` (outside any host). */
async function ovsPortStats(bridge: string, port: string): Promise<{ rx: number; tx: number }> {
  const out = await sh("ovs-ofctl", ["dump-ports", bridge, port]);
  const rx = /rx pkts=(\d+)/.exec(out);
  const tx = /tx pkts=(\d+)/.exec(out);
  return { rx: Number(rx?.[1] ?? NaN), tx: Number(tx?.[1] ?? NaN) };
}

/** linkStats reads a kernel link's packet counters (this machine's namespace). */
async function linkStats(dev: string): Promise<{ rx: number; tx: number }> {
  const [l] = JSON.parse(await sh("ip", ["-s", "-j", "link", "show", "dev", dev])) as {
    stats64: { rx: { packets: number }; tx: { packets: number } };
  }[];
  return { rx: l!.stats64.rx.packets, tx: l!.stats64.tx.packets };
}

/** qemuOf lists the pids of QEMU processes running domain `vm`, on any host. */
function qemuOf(vm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, "latin1").split("\0");
      if (argv[0]?.includes("qemu-system") && argv.includes(`guest=${vm},debug-threads=on`))
        out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

describeWith(
  ["ovs", "libvirt", "root", "netns", "sshd"],
  "two remote hosts in namespaces, data plane over VXLAN",
  () => {
    let hosts: NetnsHost[] = [];
    let tmp = "";
    let stopped = false;

    const teardown = async () => {
      await stopNetnsHosts(hosts);
      if ((await sh("ip", ["netns", "list"])).split("\n").some((l) => l.split(" ")[0] === PROBE_NS))
        await sh("ip", ["netns", "del", PROBE_NS]);
      await shOk("ip", ["link", "del", PROBE_VETH]);
      await shOk("ovs-vsctl", ["--if-exists", "del-br", DP0]);
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    };

    beforeAll(async () => {
      await execa("bash", [join(REPO, "rftest/guest/build-guest.sh"), GUEST], { timeout: 600_000 });
      for (const a of [...DATA, PROBE_ADDR])
        if (await addrInUse(a))
          throw new Error(`${a} is in a network of this machine: the guests need another`);
      tmp = mkdtempSync(join(tmpdir(), "rfbt-nh-"));
      hosts = await startNetnsHosts(2, { guestDir: GUEST, ssh: true });
      console.log(`netns hosts up: ${hosts.map((h) => `${h.name} ${h.uri} in ${h.startMs} ms`).join(", ")}`);
      // The dp0-like bridge, and per VM NIC a patch pair: trunk side an access port of the NIC's tag, dp0 side
      // named like the NIC's device. No controller: both bridges switch by MAC learning (standalone).
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
      for (const [k, h] of hosts.entries()) {
        await sh("ovs-vsctl", [
          "add-port",
          h.trunkBridge,
          trunkPatch(k),
          `tag=${TAGS[k]}`,
          "--",
          "set",
          "interface",
          trunkPatch(k),
          "type=patch",
          `options:peer=${nicDev(k)}`,
          "--",
          "add-port",
          DP0,
          nicDev(k),
          "--",
          "set",
          "interface",
          nicDev(k),
          "type=patch",
          `options:peer=${trunkPatch(k)}`,
        ]);
      }
    }, 600_000);

    afterAll(async () => {
      if (!stopped) await teardown();
    }, 120_000);

    it("each host is a machine of its own: own libvirtd over TCP, own OVS, storage the test cannot see", async () => {
      for (const h of hosts) {
        expect((await sh("virsh", ["-c", h.uri, "uri"])).trim()).toBe(h.uri);
        // The same libvirtd over ssh (key auth, the host key pinned): it answers with the host's name.
        expect((await sh("virsh", ["-c", h.sshUri!, "hostname"])).trim()).toBe(
          (await sh("virsh", ["-c", h.uri, "hostname"])).trim(),
        );
        expect((await sh("virsh", ["-c", h.uri, "list", "--all", "--name"])).trim()).toBe("");
        // The test driver answers over TCP too (the hosts' own libvirtd, not a client-side one).
        expect((await sh("virsh", ["-c", h.testUri, "list", "--all", "--name"])).trim()).toBe("test");
        // Its ovsdb is not this machine's: another database, and only the host's bridge in it.
        const own = (await hostExec(h, ["ovs-vsctl", "get", "Open_vSwitch", ".", "_uuid"])).trim();
        expect(own).not.toBe((await sh("ovs-vsctl", ["get", "Open_vSwitch", ".", "_uuid"])).trim());
        expect((await hostExec(h, ["ovs-vsctl", "list-br"])).trim()).toBe(h.bridge);
        expect((await hostExec(h, ["ovs-vsctl", "list-ports", h.bridge])).trim()).toBe(h.trunkPort);
        // A file in the host's storage directory exists there, and not here at the same path.
        const probe = `probe-${h.name}`;
        await hostExec(h, ["touch", `${h.storageDir}/${probe}`]);
        expect((await hostExec(h, ["ls", h.storageDir])).split("\n")).toContain(probe);
        expect(existsSync(join(h.storageDir, probe))).toBe(false);
        // The guest files are there read-only.
        expect((await hostExec(h, ["ls", h.guestDir!])).split("\n")).toEqual(
          expect.arrayContaining(["vmlinuz", "initrd.gz"]),
        );
        const ro = await execa("nsenter", ["-t", String(h.pid), "-m", "--", "touch", `${h.guestDir}/w`], {
          reject: false,
        });
        expect(ro.stderr).toMatch(/Read-only file system/);
      }
    });

    it("the hosts' rfboot config entries parse, and their disk and console defaults are the hosts' private dirs", () => {
      const config = parseConfig(
        JSON.stringify({
          hosts: hosts.map((h) => netnsHostConfig(h)),
          defaults: { network: { data: { bridge: DP0, openvswitch: true } } },
          datapaths: { "0x5": { name: "rfvmA", vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } },
        }),
        { format: "json", source: "netns-hosts.test" },
      );
      expect(config.hosts.map((h) => [h.uri, h.images, h.dataPlane, h.storageDir, h.consoleLogDir])).toEqual(
        hosts.map((h) => [
          h.uri,
          "path",
          { trunkBridge: h.trunkBridge, bridge: h.bridge },
          h.storageDir,
          h.consoleDir,
        ]),
      );
    });

    it("a guest on each host, data NIC tagged on br-rf: they ping each other across both VXLAN trunks", async () => {
      const before = await Promise.all(hosts.map((h) => linkStats(h.rootVxlan)));
      const t0 = Date.now();
      for (const [k, h] of hosts.entries()) {
        const file = join(tmp, `${vmName(k)}.xml`);
        writeFileSync(file, domainXml(h, k));
        // The first host is driven over TCP, the second over ssh.
        await sh("virsh", ["-c", k === 0 ? h.uri : h.sshUri!, "create", file]);
      }
      const created = Date.now() - t0;
      // libvirt plugged each NIC into the host's own bridge as an access port of its tag; nothing on this machine.
      for (const [k, h] of hosts.entries()) {
        expect((await hostExec(h, ["ovs-vsctl", "port-to-br", nicDev(k)])).trim()).toBe(h.bridge);
        expect((await hostExec(h, ["ovs-vsctl", "get", "port", nicDev(k), "tag"])).trim()).toBe(
          String(TAGS[k]),
        );
        expect((await sh("ovs-vsctl", ["port-to-br", nicDev(k)])).trim()).toBe(DP0);
        expect(
          (await sh("virsh", ["-c", "qemu:///system", "list", "--all", "--name"])).split("\n"),
        ).not.toContain(vmName(k));
      }
      // Both directions: each guest's console (read inside its host) reports an answered ping.
      const logs = await until(
        "both guests' pings answered",
        async () => {
          const texts = await Promise.all(hosts.map((h, k) => hostReadFile(h, consoleLog(k))));
          return texts.every((t, k) => t.includes(`RFBOOT-PING to=${DATA[1 - k]} ok`)) ? texts : undefined;
        },
        150_000,
        250,
      );
      const firstOk = Date.now() - t0;
      for (const [k, text] of logs.entries()) {
        expect(text).toContain(`RFBOOT-GUEST-BOOTED name=${vmName(k)} `);
        expect(text).toContain(`RFBOOT-NIC name=eth0 mac=${mac(k)}`);
      }
      // Let a few more pings through, then read the round trips of the answered ones.
      await until(
        "five answered pings from the first guest",
        async () =>
          ((await hostReadFile(hosts[0]!, consoleLog(0))).match(/RFBOOT-PING to=\S+ ok/g) ?? []).length >= 5,
        30_000,
        250,
      );
      const rtts = [
        ...(await hostReadFile(hosts[0]!, consoleLog(0))).matchAll(/RFBOOT-PING to=\S+ ok rtt_ms=([\d.]+)/g),
      ].map((m) => Number(m[1]));
      expect(rtts.length).toBeGreaterThanOrEqual(5);

      // The frames crossed the tunnels: the kernel VXLAN devices here decapsulated and encapsulated, OVS counted
      // them on the trunk bridges' VXLAN ports and on dp0's two patch ports.
      for (const [k, h] of hosts.entries()) {
        const after = await linkStats(h.rootVxlan);
        expect(after.rx - before[k]!.rx).toBeGreaterThanOrEqual(5);
        expect(after.tx - before[k]!.tx).toBeGreaterThanOrEqual(5);
        const vx = await ovsPortStats(h.trunkBridge, h.rootVxlan);
        expect(vx.rx).toBeGreaterThanOrEqual(5);
        expect(vx.tx).toBeGreaterThanOrEqual(5);
        const dp = await ovsPortStats(DP0, nicDev(k));
        expect(dp.rx).toBeGreaterThanOrEqual(5);
        expect(dp.tx).toBeGreaterThanOrEqual(5);
        // Tagged on the trunk: the trunk bridge learnt the guest's MAC on the VXLAN port, in the NIC's VLAN.
        const fdb = await sh("ovs-appctl", ["fdb/show", h.trunkBridge]);
        const vxOfport = (await sh("ovs-vsctl", ["get", "interface", h.rootVxlan, "ofport"])).trim();
        expect(fdb).toMatch(new RegExp(`^\\s*${vxOfport}\\s+${TAGS[k]}\\s+${mac(k)}\\s`, "m"));
      }
      console.log(
        `netns data plane: create ${created} ms, first answered pings both ways ${firstOk} ms after create; ` +
          `rtt across the tunnels median ${median(rtts)} ms (min ${Math.min(...rtts)}, max ${Math.max(...rtts)}, n=${rtts.length})`,
      );
    }, 240_000);

    it("a probe on dp0 reaches each guest across its host's tunnel (round trips measured by iputils ping)", async () => {
      await sh("ip", ["netns", "add", PROBE_NS]);
      await sh("ip", ["link", "add", PROBE_VETH, "type", "veth", "peer", "name", "eth0", "netns", PROBE_NS]);
      await sh("ip", ["link", "set", PROBE_VETH, "up"]);
      await sh("ip", ["-n", PROBE_NS, "addr", "add", `${PROBE_ADDR}/24`, "dev", "eth0"]);
      await sh("ip", ["-n", PROBE_NS, "link", "set", "eth0", "up"]);
      await sh("ovs-vsctl", ["add-port", DP0, PROBE_VETH]);
      const summary: string[] = [];
      for (const [k, addr] of DATA.entries()) {
        const out = await sh("ip", [
          "netns",
          "exec",
          PROBE_NS,
          "ping",
          "-n",
          "-c",
          "20",
          "-i",
          "0.2",
          "-W",
          "2",
          addr,
        ]);
        const loss = /(\d+)% packet loss/.exec(out);
        const rtt = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
        expect(Number(loss?.[1])).toBeLessThanOrEqual(10);
        expect(rtt).not.toBeNull();
        summary.push(`${vmName(k)} min ${rtt![1]} avg ${rtt![2]} max ${rtt![3]} ms, loss ${loss![1]}%`);
      }
      console.log(`netns probe on dp0 -> guest across one tunnel: ${summary.join("; ")}`);
    }, 60_000);

    it("stopping the hosts leaves nothing: processes, namespaces, links, bridges, directories", async () => {
      stopped = true;
      const t0 = Date.now();
      await teardown();
      console.log(`netns hosts stopped in ${Date.now() - t0} ms`);
      for (const h of hosts) expect(await netnsHostLeftovers(h)).toEqual([]);
      expect((await sh("ip", ["netns", "list"])).split("\n").map((l) => l.split(" ")[0])).not.toContain(
        PROBE_NS,
      );
      expect((await execa("ip", ["link", "show", "dev", PROBE_VETH], { reject: false })).exitCode).not.toBe(
        0,
      );
      for (const k of hosts.keys()) expect(qemuOf(vmName(k))).toEqual([]);
      expect((await execa("ovs-vsctl", ["br-exists", DP0], { reject: false })).exitCode).toBe(2);
      expect((await sh("ovs-vsctl", ["list-ports", hosts[0]!.trunkBridge]).catch(() => "gone")).trim()).toBe(
        "gone",
      );
    }, 120_000);
  },
);
