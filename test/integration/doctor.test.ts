/**
 * `rfboot doctor` against real traps: a private libvirtd whose /dev/kvm is a 0600 root:root copy (so its QEMU
 * user cannot open it and libvirt re-probes QEMU on every call), the machine's own libvirtd (where the lab made
 * /dev/kvm usable), and a real zombie whose parent never waits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWith, REPO } from "../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

interface Check {
  id: string;
  target: string;
  status: "ok" | "warn" | "fail";
  blocking: boolean;
  detail: string;
  fix: string;
}

async function doctor(
  args: string[],
): Promise<{ code: number; checks: Check[]; ms: number; stderr: string }> {
  const t0 = Date.now();
  const r = await execa(join(REPO, "bin/rfboot"), ["doctor", "--json", ...args], {
    reject: false,
    env: { LC_ALL: "C" },
    timeout: 60_000,
  });
  const body = JSON.parse(String(r.stdout)) as { checks: Check[] };
  return { code: r.exitCode ?? -1, checks: body.checks, ms: Date.now() - t0, stderr: String(r.stderr) };
}

const find = (checks: Check[], id: string, target?: string) =>
  checks.find((c) => c.id === id && (target === undefined || c.target.startsWith(target)));

describeWith(["libvirt", "root", "mongo", "ovs"], "rfboot doctor on real traps", () => {
  let trap: LibvirtTestHost | undefined;
  let dir = "";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-doctor-"));
    // The trap of a machine without udev: /dev/kvm as the kernel creates it, crw------- root:root.
    trap = await startLibvirtHost(`rfbt-doc-${process.pid}`, {
      keepAlive: false,
      setup: (d) => [
        `mknod ${d}/kvm c 10 232`,
        `chown root:root ${d}/kvm`,
        `chmod 0600 ${d}/kvm`,
        `mount --bind ${d}/kvm /dev/kvm`,
      ],
    });
  });
  afterAll(async () => {
    if (trap) await stopLibvirtHost(trap);
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports the /dev/kvm trap and the re-probing it causes on the private host, with the fix, and exits 1", async () => {
    const config = join(dir, "trap.yaml");
    writeFileSync(config, `hosts:\n  - name: trap\n    uri: "${trap!.qemuUri}"\n`);
    const r = await doctor(["--config", config]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(30_000);
    const kvm = find(r.checks, "libvirt.kvm", "trap");
    expect(kvm, JSON.stringify(r.checks, null, 1)).toMatchObject({ status: "fail", blocking: true });
    expect(kvm!.detail).toContain("/dev/kvm is crw------- root:root");
    expect(kvm!.detail).toContain("cannot open it read-write");
    expect(kvm!.fix).toContain("chgrp kvm /dev/kvm && chmod 0660 /dev/kvm");
    const reprobe = find(r.checks, "libvirt.reprobe", "trap");
    expect(reprobe, JSON.stringify(r.checks, null, 1)).toMatchObject({ status: "fail", blocking: true });
    expect(reprobe!.detail).toContain("libvirt re-probes QEMU on every call");
    expect(r.stderr).toContain("blocking problem");
  });

  it("reports the machine's own libvirtd as fine once the lab fixed /dev/kvm, and exits 0", async () => {
    const r = await doctor([]);
    const bad = r.checks.filter((c) => c.blocking);
    expect(bad, JSON.stringify(bad, null, 1)).toEqual([]);
    expect(r.code).toBe(0);
    expect(find(r.checks, "libvirt.connect", "local")).toMatchObject({ status: "ok" });
    expect(find(r.checks, "libvirt.reprobe", "local")).toMatchObject({ status: "ok" });
    const kvm = find(r.checks, "libvirt.kvm", "local");
    expect(kvm).toMatchObject({ status: "ok" });
    expect(kvm!.detail).toContain("usable by QEMU user");
    expect(find(r.checks, "mongo.server")).toMatchObject({ status: "ok" });
    expect(find(r.checks, "ovs.reachable")).toMatchObject({ status: "ok" });
    expect(r.ms).toBeLessThan(10_000);
  });

  it("finds a real zombie under the parent that never waits for it", async () => {
    // The exec'd sleep inherits the shell's child and never waits for it: 0.1 s later that child is a zombie.
    const parent: ChildProcess = spawn("sh", ["-c", "sleep 0.1 & exec sleep 30"], { stdio: "ignore" });
    try {
      const pid = parent.pid!;
      let zombie: number | undefined;
      for (let i = 0; i < 50 && zombie === undefined; i++) {
        await new Promise((res) => setTimeout(res, 100));
        for (const e of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
          try {
            const st = readFileSync(`/proc/${e}/stat`, "utf8");
            const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
            if (f[0] === "Z" && Number(f[1]) === pid) zombie = Number(e);
          } catch {
            // gone meanwhile
          }
        }
      }
      expect(zombie).toBeDefined();
      const r = await doctor([]);
      const z = find(r.checks, "system.zombies");
      expect(z).toMatchObject({ status: "warn", blocking: false });
      expect(z!.detail).toContain(`under pid ${pid} (sleep): ${zombie} sleep`);
      expect(z!.fix).not.toBe("");
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
