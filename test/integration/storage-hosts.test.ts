/**
 * Storage on a host that does not share rfboot's files: a private libvirtd (its own mount namespace) whose
 * storage and console directories are tmpfs mounts the test process cannot see, reached over its socket
 * with `images: pool` and `upload: true`. rfboot makes the pools there, uploads the guest's kernel and initrd
 * and a base image (verified by size and SHA-256), builds the VM's overlay as a volume of that pool only,
 * and a real qemu (TCG) guest boots with the overlay attached: the paths in the domain XML are the host's.
 * Then the sweep of a dead builder's marker and the removal of the overlay, both seen from the host.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseConfig, resolveDatapath, type RfbootConfig } from "../../src/provisioner/config/index.js";
import { inspectHostStorage, planOnHost } from "../../src/provisioner/host-plan.js";
import { HostRegistry } from "../../src/provisioner/libvirt/hosts.js";
import { markerName } from "../../src/provisioner/libvirt/storage.js";
import { VirshShellRunner } from "../../src/provisioner/libvirt/virsh.js";
import { buildDomainXml } from "../../src/xmlgen/index.js";
import { describeWith } from "../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";
import { shOk, until } from "../helpers/real.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const PID = process.pid;
const ROOT = `/var/lib/rfbt-far-${PID}`;
const STORE = `${ROOT}/disks`;
const CONSOLE = `${ROOT}/console`;
const BR = `rfbtsb${PID % 100000}`;
const VM = `rfbtsv${PID}`;
const POOL = "rfbtfar";

describeWith(["libvirt", "qemu-img", "root"], "storage on a host that does not see rfboot's files", () => {
  let host: LibvirtTestHost;
  let config: RfbootConfig;
  let dir: string;
  const shell = new VirshShellRunner();
  let reg: HostRegistry;
  const virsh = async (...args: string[]) => (await shell.run(host.qemuUri, args)).stdout;
  /** seen reads a path as the host sees it (through its libvirtd's root). */
  const seen = (p: string) => `/proc/${host.pid}/root${p}`;

  beforeAll(async () => {
    if (!existsSync(join(GUEST, "vmlinuz")) || !existsSync(join(GUEST, "initrd.gz")))
      throw new Error(`the rftest guest is missing in ${GUEST}: run rftest/guest/build-guest.sh`);
    dir = mkdtempSync(join(tmpdir(), "rfbt-far-"));
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, "base.qcow2"), "32M"]);
    host = await startLibvirtHost(`rfbt-far-${PID}`, { privateDirs: [STORE, CONSOLE] });
    await shOk("ip", ["link", "add", BR, "type", "bridge"]);
    await shOk("ip", ["link", "set", BR, "up"]);
    config = parseConfig(
      `
stateDir: ${dir}/state
hosts:
  - { name: far, uri: "${host.qemuUri}", storageDir: ${STORE}, consoleLogDir: ${CONSOLE}, pool: ${POOL}, images: pool, upload: true }
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${GUEST}/vmlinuz, initrd: ${GUEST}/initrd.gz, cmdline: "console=ttyS0 no_timer_check quiet rfboot.name={name}" }
  disk: { image: ${dir}/base.qcow2, format: qcow2, prepare: overlay }
  network:
    management: { type: bridge, bridge: ${BR} }
    data: { bridge: ${BR}, openvswitch: false }
datapaths:
  "0x5a": { name: ${VM}, vmId: "06:5a:5a:5a:5a:5a", dataPorts: 0 }
`,
      { format: "yaml", source: "storage-hosts.test" },
    );
    reg = new HostRegistry({ hosts: config.hosts, run: shell.run });
  }, 60_000);

  afterAll(async () => {
    if (host) {
      await shOk("virsh", ["-c", host.qemuUri, "destroy", VM]);
      await shOk("virsh", ["-c", host.qemuUri, "undefine", VM]);
    }
    await reg?.dispose();
    await shell.close();
    if (host) await stopLibvirtHost(host);
    await shOk("ip", ["link", "del", BR]);
    if (dir) rmSync(dir, { recursive: true, force: true });
    rmSync(ROOT, { recursive: true, force: true });
  });

  it("before any VM: inspect says the pool will be made and the images uploaded", async () => {
    const r = await inspectHostStorage(config, config.hosts[0]!, reg.storage("far"));
    expect(r.poolState).toBe("missing");
    expect(r.artifacts.map((a) => [a.role, a.status])).toEqual([
      ["kernel", "will-upload"],
      ["initrd", "will-upload"],
      ["disk image", "will-upload"],
    ]);
    expect(r.problems).toEqual([]);
  });

  it("uploads the images once, verified, and boots a qemu guest with an overlay only the host has", async () => {
    const vm = resolveDatapath(config, 0x5an, [])!;
    const { plan, disk } = await planOnHost(vm, config.hosts[0]!, reg.storage("far"));
    const d = plan.description;
    // The domain names the host's volumes, not the local files.
    expect(d.boot).toMatchObject({
      type: "kernel",
      kernel: `${STORE}/vmlinuz`,
      initrd: `${STORE}/initrd.gz`,
    });
    expect(disk).toEqual({
      kind: "overlay",
      base: `${STORE}/base.qcow2`,
      format: "qcow2",
      path: `${STORE}/${VM}.qcow2`,
    });
    for (const f of ["vmlinuz", "initrd.gz"]) {
      expect((await virsh("vol-path", "--pool", POOL, f)).trim()).toBe(`${STORE}/${f}`);
      // The upload is the local file byte for byte, read back from the host's side.
      const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
      expect(sha(seen(`${STORE}/${f}`))).toBe(sha(join(GUEST, f)));
      expect(existsSync(`${STORE}/${f}`)).toBe(false);
    }
    const r = await reg.manager("far").ensureRunning({
      name: VM,
      uuid: d.uuid ?? "",
      xml: buildDomainXml(d),
      ...(disk ? { disk } : {}),
    });
    expect(r).toMatchObject({ action: "defined+started", createdDisk: true });
    // The overlay is a volume of the host's pool, backed by the uploaded base, and invisible here.
    expect((await virsh("vol-path", "--pool", POOL, `${VM}.qcow2`)).trim()).toBe(`${STORE}/${VM}.qcow2`);
    expect(existsSync(`${STORE}/${VM}.qcow2`)).toBe(false);
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "-U", "--output=json", seen(`${STORE}/${VM}.qcow2`)]).toString(),
    ) as Record<string, unknown>;
    expect(info).toMatchObject({ format: "qcow2", "backing-filename": `${STORE}/base.qcow2` });
    expect(await virsh("domblklist", VM)).toContain(`${STORE}/${VM}.qcow2`);
    const log = seen(`${CONSOLE}/${VM}.log`);
    await until(
      "the guest's boot marker in its console log on the host",
      () => {
        try {
          return readFileSync(log, "latin1").includes("RFBOOT-GUEST-BOOTED");
        } catch {
          return false;
        }
      },
      90_000,
      250,
    );
    expect(existsSync(`${CONSOLE}/${VM}.log`)).toBe(false);
    // A second plan finds the volumes: nothing is uploaded again.
    const calls: string[][] = [];
    const counting = new HostRegistry({
      hosts: config.hosts,
      run: (u, a, o) => {
        calls.push(a);
        return shell.run(u, a, o);
      },
    });
    await planOnHost(vm, config.hosts[0]!, counting.storage("far"));
    await counting.dispose();
    expect(calls.filter((c) => c[0] === "vol-upload")).toEqual([]);
  }, 150_000);

  it("the sweep deletes a dead builder's half-built volume and its marker on the host", async () => {
    const dead = spawnSync("true").pid!;
    const marker = markerName("half.qcow2", undefined, dead);
    await virsh("vol-create-as", POOL, "half.qcow2", "1M", "--format", "qcow2");
    await virsh("vol-create-as", POOL, marker, "0", "--format", "raw");
    expect(await reg.storage("far").sweep()).toEqual(["half.qcow2"]);
    const left = await virsh("vol-list", POOL);
    expect(left).not.toContain("half.qcow2");
    expect(left).toContain(`${VM}.qcow2`);
  });

  it("remove deletes the overlay volume on the host, never the base", async () => {
    const vm = resolveDatapath(config, 0x5an, [])!;
    const { disk } = await planOnHost(vm, config.hosts[0]!, reg.storage("far"));
    expect(await reg.manager("far").remove(VM, disk)).toBe(true);
    await expect(virsh("vol-path", "--pool", POOL, `${VM}.qcow2`)).rejects.toMatchObject({
      kind: "volume-missing",
    });
    expect((await virsh("vol-path", "--pool", POOL, "base.qcow2")).trim()).toBe(`${STORE}/base.qcow2`);
  });
});
