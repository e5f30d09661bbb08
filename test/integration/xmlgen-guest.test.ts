/**
 * rftest/guest/build-guest.sh: builds the kernel + initramfs + LXC rootfs (Debian's cloud kernel, a busybox initramfs, an LXC rootfs), records them
 * in manifest.json, is idempotent (nothing rebuilt while inputs are unchanged) and reproducible (a rebuilt
 * initrd has the same sha256). Runs into a scratch directory seeded with the cached kernel .deb.
 */
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWith, REPO } from "../helpers/env.js";

const SCRIPT = join(REPO, "rftest/guest/build-guest.sh");
const SHARED_CACHE = "/var/lib/rfboot/guest/.cache";
const MODULES = [
  "virtio_ring",
  "virtio",
  "virtio_pci_modern_dev",
  "virtio_pci_legacy_dev",
  "virtio_pci",
  "failover",
  "net_failover",
  "virtio_net",
];

interface Manifest {
  kernelPackage: string;
  kernelVersion: string;
  modules: string[];
  vmlinuz: { sha256: string };
  initrd: { sha256: string };
  inputsKey: string;
}

const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

/** cpioNames lists the entry names of a newc cpio archive. */
function cpioNames(buf: Buffer): string[] {
  const names: string[] = [];
  let off = 0;
  const pad4 = (n: number) => (n + 3) & ~3;
  while (off + 110 <= buf.length) {
    const hdr = buf.toString("latin1", off, off + 110);
    if (!hdr.startsWith("070701")) throw new Error(`bad cpio magic at ${off}`);
    const filesize = parseInt(hdr.slice(54, 62), 16);
    const namesize = parseInt(hdr.slice(94, 102), 16);
    const name = buf.toString("utf8", off + 110, off + 110 + namesize - 1);
    if (name === "TRAILER!!!") break;
    names.push(name);
    off = pad4(pad4(off + 110 + namesize) + filesize);
  }
  return names;
}

describeWith(["root"], "rftest/guest/build-guest.sh", () => {
  const out = mkdtempSync("/var/lib/rfboot/rfbtx-guest-");
  let first = "";

  beforeAll(async () => {
    // Seed the .deb cache so the test does not depend on the mirror (the script fetches it when absent).
    if (existsSync(SHARED_CACHE)) cpSync(SHARED_CACHE, join(out, ".cache"), { recursive: true });
    const r = await execa("bash", [SCRIPT, out], { all: true, timeout: 600_000 });
    first = r.all ?? "";
  }, 600_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("builds vmlinuz, initrd.gz and rootfs-lxc and describes them in manifest.json", () => {
    expect(first).toMatch(/done: /);
    const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")) as Manifest;
    expect(m.kernelPackage).toMatch(/^linux-image-6\.1\.0-\d+-cloud-amd64$/);
    expect(m.kernelPackage).toBe(`linux-image-${m.kernelVersion}`);
    expect(m.modules).toEqual(MODULES);
    expect(m.vmlinuz.sha256).toBe(sha(join(out, "vmlinuz")));
    expect(m.initrd.sha256).toBe(sha(join(out, "initrd.gz")));
    // bzImage magic "HdrS" at 0x202 (Linux boot protocol).
    expect(readFileSync(join(out, "vmlinuz")).toString("latin1", 0x202, 0x206)).toBe("HdrS");
    for (const f of ["vmlinuz", "initrd.gz", "manifest.json"])
      expect(statSync(join(out, f)).mode & 0o004, f).toBe(0o004);
  });

  it("the initramfs holds busybox, the modules (uncompressed, load order list) and the marker-printing /init", () => {
    const names = cpioNames(gunzipSync(readFileSync(join(out, "initrd.gz"))));
    expect(names).toContain("init");
    expect(names).toContain("bin/busybox");
    expect(names).toContain("bin/sh");
    for (const m of MODULES) expect(names).toContain(`lib/modules/${m}.ko`);
    const init = readFileSync(join(out, "rootfs-lxc/init"), "utf8");
    expect(init).toContain("RFBOOT-GUEST-BOOTED name=$NAME uptime=$UP");
    expect(init).toContain("RFBOOT-HEARTBEAT n=$k");
    // The data-plane parameters (netns-hosts.test.ts boots them for real): addresses per NIC, a pinged peer.
    expect(init).toContain('rfboot.addr=*) ADDRS="$ADDRS ${a#rfboot.addr=}" ;;');
    expect(init).toContain('echo "RFBOOT-PING to=$PING ok rtt_ms=${t%% ms*}"');
    expect(init).toContain('echo "RFBOOT-PING to=$PING fail"');
    expect(init).toContain(
      "virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net",
    );
    expect(statSync(join(out, "rootfs-lxc/init")).mode & 0o111).toBe(0o111);
  });

  it("is idempotent: a second run rebuilds nothing", async () => {
    const before = statSync(join(out, "initrd.gz")).mtimeMs;
    const r = await execa("bash", [SCRIPT, out], { all: true });
    expect(r.all).toMatch(/up to date/);
    expect(statSync(join(out, "initrd.gz")).mtimeMs).toBe(before);
  });

  it("rebuilds a missing artefact, reproducibly (same sha256)", async () => {
    const want = sha(join(out, "initrd.gz"));
    rmSync(join(out, "initrd.gz"));
    const r = await execa("bash", [SCRIPT, out], { all: true, timeout: 300_000 });
    expect(r.all).toMatch(/done: /);
    expect(sha(join(out, "initrd.gz"))).toBe(want);
  }, 300_000);
});
