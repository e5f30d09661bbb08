/**
 * measure-boot.ts: boots the tiny guest under TCG (type='qemu', direct kernel boot, XML from xmlgen) a few
 * times and reports the time from `virsh start` to the boot marker in the serial log.
 *
 *   node --import tsx rftest/guest/measure-boot.ts [RUNS=3] [NICS=1]     (root; after build-guest.sh)
 *
 * Prints one JSON object (runs, median, guest-reported uptime) and leaves no domain behind.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { buildDomainXml, routeflowDataMacs } from "../../src/xmlgen/index.js";

const GUEST = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";
const RUNS = Number(process.argv[2] ?? 3);
const NICS = Number(process.argv[3] ?? 1);
const DIR = `/var/lib/rfboot/rfbtx-measure-${process.pid}`;
const NAME = `rfbtx-boot${process.pid % 10000}`;

async function virsh(...args: string[]) {
  return execa("virsh", ["-c", "qemu:///system", ...args], { env: { LC_ALL: "C" }, reject: false });
}

function read(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

async function main(): Promise<void> {
  mkdirSync(DIR, { recursive: true, mode: 0o755 });
  const log = join(DIR, "console.log");
  const vmId = "02:a0:a0:a0:a0:a0";
  // The NICs sit on a throwaway Linux bridge (the guest only needs them to exist).
  const br = `rfbtx-mb${process.pid % 1000}`;
  await execa("ip", ["link", "add", br, "type", "bridge"], { reject: false });
  await execa("ip", ["link", "set", br, "up"]);
  const macs = [vmId, ...routeflowDataMacs(vmId, Math.max(0, NICS - 1))];
  const xml = buildDomainXml({
    name: NAME,
    hypervisor: { type: "qemu" },
    arch: "x86_64",
    memoryMiB: 128,
    vcpus: 1,
    boot: {
      type: "kernel",
      kernel: join(GUEST, "vmlinuz"),
      initrd: join(GUEST, "initrd.gz"),
      cmdline: `console=ttyS0 no_timer_check quiet rfboot.name=${NAME}`,
    },
    interfaces: macs.slice(0, NICS).map((mac) => ({ type: "bridge" as const, bridge: br, mac })),
    console: { logFile: log },
  });
  const file = join(DIR, "domain.xml");
  writeFileSync(file, xml);
  const runs: { startMs: number; markerMs: number; guestUptime: number }[] = [];
  try {
    await virsh("define", file);
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const r = await virsh("start", NAME);
      if (r.exitCode !== 0) throw new Error(`virsh start failed: ${r.stderr}`);
      const startMs = performance.now() - t0;
      let m: RegExpExecArray | null = null;
      while (!(m = /RFBOOT-GUEST-BOOTED name=\S+ uptime=([\d.]+)/.exec(read(log)))) {
        if (performance.now() - t0 > 120_000) throw new Error("no boot marker within 120 s");
        await new Promise((res) => setTimeout(res, 20));
      }
      runs.push({
        startMs: Math.round(startMs),
        markerMs: Math.round(performance.now() - t0),
        guestUptime: Number(m[1]),
      });
      await virsh("destroy", NAME);
    }
  } finally {
    await virsh("destroy", NAME);
    await virsh("undefine", NAME);
    await execa("ip", ["link", "del", br], { reject: false });
    rmSync(DIR, { recursive: true, force: true });
  }
  const sorted = runs.map((r) => r.markerMs).sort((a, b) => a - b);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(
    JSON.stringify(
      { nics: NICS, runs, medianMarkerMs: sorted[Math.floor(sorted.length / 2)], loadavg: load },
      null,
      2,
    ),
  );
}

await main();
