/**
 * A real QEMU (TCG) domain on qemu:///system: qcow2 overlay made as a volume of the host's pool (on a base
 * volume of that pool), define, start, adopt, suspend to disk (managedsave) and restore, destroy, remove; a
 * real start failure rolled back (domain undefined, overlay volume deleted); overlays and copies of a base
 * that is a plain path outside the pool. Boots rftest's guest (/var/lib/rfboot/guest) when present and waits for its console marker;
 * otherwise a domain with no OS payload (firmware only) still exercises every libvirt step.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import { HostStorage, type DiskPlan } from "../../src/provisioner/libvirt/storage.js";
import { VirshShellRunner } from "../../src/provisioner/libvirt/virsh.js";
import { describeWith } from "../helpers/env.js";

const URI = "qemu:///system";
const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const DIR = `/var/lib/libvirt/images/rfbtv-${process.pid}`;
const BASES = `/var/lib/libvirt/images/rfbtv-bases-${process.pid}`;
const POOL = `rfbtv-${process.pid}`;
const NAME = `rfbtv-q-${process.pid}`;
const UUID = `5f0b0000-0000-4000-8000-${String(process.pid).padStart(12, "0")}`;
const hasGuest = existsSync(join(GUEST, "vmlinuz")) && existsSync(join(GUEST, "initrd.gz"));

function domainXml(name: string, uuid: string, disk: string, kernel = join(GUEST, "vmlinuz")): string {
  const os = hasGuest
    ? `<type arch='x86_64' machine='pc'>hvm</type><kernel>${kernel}</kernel><initrd>${join(GUEST, "initrd.gz")}</initrd><cmdline>console=ttyS0 no_timer_check quiet rfboot.name=${name}</cmdline>`
    : `<type arch='x86_64' machine='pc'>hvm</type>${kernel.includes("nonexistent") ? `<kernel>${kernel}</kernel>` : ""}`;
  return `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os>${os}</os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
  <serial type='file'><source path='${DIR}/${name}.console' append='on'/><target port='0'/></serial>
  </devices></domain>`;
}

async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return pred();
}

describeWith(["libvirt", "qemu-img", "root"], "libvirt lifecycle with a real qemu TCG domain", () => {
  const shell = new VirshShellRunner();
  const storage = new HostStorage({
    host: { name: "local", uri: URI },
    spec: { pool: POOL, storageDir: DIR, consoleLogDir: DIR, images: "pool", upload: false },
    run: shell.run,
  });
  const mgr = new DomainManager({
    host: { name: "local", uri: URI },
    run: shell.run,
    storage,
    shutdownTimeoutMs: 2000,
  });
  const base = join(DIR, "base.qcow2");
  const disk: DiskPlan = { kind: "overlay", base, format: "qcow2", path: join(DIR, `${NAME}.qcow2`) };
  const consoleText = () => {
    try {
      return readFileSync(join(DIR, `${NAME}.console`), "utf8");
    } catch {
      return "";
    }
  };

  beforeAll(() => {
    mkdirSync(DIR, { recursive: true });
    chmodSync(DIR, 0o755);
    mkdirSync(BASES, { recursive: true });
    // Put there by hand, as an operator would copy a base in: the pool lists it after a refresh.
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
    chmodSync(base, 0o644);
    execFileSync("qemu-img", ["create", "-q", "-f", "raw", join(BASES, "plain.img"), "8M"]);
  });
  afterAll(async () => {
    for (const n of [NAME, `${NAME}-bad`]) await mgr.remove(n).catch(() => undefined);
    for (const args of [
      ["pool-destroy", POOL],
      ["pool-undefine", POOL],
    ])
      await shell.run(URI, args).catch(() => undefined);
    await shell.close();
    await mgr.dispose();
    await storage.dispose();
    rmSync(DIR, { recursive: true, force: true });
    rmSync(BASES, { recursive: true, force: true });
  });

  it("overlay + define + start; the guest boots; a second ensure adopts it", async () => {
    const spec = { name: NAME, uuid: UUID, xml: domainXml(NAME, UUID, disk.path), disk };
    const r = await mgr.ensureRunning(spec);
    expect(r).toMatchObject({ action: "defined+started", createdDisk: true });
    const info = execFileSync("qemu-img", ["info", "-U", "--output=json", disk.path]).toString();
    expect(JSON.parse(info)).toMatchObject({
      format: "qcow2",
      "backing-filename": base,
      "backing-filename-format": "qcow2",
    });
    // libvirt makes volumes 0600: never readable by other users.
    expect(statSync(disk.path).mode & 0o077).toBe(0);
    expect((await shell.run(URI, ["vol-path", "--pool", POOL, `${NAME}.qcow2`])).stdout.trim()).toBe(
      disk.path,
    );
    if (hasGuest)
      expect(await waitFor(() => consoleText().includes("RFBOOT-GUEST-BOOTED"), 60_000)).toBe(true);
    const pid = execFileSync("pgrep", ["-f", `guest=${NAME},`])
      .toString()
      .trim();
    const r2 = await mgr.ensureRunning(spec);
    expect(r2).toMatchObject({ action: "adopted", createdDisk: false });
    expect(
      execFileSync("pgrep", ["-f", `guest=${NAME},`])
        .toString()
        .trim(),
    ).toBe(pid); // same qemu process
    const stats = (await mgr.list({ stats: true })).find((d) => d.name === NAME);
    expect(stats).toMatchObject({ state: "running", uuid: UUID, memoryKiB: 131072 });
    expect(stats?.cpuTimeNs).toBeGreaterThan(0n);
  });

  it("suspend to disk (managedsave), then ensureRunning restores instead of booting", async () => {
    if (hasGuest)
      expect(await waitFor(() => consoleText().includes("RFBOOT-HEARTBEAT n=1"), 15_000)).toBe(true);
    expect(await mgr.leave(NAME, "suspend")).toBe("saved");
    expect(await mgr.state(NAME)).toEqual({ state: "shutoff", reason: "saved" });
    const before = consoleText();
    const t0 = performance.now();
    const r = await mgr.ensureRunning({
      name: NAME,
      uuid: UUID,
      xml: domainXml(NAME, UUID, disk.path),
      disk,
      // The definition is unchanged (as the daemon passes it): a redefine would remove the image first.
      redefine: false,
    });
    const ms = performance.now() - t0;
    expect(r).toMatchObject({ action: "started", restored: true, createdDisk: false });
    expect(await mgr.state(NAME)).toEqual({ state: "running", reason: "restored" });
    if (hasGuest) {
      // Restored, not rebooted: the heartbeat counter continues and no second boot marker appears.
      const beats = (t: string) => [...t.matchAll(/RFBOOT-HEARTBEAT n=(\d+)/g)].map((m) => Number(m[1]));
      const last = Math.max(0, ...beats(before));
      expect(await waitFor(() => beats(consoleText()).some((n) => n > last), 15_000)).toBe(true);
      expect(Math.min(...beats(consoleText().slice(before.length)))).toBe(last + 1);
      expect(consoleText().split("RFBOOT-GUEST-BOOTED").length - 1).toBe(1);
    }
    expect(ms).toBeLessThan(20_000);
  });

  it("destroy, then remove deletes the domain and its overlay but not the base", async () => {
    expect(await mgr.leave(NAME, "destroy")).toBe("destroyed");
    expect(await mgr.remove(NAME, disk)).toBe(true);
    expect(await mgr.state(NAME)).toBeUndefined();
    expect(existsSync(disk.path)).toBe(false);
    expect(existsSync(base)).toBe(true);
  });

  it("a real start failure (missing kernel) rolls back: domain undefined, overlay deleted", async () => {
    const bad = `${NAME}-bad`;
    const badDisk: DiskPlan = { ...disk, path: join(DIR, `${bad}.qcow2`) };
    const xml = domainXml(bad, UUID.replace("5f0b", "5f0c"), badDisk.path, join(DIR, "nonexistent-vmlinuz"));
    const e = await mgr
      .ensureRunning({ name: bad, uuid: UUID.replace("5f0b", "5f0c"), xml, disk: badDisk })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toMatch(/nonexistent-vmlinuz/);
    expect(await mgr.state(bad)).toBeUndefined();
    expect(existsSync(badDisk.path)).toBe(false);
  });

  it("a base outside the pool (images: path): overlay by a backingStore path, copy through a transient pool", async () => {
    const plain = join(BASES, "plain.img");
    const ov: DiskPlan = { kind: "overlay", base: plain, format: "raw", path: join(DIR, `${NAME}-ov.qcow2`) };
    const cp: DiskPlan = { kind: "copy", base: plain, format: "raw", path: join(DIR, `${NAME}-cp.img`) };
    expect(await storage.prepareDisk(ov)).toBe(true);
    expect(JSON.parse(execFileSync("qemu-img", ["info", "--output=json", ov.path]).toString())).toMatchObject(
      {
        format: "qcow2",
        "virtual-size": 8 * 1024 * 1024,
        "backing-filename": plain,
        "backing-filename-format": "raw",
      },
    );
    expect(await storage.prepareDisk(cp)).toBe(true);
    expect(statSync(cp.path).size).toBe(8 * 1024 * 1024);
    const pools = (await shell.run(URI, ["pool-list", "--all", "--name"])).stdout;
    expect(pools).not.toMatch(/rfboot-src-/);
    expect(await storage.prepareDisk(cp)).toBe(false);
    expect(await storage.removeDisk(ov)).toBe(true);
    expect(await storage.removeDisk(cp)).toBe(true);
    expect(existsSync(ov.path) || existsSync(cp.path)).toBe(false);
    expect(existsSync(plain)).toBe(true);
  });
});
