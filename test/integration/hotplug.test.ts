/**
 * Data NIC hot-plug on the real libvirtd: a template VM resolved from an inline config (data bridge = a
 * test-own netdev OVS bridge, never the demo's dp0) is defined and started with one data NIC; a port added
 * to its switch plans eth2, and NicHotplug attaches it live and to the definition: `virsh domiflist` and
 * `dumpxml --inactive` show it, OVS has `<vm>.2` as a port of the bridge; a second attach changes nothing;
 * the deleted port under `detach` removes it everywhere. Done for a qemu (TCG) guest and an LXC container
 * (whose network namespace is checked for the MAC), and for libvirt's test driver, which has no
 * attach-device: the `hotplug-unsupported` error is provoked for real. The `<interface>` document is
 * validated against libvirt's own RelaxNG grammar. Names start with `rfbth`; all removed in afterAll.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseConfig, resolveDatapath, type RfbootConfig } from "../../src/provisioner/config/index.js";
import { NicHotplug } from "../../src/provisioner/libvirt/hotplug.js";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import { planPortChange, type PortChange } from "../../src/provisioner/port-change.js";
import { createSpawnRunner, isHotplugUnsupported } from "../../src/provisioner/libvirt/virsh.js";
import { VirshError } from "../../src/common/errors.js";
import { buildDomainXml, buildInterfaceXml, type VmDescription } from "../../src/xmlgen/index.js";
import { describeWith, REPO } from "../helpers/env.js";
import { SAMPLES } from "../unit/xmlgen/samples.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
/** Per-run directory (world-readable so the qemu user can read what the domain uses). */
const RUN = `/var/lib/rfboot/rfbth-${process.pid}`;
const OVS_BR = `rfbth-dp${process.pid % 10000}`;
const MGMT_BR = `rfbth-mg${process.pid % 10000}`;
const QEMU = "qemu:///system";
const LXC = "lxc:///system";
/** A dpid of this run only: the VM names (`rfbthq<dpid>`, `rfbthl<dpid>`) are unique too. */
const DPID = BigInt(0x10000 + (process.pid % 0xeffff));

const run = createSpawnRunner();
const hp = new NicHotplug({ run });
const managers: DomainManager[] = [];
const created: { mgr: DomainManager; name: string }[] = [];

function configFor(kind: "qemu" | "lxc", portDeleted: "keep" | "detach"): RfbootConfig {
  const vmSettings =
    kind === "qemu"
      ? `hypervisor: qemu
      boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check quiet rfboot.name={name}" }`
      : `hypervisor: lxc
      boot: { type: init, init: /init, rootfs: ${RUN}/rootfs-lxc, args: ["rfboot.name={name}"] }`;
  return parseConfig(`
stateDir: ${RUN}
hosts: [{ name: h, uri: "${kind === "qemu" ? QEMU : LXC}", storageDir: ${RUN}, consoleLogDir: ${RUN} }]
defaults:
  network:
    management: { type: bridge, bridge: ${MGMT_BR} }
    data: { bridge: ${OVS_BR}, openvswitch: true }
policies:
  portDeleted: { action: ${portDeleted} }
  unknownDatapath:
    action: template
    template:
      name: "rfbth${kind[0]}{dpid}"
      memoryMiB: ${kind === "qemu" ? 128 : 64}
      ${vmSettings}
`);
}

async function virsh(uri: string, ...args: string[]): Promise<string> {
  const r = await execa("virsh", ["-c", uri, ...args], {
    env: { LC_ALL: "C" },
    reject: false,
    timeout: 60_000,
  });
  if (r.exitCode !== 0) throw new Error(`virsh -c ${uri} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** ovsPorts lists the test bridge's ports that belong to VM `vm` (`<vm>.<N>`), sorted. */
async function ovsPorts(vm: string): Promise<string[]> {
  const r = await execa("ovs-vsctl", ["--timeout=5", "list-ports", OVS_BR], { reject: false });
  return r.stdout
    .split("\n")
    .filter((p) => p.startsWith(`${vm}.`))
    .sort();
}

async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

function readOr(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** ensureLxcCgroupMount adds the second cgroup2 mount libvirt's LXC driver needs on this host. */
async function ensureLxcCgroupMount(): Promise<void> {
  const cg2 = readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[2] === "cgroup2");
  if (cg2.length > 0 && cg2[cg2.length - 1]![1] === "/run/cg2") return;
  mkdirSync("/run/cg2", { recursive: true });
  await execa("mount", ["-t", "cgroup2", "cgroup2", "/run/cg2"]);
}

/** containerInit finds the LXC container's init (`/bin/sh /init rfboot.name=NAME`) by its command line. */
function containerInit(name: string): number | undefined {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = readOr(`/proc/${d}/cmdline`).split("\0");
    if (cmd.includes("/init") && cmd.includes(`rfboot.name=${name}`) && !cmd[0]!.includes("libvirt_lxc"))
      return Number(d);
  }
  return undefined;
}

/** start defines and starts the template VM of DPID with switch ports [1] through DomainManager. */
async function start(kind: "qemu" | "lxc") {
  const config = configFor(kind, "detach");
  const host = config.hosts[0]!;
  const vm = resolveDatapath(config, DPID, [1])!;
  expect(vm.ports.map((p) => p.hostDev)).toEqual([`${vm.name}.1`]);
  const mgr = new DomainManager({ host: { name: host.name, uri: host.uri }, run });
  managers.push(mgr);
  created.push({ mgr, name: vm.name });
  const r = await mgr.ensureRunning({ name: vm.name, xml: buildDomainXml(vm.describe(host)) });
  expect(r.action).toBe("defined+started");
  return { config, host, vm };
}

type Attach = Extract<PortChange, { action: "attach" }>;

describeWith(["libvirt", "ovs", "root"], "data NIC hot-plug on a real libvirtd", () => {
  beforeAll(async () => {
    await execa("bash", [join(REPO, "rftest/guest/build-guest.sh"), GUEST], { timeout: 600_000 });
    mkdirSync(RUN, { recursive: true, mode: 0o755 });
    await execa("ovs-vsctl", [
      "--timeout=5",
      "--may-exist",
      "add-br",
      OVS_BR,
      "--",
      "set",
      "bridge",
      OVS_BR,
      "datapath_type=netdev",
    ]);
    await execa("ip", ["link", "add", MGMT_BR, "type", "bridge"], { reject: false });
    await execa("ip", ["link", "set", MGMT_BR, "up"]);
  }, 600_000);

  afterAll(async () => {
    for (const { mgr, name } of created.reverse()) await mgr.remove(name).catch(() => undefined);
    for (const m of managers) await m.dispose();
    await hp.dispose();
    await execa("ovs-vsctl", ["--timeout=5", "--if-exists", "del-br", OVS_BR], { reject: false });
    await execa("ip", ["link", "del", MGMT_BR], { reject: false });
    rmSync(RUN, { recursive: true, force: true });
  }, 120_000);

  it("qemu (TCG): eth2 attached live and persistently, plugged into OVS, then detached", async () => {
    const { config, host, vm } = await start("qemu");
    const log = join(RUN, `${vm.name}.log`);
    await waitFor(() => readOr(log).includes(`RFBOOT-GUEST-BOOTED name=${vm.name} `), 90_000, "boot marker");
    expect(readOr(log)).toContain(`RFBOOT-NIC name=eth1 mac=${vm.ports[0]!.mac}`);
    expect(await ovsPorts(vm.name)).toEqual([`${vm.name}.1`]);

    const plan = planPortChange({ config, vm, host, event: { reason: "add", port: { no: 2 } } });
    expect(plan).toMatchObject({
      action: "attach",
      existing: false,
      nic: { vmPort: 2, hostDev: `${vm.name}.2` },
    });
    const { nic, row, vm: next } = plan as Attach;
    expect(row).toEqual({
      vm_id: vm.vmId.toString(),
      vm_port: "2",
      ct_id: "0",
      dp_id: DPID.toString(),
      dp_port: "2",
    });

    const t0 = Date.now();
    const r = await hp.attachDataNic(QEMU, vm.name, nic);
    const attachMs = Date.now() - t0;
    expect(r).toMatchObject({
      action: "attached",
      flags: ["--live", "--config"],
      running: true,
      domainType: "qemu",
    });
    const iflist = await virsh(QEMU, "domiflist", vm.name);
    expect(iflist).toMatch(new RegExp(`${vm.name}\\.2\\s+bridge\\s+${OVS_BR}\\s+virtio\\s+${nic.mac}`));
    expect(await virsh(QEMU, "dumpxml", "--inactive", vm.name)).toContain(`<mac address='${nic.mac}'/>`);
    expect(await ovsPorts(vm.name)).toEqual([`${vm.name}.1`, `${vm.name}.2`]);
    // The definition now equals what a join with ports [1, 2] would define (its NICs, in order).
    const inactive = await virsh(QEMU, "dumpxml", "--inactive", vm.name);
    const macs = [...inactive.matchAll(/<mac address='([^']+)'/g)].map((m) => m[1]);
    expect(macs).toEqual(next.describe(host).interfaces.map((n) => n.mac));

    const again = await hp.attachDataNic(QEMU, vm.name, nic);
    expect(again.action).toBe("unchanged");

    const del = planPortChange({ config, vm: next, host, event: { reason: "delete", port: { no: 2 } } });
    expect(del).toMatchObject({ action: "detach", nic: { mac: nic.mac }, row });
    const t1 = Date.now();
    const d = await hp.detachDataNic(QEMU, vm.name, nic);
    const detachMs = Date.now() - t1;
    expect(d).toMatchObject({ action: "detached", flags: ["--live", "--config"] });
    // The booted guest acknowledges the ACPI unplug; if it has not yet, it does within seconds.
    await waitFor(async () => !(await virsh(QEMU, "domiflist", vm.name)).includes(nic.mac), 15_000, "unplug");
    expect(await virsh(QEMU, "dumpxml", "--inactive", vm.name)).not.toContain(nic.mac);
    await waitFor(async () => (await ovsPorts(vm.name)).length === 1, 10_000, "OVS port removal");
    expect(await ovsPorts(vm.name)).toEqual([`${vm.name}.1`]);
    expect((await hp.detachDataNic(QEMU, vm.name, nic)).action).toBe("unchanged");
    console.log(`[hotplug] qemu: attach ${attachMs} ms, detach ${detachMs} ms (pending=${d.pending})`);
  }, 180_000);

  it("lxc: eth2 attached live and persistently (the container sees its MAC), then detached", async () => {
    await ensureLxcCgroupMount();
    cpSync(join(GUEST, "rootfs-lxc"), join(RUN, "rootfs-lxc"), { recursive: true, verbatimSymlinks: true });
    const { config, host, vm } = await start("lxc");
    const guestLog = join(RUN, "rootfs-lxc/var/log/rfboot-guest.log");
    await waitFor(() => readOr(guestLog).includes(`RFBOOT-GUEST-BOOTED name=${vm.name} `), 30_000, "marker");
    const pid = containerInit(vm.name);
    expect(pid).toBeDefined();
    const links = async () =>
      (await execa("nsenter", ["-t", String(pid), "-n", "ip", "-o", "link"], { reject: false })).stdout;

    const plan = planPortChange({ config, vm, host, event: { reason: "add", port: { no: 2 } } });
    const { nic } = plan as Attach;
    expect(nic.xml).not.toContain("<model");
    const r = await hp.attachDataNic(LXC, vm.name, nic);
    expect(r).toMatchObject({ action: "attached", flags: ["--live", "--config"], domainType: "lxc" });
    expect(r.message).toMatch(/names it vnetN \(link down\): it is eth2 after the container's next start/);
    expect(await virsh(LXC, "domiflist", vm.name)).toMatch(
      new RegExp(`${vm.name}\\.2\\s+bridge\\s+${OVS_BR}\\s+-\\s+${nic.mac}`),
    );
    expect(await virsh(LXC, "dumpxml", "--inactive", vm.name)).toContain(`<mac address='${nic.mac}'/>`);
    expect(await ovsPorts(vm.name)).toEqual([`${vm.name}.1`, `${vm.name}.2`]);
    // Inside the container: the MAC is there, under the driver's own name (libvirt 9.0), not eth2.
    const inside = (await links()).split("\n").find((l) => l.includes(nic.mac));
    expect(inside).toBeDefined();
    const guestName = /^\d+: ([^:@]+)/.exec(inside!)?.[1];
    console.log(`[hotplug] lxc: the running container sees ${nic.mac} as ${guestName}`);
    expect(guestName).toMatch(/^vnet\d+$/);
    expect((await hp.attachDataNic(LXC, vm.name, nic)).action).toBe("unchanged");

    const d = await hp.detachDataNic(LXC, vm.name, nic);
    expect(d).toMatchObject({ action: "detached", flags: ["--live", "--config"], pending: false });
    expect(await virsh(LXC, "domiflist", vm.name)).not.toContain(nic.mac);
    expect(await virsh(LXC, "dumpxml", "--inactive", vm.name)).not.toContain(nic.mac);
    expect(await links()).not.toContain(nic.mac);
    expect(await ovsPorts(vm.name)).toEqual([`${vm.name}.1`]);
  }, 120_000);

  it("test driver: no attach-device at all: hotplug-unsupported, provoked for real", async () => {
    // test:///default lives inside each virsh process: its built-in running domain `test` is there every call.
    const nic = { vmPort: 1, mac: SAMPLES.test.interfaces[1]!.mac, xml: buildInterfaceXml(SAMPLES.test, 1) };
    const e = await hp.attachDataNic("test:///default", "test", nic).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VirshError);
    expect(isHotplugUnsupported(e)).toBe(true);
    expect((e as VirshError).message).toMatch(
      /libvirt's test driver refuses it \(this function is not supported by the connection driver: virDomainAttachDeviceFlags\); the NIC is added when rfboot next defines and starts the domain/,
    );
  }, 60_000);
});

describeWith(["virt-xml-validate"], "the <interface> document against libvirt's grammar", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbth-rng-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("every driver's data NIC validates with libvirt's `interface` definition as the start; a bad one does not", async () => {
    // libvirt ships no grammar for a lone device: start its domain grammar at the `interface` definition.
    const rng = join(dir, "interface.rng");
    writeFileSync(
      rng,
      `<?xml version="1.0"?>\n<grammar xmlns="http://relaxng.org/ns/structure/1.0" datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">\n  <start><ref name="interface"/></start>\n  <include href="/usr/share/libvirt/schemas/domainoverrides.rng"/>\n</grammar>\n`,
    );
    const validate = async (xml: string, name: string) => {
      const f = join(dir, `${name}.xml`);
      writeFileSync(f, xml);
      return (await execa("xmllint", ["--noout", "--relaxng", rng, f], { reject: false })).exitCode;
    };
    for (const [h, vm] of Object.entries(SAMPLES) as [string, VmDescription][]) {
      for (let i = 0; i < vm.interfaces.length; i++) {
        expect(await validate(buildInterfaceXml(vm, i), `${h}-${i}`), `${h} NIC ${i}`).toBe(0);
      }
    }
    // A data NIC of a VM on a data-plane host: an Open vSwitch port with its VLAN tag.
    const q = SAMPLES.qemu;
    const tagged: VmDescription = {
      ...q,
      interfaces: q.interfaces.map((n, i) =>
        i === 1 && n.type === "bridge" ? { ...n, vlan: { tag: 4094 } } : n,
      ),
    };
    expect(await validate(buildInterfaceXml(tagged, 1), "qemu-vlan")).toBe(0);
    const bad = buildInterfaceXml(SAMPLES.qemu, 1).replace("02:b1", "03:b1");
    expect(await validate(bad, "bad")).toBe(3);
  }, 60_000);
});
